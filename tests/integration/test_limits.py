"""Limits that protect the service (API.md §6; server/api/dispatch.c, server/cli/config.c):
connection cap, per-connection timeout, request body cap, JSON depth cap, id
length cap and the list query caps. Every test is bounded in requests and
time and talks to 127.0.0.1 only."""
import json
import socket
import time

import pytest
import requests

from harness import SLOW, assert_error, finish, start

MIB = 1024 * 1024
GUID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def d():
    dd = start()
    yield dd
    finish(dd)


def api(d, method, path, **kw):
    """One request on its own connection (no pooled keep-alive to go stale)."""
    kw.setdefault("timeout", 15 * SLOW)
    headers = dict(d.auth)
    headers.update(kw.pop("headers", {}) or {})
    headers.setdefault("Connection", "close")
    return requests.request(method, d.url + path, headers=headers, **kw)


def healthy(d, timeout=3):
    r = requests.get(d.url + "/healthz", headers={"Connection": "close"}, timeout=timeout * SLOW)
    return r.status_code == 200 and r.json() == {"status": "ok"}


def connect(d, timeout=3):
    return socket.create_connection(("127.0.0.1", d.port), timeout=timeout * SLOW)


def recv_some(s, timeout):
    """First bytes from @s within @timeout: bytes, b"" on EOF, None when
    nothing came, "reset" on a reset."""
    s.settimeout(timeout)
    try:
        return s.recv(65536)
    except socket.timeout:
        return None
    except (ConnectionResetError, BrokenPipeError):
        return "reset"


def wait_closed(s, timeout):
    """Seconds until the peer closed @s (EOF or reset), None if still open
    after @timeout. Data that arrives meanwhile is read and dropped."""
    t0 = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except socket.timeout:
            return None
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
        if not b:
            return time.monotonic() - t0


GET_HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


# ------------------------------------------------------------ connection cap

def test_connection_cap():
    d = start("--max-connections", "20")
    socks = []
    try:
        # 20 keep-alive connections, each served once and then held idle.
        for i in range(20):
            s = connect(d)
            socks.append(s)
            s.sendall(GET_HEALTHZ)
            got = recv_some(s, 3 * SLOW)
            assert isinstance(got, bytes) and got.startswith(b"HTTP/1.1 200"), (i, got)
        # The 21st is refused, closed, or left unserved while the 20 are held.
        try:
            x = connect(d)
            x.sendall(GET_HEALTHZ)
            got = recv_some(x, 1.5)
        except OSError as e:  # refused or reset at connect/send
            x, got = None, repr(e)
        assert not (isinstance(got, bytes) and got.startswith(b"HTTP/1.1 200")), \
            "a 21st connection was served over --max-connections 20"
        # Freeing the slots lets new requests through.
        for s in socks:
            s.close()
        socks = []
        if x is not None and got is None:
            # Left waiting in the backlog: it is served once a slot frees up.
            late = recv_some(x, 5 * SLOW)
            assert isinstance(late, bytes) and late.startswith(b"HTTP/1.1 200"), late
        if x is not None:
            x.close()
        deadline = time.monotonic() + 5 * SLOW
        while True:
            try:
                if healthy(d, timeout=2):
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "no request served after the idle ones closed"
            time.sleep(0.1)
        for _ in range(25):  # more requests than the cap, one after another
            assert healthy(d)
    finally:
        for s in socks:
            s.close()
        finish(d)


# ---------------------------------------------------- per-connection timeout

def test_idle_connections_are_closed_after_conn_timeout():
    d = start("--conn-timeout", "1")
    try:
        # An idle keep-alive connection after one answered request.
        ka = connect(d)
        ka.sendall(GET_HEALTHZ)
        got = recv_some(ka, 3 * SLOW)
        assert isinstance(got, bytes) and got.startswith(b"HTTP/1.1 200"), got
        assert b"connection: close" not in got.lower()
        # A connection that never sends a byte, and one with half a request.
        silent = connect(d)
        partial = connect(d)
        partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.monotonic()
        for name, s in [("keep-alive", ka), ("silent", silent), ("partial", partial)]:
            left = 3 * SLOW - (time.monotonic() - t0)
            assert wait_closed(s, max(left, 0.1)) is not None, \
                "%s connection still open ~3 s after --conn-timeout 1" % name
            s.close()
        # A busy connection is not cut at the timeout: requests 0.4 s apart
        # over ~2.4 s on one connection all get answers.
        busy = connect(d)
        for i in range(6):
            busy.sendall(GET_HEALTHZ)
            got = recv_some(busy, 3 * SLOW)
            assert isinstance(got, bytes) and got.startswith(b"HTTP/1.1 200"), (i, got)
            time.sleep(0.4)
        busy.close()
        assert healthy(d)
    finally:
        finish(d)


# ----------------------------------------------------------------- body cap

def padded_credential(cid, size):
    """A valid credential body padded with trailing whitespace to @size bytes."""
    body = json.dumps({"_id": cid, "type": "ibmCloud", "accountGUID": GUID,
                       "secret": {"plain": "ibm-key-" + cid}}).encode()
    assert len(body) < size
    return body + b" " * (size - len(body))


def test_body_cap_exactly_1mib_accepted_one_more_byte_413(d):
    r = api(d, "POST", "/api/v1/credentials", data=padded_credential("cap-exact", MIB),
            headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text  # not refused for its size, and stored
    r = api(d, "POST", "/api/v1/credentials", data=padded_credential("cap-over", MIB + 1),
            headers={"Content-Type": "application/json"})
    assert_error(r, 413, "body_too_large")
    assert api(d, "GET", "/api/v1/credentials/cap-exact").status_code == 200
    assert_error(api(d, "GET", "/api/v1/credentials/cap-over"), 404)
    # The cap applies before routing and authentication too.
    r = requests.post(d.url + "/api/v1/credentials", data=b"x" * (MIB + 1),
                      headers={"Connection": "close"}, timeout=15 * SLOW)
    assert_error(r, 413, "body_too_large")
    # A chunked body (no declared length) is counted as it streams.
    def chunks():
        for _ in range(2 * MIB // 65536):
            yield b" " * 65536
    r = api(d, "POST", "/api/v1/credentials", data=chunks())
    assert_error(r, 413, "body_too_large")
    assert healthy(d)


def test_body_cap_huge_declared_body_is_not_read(d):
    """Content-Length 20 MiB: the server answers 413 or closes; it does not
    read the whole body (the client cannot push all 20 MiB through)."""
    declared = 20 * MIB
    s = connect(d)
    try:
        s.sendall(("POST /api/v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Authorization: %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n" % (d.auth["Authorization"], declared)).encode())
        s.settimeout(2 * SLOW)
        sent, outcome = 0, None
        chunk = b" " * (256 * 1024)
        t0 = time.monotonic()
        while sent < declared and time.monotonic() - t0 < 10 * SLOW:
            try:
                sent += s.send(chunk)
            except socket.timeout:
                outcome = "blocked"  # the server stopped reading
                break
            except (BrokenPipeError, ConnectionResetError):
                outcome = "closed"
                break
        reply = recv_some(s, 2 * SLOW) if outcome != "closed" else "reset"
        if isinstance(reply, bytes) and reply:
            assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
            outcome = "413"
        assert outcome in ("blocked", "closed", "413") or reply in (b"", "reset"), \
            (outcome, sent, reply)
        assert sent < declared, "the server read the whole 20 MiB body"
    finally:
        s.close()
    assert healthy(d)
    assert api(d, "GET", "/api/v1/credentials").status_code == 200


# ----------------------------------------------------------- JSON depth cap

def nested_arrays(depth_inside):
    return "[" * depth_inside + "]" * depth_inside


def test_json_depth_cap(d):
    # Depth counts every object and array; the outer object is level 1.
    base = '{"_id":"depth-x","type":"aws","useAWSRole":true,"durationSeconds":%s}'
    at_cap = base % nested_arrays(31)       # depth 32: parsed, then fails validation
    over_cap = base % nested_arrays(32)     # depth 33: refused by the parser
    r = api(d, "POST", "/api/v1/credentials", data=at_cap)
    err = assert_error(r, 400)
    assert err["code"] != "json_too_deep" and err.get("field") == "durationSeconds", err
    assert_error(api(d, "POST", "/api/v1/credentials", data=over_cap), 400, "json_too_deep")
    # Pure object nesting at depth 32 in an ignored field is accepted outright.
    deep_obj = '{"a":' * 31 + "1" + "}" * 31
    ok = '{"_id":"depth-ok","type":"aws","useAWSRole":true,"extra":%s}' % deep_obj
    assert api(d, "POST", "/api/v1/credentials", data=ok).status_code == 201
    too = '{"_id":"depth-no","type":"aws","useAWSRole":true,"extra":{"b":%s}}' % deep_obj
    assert_error(api(d, "POST", "/api/v1/credentials", data=too), 400, "json_too_deep")
    assert_error(api(d, "GET", "/api/v1/credentials/depth-no"), 404)
    # Brackets inside strings do not count.
    r = api(d, "POST", "/api/v1/credentials",
            json={"_id": "depth-str", "type": "aws", "useAWSRole": True,
                  "description": "[{" * 200})
    assert r.status_code == 201, r.text
    assert r.json()["description"] == "[{" * 200
    # Very deep input (near the body cap) is refused fast, without recursion.
    t0 = time.monotonic()
    r = api(d, "POST", "/api/v1/credentials", data="[" * (MIB - 16))
    assert_error(r, 400, "json_too_deep")
    assert time.monotonic() - t0 < 5 * SLOW
    # Every JSON-taking route applies the same cap.
    cid = "depth-ok"
    u = api(d, "POST", "/api/v1/credentials/%s/usages" % cid, json={"type": "Cloud Scan"})
    assert u.status_code == 201, u.text
    deep33 = '{"x":%s}' % nested_arrays(32)
    for method, path in [
            ("POST", "/api/v1/login"),
            ("POST", "/api/v1/access_keys"),
            ("POST", "/api/v1/credentials"),
            ("PUT", "/api/v1/credentials/" + cid),
            ("POST", "/api/v1/credentials/%s/usages" % cid),
            ("POST", "/api/v1/credentials/%s/resolve" % cid)]:
        r = api(d, method, path, data=deep33)
        assert_error(r, 400, "json_too_deep")
    assert healthy(d)


# ------------------------------------------------------------ id length cap

def test_id_length_cap_body_and_path(d):
    ok, long = "i" * 128, "i" * 129
    body = {"type": "ibmCloud", "accountGUID": GUID, "secret": {"plain": "ibm-key-long-id"}}
    r = api(d, "POST", "/api/v1/credentials", json=dict(body, _id=ok))
    assert r.status_code == 201, r.text
    assert r.json()["_id"] == ok
    err = assert_error(api(d, "POST", "/api/v1/credentials", json=dict(body, _id=long)),
                       400, "invalid_id")
    assert err.get("field") == "_id", err
    # Path ids.
    assert api(d, "GET", "/api/v1/credentials/" + ok).json()["_id"] == ok
    r = api(d, "PUT", "/api/v1/credentials/" + ok, json=dict(body, description="v2"))
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    u = api(d, "POST", "/api/v1/credentials/%s/usages" % ok, json={"type": "Cloud Scan"})
    assert u.status_code == 201, u.text
    uid = u.json()["id"]
    r = api(d, "POST", "/api/v1/credentials/%s/resolve" % ok, json={"usageId": uid})
    assert r.status_code == 200 and r.json()["apiKey"] == "ibm-key-long-id", r.text
    for method, path, kw in [
            ("GET", "/api/v1/credentials/" + long, {}),
            ("PUT", "/api/v1/credentials/" + long, {"json": body}),
            ("DELETE", "/api/v1/credentials/" + long, {}),
            ("GET", "/api/v1/credentials/%s/usages" % long, {}),
            ("POST", "/api/v1/credentials/%s/usages" % long, {"json": {"type": "x"}}),
            ("POST", "/api/v1/credentials/%s/resolve" % long, {"json": {"usageId": uid}})]:
        assert_error(api(d, method, path, **kw), 400, "invalid_id")
    # Nothing was created under the long id, or under its 128-char prefix.
    listed = api(d, "GET", "/api/v1/credentials?limit=500").json()
    assert long not in {c["_id"] for c in listed}
    assert api(d, "GET", "/api/v1/credentials/" + ok).json()["version"] == 2


def test_overlong_body_id_is_invalid_id(d):
    """An _id present but longer than 129 characters is an invalid id, as 129
    characters is; it must not be reported as a missing field."""
    for n in (130, 1000, 100000):
        r = api(d, "POST", "/api/v1/credentials",
                json={"_id": "j" * n, "type": "aws", "useAWSRole": True})
        err = assert_error(r, 400, "invalid_id")
        assert err.get("field") == "_id", (n, err)


# -------------------------------------------------------------- query caps

def test_list_query_caps(d):
    assert api(d, "GET", "/api/v1/credentials?limit=500").status_code == 200
    assert api(d, "GET", "/api/v1/credentials?limit=1").status_code == 200
    for q in ["limit=501", "limit=0", "limit=-1", "limit=abc", "limit=1e3",
              "limit=99999999999999999999999", "offset=-1", "offset=x",
              "search=" + "s" * 129, "type=vault", "sort=password", "reverse=maybe"]:
        assert_error(api(d, "GET", "/api/v1/credentials?" + q), 400, "invalid_query")
    sid = "s" * 128
    assert api(d, "POST", "/api/v1/credentials",
               json={"_id": sid, "type": "aws", "useAWSRole": True}).status_code == 201
    r = api(d, "GET", "/api/v1/credentials?search=" + sid)
    assert r.status_code == 200 and [c["_id"] for c in r.json()] == [sid], r.text
    assert_error(api(d, "GET", "/api/v1/events?wait=61"), 400, "invalid_query")
    assert_error(api(d, "GET", "/api/v1/audit?limit=100000"), 400, "invalid_query")
    assert healthy(d)


def test_list_matching_nothing_keeps_serving():
    """A list whose filter matches none of the stored credentials (and an
    offset past the end) answers 200 [] and the server lives on; in a
    sanitizer build this must not trip UBSan (qsort of an empty list)."""
    d = start()
    try:
        assert api(d, "POST", "/api/v1/credentials",
                   json={"_id": "only-one", "type": "aws", "useAWSRole": True}).status_code == 201
        for q in ["search=no-such-thing", "type=azure", "offset=5", "search=zz&sort=created"]:
            r = api(d, "GET", "/api/v1/credentials?" + q)
            assert r.status_code == 200 and r.json() == [], (q, r.text)
            assert r.headers["Total-Count"] == ("1" if q == "offset=5" else "0"), q
        assert healthy(d)
    finally:
        finish(d)
