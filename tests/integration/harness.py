"""Integration harness: the real credstore daemon on a free loopback port
with a temporary data dir, driven over HTTP.

Environment:
  CREDSTORE_BIN           path to the built binary (set by ctest)
  CREDSTORE_TEST_WRAPPER  command prefix for `serve` (e.g. valgrind ...)
"""
import base64
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import requests

BIN = os.environ.get("CREDSTORE_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "credstore")
WRAPPER = shlex.split(os.environ.get("CREDSTORE_TEST_WRAPPER", "") or "")
# Slow wrappers (valgrind) need longer start-up and request timeouts.
SLOW = 10 if WRAPPER else 1


def run_cli(*args, env=None, input=None, timeout=60):
    """Run a credstore command; returns CompletedProcess with text output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True,
                          env=full_env, input=input, timeout=timeout * SLOW)


class Daemon:
    """One credstore instance: init (unless given a dir) and serve."""

    def __init__(self, data_dir=None, init_args=(), serve_args=(), env=None, store=None):
        self.tmp = tempfile.mkdtemp(prefix="credstore-it-")
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.admin = None
        if data_dir is None:
            data_dir = os.path.join(self.tmp, "data")
            r = run_cli("init", "--data", data_dir, *init_args, env=env)
            if r.returncode != 0:
                raise RuntimeError("init failed: " + r.stderr)
            self.admin = json.loads(r.stdout)
        self.data = data_dir
        # --store URL (cluster mode: data_dir names nothing) instead of --data DIR.
        self.store_args = ["--store", store] if store else ["--data", self.data]
        self.serve_args = list(serve_args)
        self.log_path = os.path.join(self.tmp, "serve.log")
        self.proc = None
        self.port = None
        self.session = requests.Session()
        self.scheme = "http"

    # -- lifecycle ---------------------------------------------------------
    def start(self, extra=()):
        self._log = open(self.log_path, "ab")
        cmd = WRAPPER + [BIN, "serve", *self.store_args, "--listen", "127.0.0.1:0",
                         "--log-level", "debug", *self.serve_args, *extra]
        start_len = os.path.getsize(self.log_path)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log,
                                     env=self.env)
        deadline = time.time() + 20 * SLOW
        while time.time() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(start_len)
                m = re.search(rb"listening on \S+ port (\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                self.url = "%s://127.0.0.1:%d" % (self.scheme, self.port)
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("serve exited %d: %s" % (self.proc.returncode, self.log()))
            time.sleep(0.02)
        raise RuntimeError("serve did not start: " + self.log())

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Stop the daemon; returns its exit code."""
        if not self.proc:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self._log.close()
        return rc

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self._log.close()

    def close(self):
        self.kill()
        self.session.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pred, timeout=10):
        """Log lines matching pred, polling: the access line is written when
        MHD completes the request, which can be just after the client has
        read the response."""
        deadline = time.time() + timeout * SLOW
        while True:
            found = [l for l in self.log_lines() if pred(l)]
            if found or time.time() > deadline:
                return found
            time.sleep(0.02)

    def log_lines(self):
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    # -- HTTP ----------------------------------------------------------------
    def request(self, method, path, **kw):
        kw.setdefault("timeout", 30 * SLOW)
        return self.session.request(method, self.url + path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def basic(key_id, secret):
    """An Authorization: Basic value for an access key."""
    return "Basic " + base64.b64encode(("%s:%s" % (key_id, secret)).encode()).decode()


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_lines(d):
    """Lines of the daemon's log where ASan/LSan/UBSan reported something."""
    return [l for l in d.log().splitlines() if any(m in l for m in SANITIZER_MARKS)]


def start(*serve_args):
    """A started daemon with d.auth = Basic auth of its bootstrap admin key."""
    d = Daemon(serve_args=list(serve_args)).start()
    d.auth = {"Authorization": basic(d.admin["id"], d.admin["secret"])}
    return d


def finish(d):
    """SIGTERM, clean exit, no sanitizer report in the log."""
    try:
        rc = d.stop()
        assert rc == 0, "serve did not exit cleanly: %r\n%s" % (rc, d.log()[-3000:])
        assert not sanitizer_lines(d), sanitizer_lines(d)[:10]
    finally:
        d.close()


def assert_error(resp, status, code=None):
    """An error response: the status, a JSON body with err and code."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert isinstance(body.get("err"), str) and body["err"], body
    assert isinstance(body.get("code"), str) and re.fullmatch(r"[a-z0-9_]+", body["code"]), body
    if code is not None:
        assert body["code"] == code, body
    return body


# ------------------------------------------------------------- raw socket

class Raw:
    """A raw client connection with a tiny HTTP/1.1 response reader."""

    def __init__(self, d, timeout=3, src=None):
        self.s = socket.create_connection(("127.0.0.1", d.port), timeout=timeout * SLOW,
                                          source_address=(src, 0) if src else None)
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.s.sendall(data)

    def close(self):
        self.s.close()

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0 or self.eof:
            return False
        self.s.settimeout(left)
        try:
            b = self.s.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            self.eof = True
            return False
        if not b:
            self.eof = True
            return False
        self.buf += b
        return True

    def response(self, timeout=3):
        """(status, headers, body) of the next response; None if the
        connection closed or stayed silent first."""
        deadline = time.monotonic() + timeout * SLOW
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            if not self._fill(deadline):
                break
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed_within(self, timeout):
        """Seconds until the server closed the connection (data read and
        dropped meanwhile), or None if it is still open after @timeout."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while not self.eof:
            self.buf = b""
            if not self._fill(deadline) and not self.eof:
                return None
        return time.monotonic() - t0


def req(method, path, headers=(), body=b"", auth=None, host=True):
    lines = ["%s %s HTTP/1.1" % (method, path)]
    if host:
        lines.append("Host: 127.0.0.1")
    if auth:
        lines.append("Authorization: " + auth)
    lines += list(headers)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body
