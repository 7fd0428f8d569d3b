"""Issue 11, findings 6 and 7: webhook targets (SSRF) and parallel delivery.

Every receiver listens on 127.0.0.1 in this process; no test sends anything
anywhere else (the denied addresses are only ever registered, and refused)."""
import http.server
import json
import select
import socket
import threading
import time

import lmdb
import pytest

from harness import WRAPPER, assert_error, basic, finish, start
from test_auth import new_key
from test_credentials import valid_bodies
from test_usages import Receiver, add_usage, create, free_port, usages, wait_for

# Every spelling of link-local, metadata and non-destination addresses that
# libcurl or libc would connect to (tests/unit/test_http_policy.c has more).
DENIED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254./latest/meta-data/",
    "http://2852039166/",
    "http://0251.0376.0251.0376/",
    "http://0xa9fea9fe/",
    "http://0xA9.0xFE.0xA9.0xFE/",
    "http://169.254.43518/",
    "http://%31%36%39.254.169.254/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "https://169.254.170.2/v2/credentials",
    "http://100.100.100.200/latest/meta-data/",
    "http://168.63.129.16/machine",
    "http://0.0.0.0:8200/",
    "http://0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://[ff02::1]/",
]
USERINFO = ["http://user:pass@127.0.0.1:9/hook", "http://user@127.0.0.1:9/",
            "http://:pass@127.0.0.1:9/", "http://@127.0.0.1:9/", "http://a%40b:c@localhost:9/",
            "http://127.0.0.1:9\\@localhost/"]
# Valgrind slows the daemon, never the receivers' clocks: bounds that stay
# below the 5 s delivery timeout keep the ordering claims meaningful.
QUICK = 4.5 if WRAPPER else 2.0


@pytest.fixture(scope="module")
def d():
    dd = start("--webhook-retry-ms", "100")
    yield dd
    finish(dd)


def hook_errors(d, cid, url, headers=None):
    r = add_usage(d, cid, headers=headers, callbackUrl=url)
    return assert_error(r, 400, "invalid_field")


def test_registration_refuses_every_denied_spelling_and_userinfo(d):
    create(d, "ssrf-1", valid_bodies()["ibm-1"])
    ci = new_key(d, d.auth["Authorization"], "ci")
    ci_h = {"Authorization": basic(ci["id"], ci["secret"])}
    for url in DENIED:
        for h in (None, ci_h):
            err = hook_errors(d, "ssrf-1", url, h)
            assert err["field"] == "callbackUrl", (url, err)
            assert "does not send webhooks to" in err["err"], (url, err)
    for url in USERINFO:
        err = hook_errors(d, "ssrf-1", url, ci_h)
        assert err["field"] == "callbackUrl" and "user name or password" in err["err"], (url, err)
    for url in ["ftp://127.0.0.1/", "gopher://127.0.0.1:70/", "file:///etc/passwd", "http:///x",
                "dict://127.0.0.1:11211/"]:
        assert hook_errors(d, "ssrf-1", url, ci_h)["field"] == "callbackUrl", url
    assert usages(d, "ssrf-1") == {}
    # Loopback stays allowed by default (API.md §4), in every spelling too.
    for url in ["http://127.0.0.1:9/hook", "http://localhost:9/", "http://[::1]:9/",
                "http://2130706433:9/", "http://[::ffff:127.0.0.1]:9/", "http://127.1:9/"]:
        r = add_usage(d, "ssrf-1", headers=ci_h, callbackUrl=url)
        assert r.status_code == 201, (url, r.text)
    # The counters that would tell "refused" from "answered" are not a ci key's to read.
    assert_error(d.get("/metrics", headers=ci_h), 403, "forbidden")
    assert d.get("/metrics", headers=d.auth).status_code == 200


class Answering:
    """An HTTP receiver on 127.0.0.1 that answers every POST with `status`
    and `headers` after `delay` seconds, recording the bodies."""

    def __init__(self, status=200, headers=(), delay=0):
        self.calls = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)
                outer.calls.append(body)
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_redirects_are_not_followed(d):
    target = Answering()
    for code in (302, 307, 308):
        hop = Answering(code, [("Location", target.url)])
        try:
            cid = "redir-%d" % code
            create(d, cid, valid_bodies()["ibm-1"])
            assert add_usage(d, cid, callbackUrl=hop.url).status_code == 201
            create(d, cid, valid_bodies()["ibm-1"])
            # Not a 2xx: retried (every 100 ms, doubling), never followed.
            assert wait_for(lambda: len(hop.calls) >= 3), hop.calls
            assert target.calls == [], "the redirect was followed"
        finally:
            hop.close()
    time.sleep(0.3)
    assert target.calls == []
    target.close()


class Hanging:
    """Accepts connections on 127.0.0.1 and never answers; counts how many
    are open at once. Bounded: close() ends it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.open = self.max_open = self.accepted = self.closed = 0
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        conns = []
        while not self.done:
            ready, _, _ = select.select([self.sock] + conns, [], [], 0.05)
            for s in ready:
                if s is self.sock:
                    c, _ = s.accept()
                    conns.append(c)
                    with self.lock:
                        self.accepted += 1
                        self.open += 1
                        self.max_open = max(self.max_open, self.open)
                elif not s.recv(65536):
                    conns.remove(s)
                    s.close()
                    with self.lock:
                        self.open -= 1
                        self.closed += 1
        for c in conns:
            c.close()
        self.sock.close()

    def close(self):
        self.done = True
        self.thread.join(timeout=5)


def test_a_hanging_target_delays_nobody_and_gets_two_connections(d):
    hang, good = Hanging(), Receiver()
    try:
        create(d, "slow-1", valid_bodies()["ibm-1"])
        create(d, "fast-1", valid_bodies()["ibm-1"])
        for _ in range(6):
            assert add_usage(d, "slow-1", callbackUrl=hang.url).status_code == 201
        u = add_usage(d, "fast-1", callbackUrl=good.url).json()
        create(d, "slow-1", valid_bodies()["ibm-1"])  # six deliveries that hang
        assert wait_for(lambda: hang.open == 2, timeout=10), hang.accepted
        t0 = time.time()
        create(d, "fast-1", valid_bodies()["ibm-1"])
        assert wait_for(lambda: good.ok_calls(u["callbackSecret"]), timeout=10)
        took = time.time() - t0
        assert hang.closed == 0, "the good delivery waited for a hanging one to time out"
        assert took < QUICK, took
        # The hanging deliveries time out (5 s) and are retried two at a time
        # while the other four wait; a retry storm does not starve anyone.
        assert wait_for(lambda: hang.accepted >= 4, timeout=20), hang.accepted
        t0 = time.time()
        create(d, "fast-1", valid_bodies()["ibm-1"])
        assert wait_for(lambda: len(good.ok_calls(u["callbackSecret"])) >= 2, timeout=10)
        assert time.time() - t0 < QUICK, time.time() - t0
        assert [c["version"] for c in good.ok_calls(u["callbackSecret"])] == [2, 3]
        assert hang.max_open == 2, "per-target limit: %d connections at once" % hang.max_open
    finally:
        hang.close()
        good.close()


def test_many_targets_in_parallel(d):
    """Twelve slow targets (each answers after 1 s) are served at once, not
    one after another."""
    rxs = [Answering(delay=1.0) for _ in range(12)]
    try:
        create(d, "fan-1", valid_bodies()["ibm-1"])
        for rx in rxs:
            assert add_usage(d, "fan-1", callbackUrl=rx.url).status_code == 201
        t0 = time.time()
        create(d, "fan-1", valid_bodies()["ibm-1"])
        assert wait_for(lambda: all(rx.calls for rx in rxs), timeout=20)
        took = time.time() - t0
        assert took < 1.0 + QUICK, "12 one-second targets took %.1f s" % took
    finally:
        for rx in rxs:
            rx.close()


def refused_lines(dd):
    return [l for l in dd.log_lines() if "webhook" in l.get("msg", "") and
            "refused" in l["msg"]]


def metric(dd, name):
    for line in dd.get("/metrics", headers=dd.auth).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name)


def test_delivery_time_check_refuses_a_name_that_resolves_to_a_denied_address():
    """localhost is a name, so registration cannot judge it; delivery resolves
    it to 127.0.0.1 (or ::1), which the operator denies: nothing is sent."""
    rx = Receiver()
    dd = start("--webhook-retry-ms", "100", "--webhook-deny", "127.0.0.0/8, ::1/128")
    try:
        create(dd, "dt-1", valid_bodies()["ibm-1"])
        for spelling in ("http://127.0.0.1:%d/", "http://2130706433:%d/",
                         "http://[::ffff:127.0.0.1]:%d/", "http://[::1]:%d/"):
            assert hook_errors(dd, "dt-1", spelling % rx.port)["field"] == "callbackUrl"
        by_name = "http://localhost:%d/hook" % rx.port
        assert add_usage(dd, "dt-1", callbackUrl=by_name).status_code == 201
        create(dd, "dt-1", valid_bodies()["ibm-1"])
        assert wait_for(lambda: len(refused_lines(dd)) >= 2), dd.log()[-2000:]
        line = refused_lines(dd)[0]
        assert "127.0.0.1" in line["msg"] or "::1" in line["msg"], line
        assert line["level"] == "warn"
        assert rx.calls == [], "a denied address was connected to"
        assert metric(dd, "credstore_webhook_failures_total") >= 2
        assert metric(dd, "credstore_webhook_deliveries_total") == 0
        assert metric(dd, "credstore_webhook_outbox_depth") == 1
        assert dd.stop() == 0
        env = lmdb.open(dd.data, readonly=True, lock=False, max_dbs=16)
        outbox = env.open_db(b"outbox")
        with env.begin() as txn:
            entries = [json.loads(v) for _, v in txn.cursor(db=outbox)]
        env.close()
        dd.start()
        assert len(entries) == 1 and entries[0]["attempts"] >= 2, entries
        assert "refused: " in entries[0]["lastError"], entries
        assert "not a permitted webhook target" in entries[0]["lastError"], entries
    finally:
        rx.close()
        finish(dd)


def test_operator_allow_list():
    rx = Receiver()
    dd = start("--webhook-retry-ms", "100", "--webhook-allow", "169.254.169.254/32,127.0.0.1",
               "--webhook-deny", "127.0.0.0/8")
    try:
        create(dd, "al-1", valid_bodies()["ibm-1"])
        # Registered only: this credential is never updated, so nothing is sent there.
        assert add_usage(dd, "al-1", callbackUrl="http://169.254.169.254/latest/").status_code == 201
        assert add_usage(dd, "al-1", callbackUrl="http://2852039166/").status_code == 201
        for url in ("http://169.254.169.253/", "http://127.0.0.2:%d/" % rx.port,
                    "http://[fe80::1]/"):
            assert hook_errors(dd, "al-1", url)["field"] == "callbackUrl", url
        # The more specific allow wins over the deny: 127.0.0.1 is delivered to.
        create(dd, "al-2", valid_bodies()["ibm-1"])
        u = add_usage(dd, "al-2", callbackUrl=rx.url).json()
        create(dd, "al-2", valid_bodies()["ibm-1"])
        assert wait_for(lambda: rx.ok_calls(u["callbackSecret"]))
    finally:
        rx.close()
        finish(dd)
    # A host-name allow entry lets a name through whatever its addresses.
    rx = Receiver()
    dd = start("--webhook-allow", "localhost", "--webhook-deny", "127.0.0.0/8,::1")
    try:
        create(dd, "al-3", valid_bodies()["ibm-1"])
        u = add_usage(dd, "al-3", callbackUrl="http://localhost:%d/hook" % rx.port).json()
        assert hook_errors(dd, "al-3", rx.url)["field"] == "callbackUrl"
        create(dd, "al-3", valid_bodies()["ibm-1"])
        assert wait_for(lambda: rx.ok_calls(u["callbackSecret"]))
    finally:
        rx.close()
        finish(dd)


def test_bad_policy_options_stop_the_server():
    from harness import Daemon
    for args in (["--webhook-deny", "10.0.0.0/33"], ["--webhook-allow", "not a host"]):
        dd = Daemon(serve_args=args)
        try:
            with pytest.raises(RuntimeError) as exc:
                dd.start()
            assert "--webhook-" in str(exc.value), exc.value
        finally:
            dd.close()


def test_a_stored_url_with_userinfo_is_never_sent():
    """A record written before userinfo was refused is checked at delivery."""
    rx = Receiver()
    dd = start("--webhook-retry-ms", "100")
    try:
        create(dd, "old-1", valid_bodies()["ibm-1"])
        uid = add_usage(dd, "old-1", callbackUrl=rx.url).json()["id"]
        assert dd.stop() == 0
        env = lmdb.open(dd.data, max_dbs=16)
        db = env.open_db(b"usages")
        with env.begin(write=True) as txn:
            rec = json.loads(txn.get(uid.encode(), db=db))
            rec["callbackUrl"] = "http://user:pass@127.0.0.1:%d/hook" % rx.port
            txn.put(uid.encode(), json.dumps(rec).encode(), db=db)
        env.close()
        dd.start()
        create(dd, "old-1", valid_bodies()["ibm-1"])
        assert wait_for(lambda: len(refused_lines(dd)) >= 2), dd.log()[-2000:]
        assert "user name or password" in refused_lines(dd)[0]["msg"]
        assert "pass" not in refused_lines(dd)[0]["msg"].replace("password", "")
        assert rx.calls == []
    finally:
        rx.close()
        finish(dd)


def test_pending_deliveries_finish_after_a_restart_with_many_in_flight():
    """Stopping while deliveries hang loses nothing: each is delivered once
    after the restart."""
    hang = Hanging()
    port = hang.port
    dd = start("--webhook-retry-ms", "100")
    try:
        create(dd, "rs-1", valid_bodies()["ibm-1"])
        secrets = [add_usage(dd, "rs-1", callbackUrl=hang.url).json()["callbackSecret"]
                   for _ in range(3)]
        create(dd, "rs-1", valid_bodies()["ibm-1"])
        assert wait_for(lambda: hang.open == 2), hang.accepted
        t0 = time.time()
        assert dd.stop() == 0
        assert time.time() - t0 < QUICK, "stop waited for hanging deliveries"
        hang.close()
        rx = Receiver(port=port)
        try:
            dd.start()
            assert wait_for(lambda: all(rx.ok_calls(s) for s in secrets), timeout=20)
            time.sleep(0.5)
            assert sorted(len(rx.ok_calls(s)) for s in secrets) == [1, 1, 1], rx.calls
        finally:
            rx.close()
    finally:
        finish(dd)
