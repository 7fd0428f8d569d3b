"""Issue 2: the binary, init, serve, routing, limits, logs, shutdown."""
import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import time

import pytest
import requests

from harness import BIN, Daemon, assert_error, run_cli


def test_version_command():
    r = run_cli("version")
    assert r.returncode == 0
    assert r.stdout.startswith("credstore ")


def test_init_prints_one_admin_key_and_protects_files(tmp_path):
    data = tmp_path / "d"
    r = run_cli("init", "--data", str(data))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    key = json.loads(lines[0])
    assert set(key) == {"id", "secret", "role"}
    assert key["role"] == "admin" and key["id"] and len(key["secret"]) >= 32
    assert "development only" in r.stderr
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(data / "master.key").st_mode) == 0o600
    # The secret is stored only as a keyed hash: not in any file.
    for f in data.iterdir():
        assert key["secret"].encode() not in f.read_bytes(), f


def test_init_twice_fails_clearly(tmp_path):
    data = str(tmp_path / "d")
    assert run_cli("init", "--data", data).returncode == 0
    before = {f: open(os.path.join(data, f), "rb").read() for f in os.listdir(data)}
    r = run_cli("init", "--data", data)
    assert r.returncode != 0
    assert r.stdout == ""
    assert "already initialised" in r.stderr
    after = {f: open(os.path.join(data, f), "rb").read() for f in os.listdir(data)}
    assert before.keys() == after.keys()
    assert before["master.key"] == after["master.key"]


def test_init_requires_data():
    r = run_cli("init", env={"CREDSTORE_DATA": ""})
    assert r.returncode != 0 and "--data" in r.stderr


def test_unknown_command_and_option(tmp_path):
    assert run_cli("frobnicate").returncode != 0
    r = run_cli("init", "--data", str(tmp_path / "x"), "--bogus")
    assert r.returncode != 0 and "unknown option" in r.stderr
    assert not (tmp_path / "x").exists()


def test_serve_refuses_uninitialised_dir(tmp_path):
    r = run_cli("serve", "--data", str(tmp_path / "none"), "--listen", "127.0.0.1:0", timeout=20)
    assert r.returncode != 0
    assert "not initialised" in r.stderr


def test_serve_refuses_wrong_master_key(tmp_path):
    d = Daemon()
    try:
        wrong = tmp_path / "wrong.key"
        wrong.write_bytes(os.urandom(32))
        r = run_cli("serve", "--data", d.data, "--listen", "127.0.0.1:0",
                    "--master-key-file", str(wrong), timeout=20)
        assert r.returncode != 0
        assert "master key" in r.stderr
        # The right key still opens it: nothing was changed by the failure.
        d.start()
        assert d.get("/readyz").status_code == 200
        assert d.stop() == 0
    finally:
        d.close()


def test_serve_refuses_non_loopback_without_tls():
    d = Daemon()
    try:
        r = run_cli("serve", "--data", d.data, "--listen", "0.0.0.0:0", timeout=20)
        assert r.returncode != 0
        assert "without TLS" in r.stderr
    finally:
        d.close()


def test_healthz_readyz_version(daemon):
    r = daemon.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers.get("X-Request-Id")
    r = daemon.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"


def test_unknown_route_404_and_wrong_method_405(daemon):
    assert_error(daemon.get("/nope"), 404, "no_route")
    assert_error(daemon.get("/api/v1/credentialsX"), 404, "no_route")
    assert_error(daemon.get("/healthz/"), 404, "no_route")
    r = daemon.post("/healthz", data=b"{}")
    assert_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]
    assert_error(daemon.request("PATCH", "/readyz"), 405, "method_not_allowed")


def test_body_over_1mib_is_413(daemon):
    r = daemon.post("/healthz", data=b"x" * (1024 * 1024 + 1))
    assert_error(r, 413, "body_too_large")
    # Exactly at the cap is not refused for its size.
    r = daemon.post("/healthz", data=b"x" * (1024 * 1024))
    assert r.status_code == 405
    # The server keeps answering.
    assert daemon.get("/healthz").status_code == 200


def test_keep_alive_reuses_the_connection(daemon):
    c = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    c.request("GET", "/healthz")
    r1 = c.getresponse()
    r1.read()
    assert r1.status == 200
    assert (r1.getheader("Connection") or "").lower() != "close"
    sock1 = c.sock
    c.request("GET", "/healthz")
    r2 = c.getresponse()
    r2.read()
    assert r2.status == 200 and c.sock is sock1
    c.close()


def test_logs_are_json_lines_with_request_id(daemon):
    r = daemon.get("/healthz")
    rid = r.headers["X-Request-Id"]
    reqs = daemon.wait_log(lambda l: l.get("rid") == rid and l["msg"] == "request")
    lines = daemon.log_lines()
    assert all({"ts", "level", "msg"} <= set(l) for l in lines)
    assert len(reqs) == 1 and reqs[0]["status"] == 200 and reqs[0]["route"] == "healthz"


def test_raw_garbage_does_not_crash(daemon):
    for payload in [b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/1.1\r\nContent-Length: zz\r\n\r\n",
                    b"\x00\xff" * 100, b"GET " + b"/a" * 5000 + b" HTTP/1.1\r\n\r\n"]:
        s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        s.sendall(payload)
        try:
            s.recv(4096)
        except OSError:
            pass
        s.close()
    assert daemon.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_exit_on_signal(sig):
    d = Daemon().start()
    try:
        assert d.get("/healthz").status_code == 200
        assert d.stop(sig) == 0
        assert '"stopped"' in d.log()
    finally:
        d.close()


def test_environment_variables_configure_serve():
    d = Daemon()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    try:
        # No flags at all: --data, --listen and --log-level come from the environment.
        env = dict(d.env, CREDSTORE_DATA=d.data, CREDSTORE_LISTEN="127.0.0.1:%d" % port,
                   CREDSTORE_LOG_LEVEL="warn")
        with open(d.log_path, "wb") as log:
            p = subprocess.Popen([BIN, "serve"], stderr=log, env=env)
            try:
                ready = None
                for _ in range(200):
                    try:
                        ready = requests.get("http://127.0.0.1:%d/readyz" % port, timeout=2)
                        break
                    except requests.ConnectionError:
                        time.sleep(0.05)
                assert ready is not None and ready.status_code == 200
            finally:
                p.send_signal(signal.SIGTERM)
                assert p.wait(timeout=30) == 0
        # warn level: the info "listening" line is suppressed.
        assert "listening" not in d.log()
    finally:
        d.close()


def test_restart_keeps_the_sealed_keyring():
    d = Daemon().start()
    try:
        assert d.stop() == 0
        d.start()
        assert d.get("/readyz").status_code == 200
        assert d.stop() == 0
    finally:
        d.close()
