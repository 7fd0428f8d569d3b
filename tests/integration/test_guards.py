"""The HTTP layer's guards (issue 11): a whole request must arrive within
--conn-timeout; unauthenticated clients are answered from the headers and
never get to upload a large body; one address cannot take every connection;
failed access-key attempts are limited per client address (IPv6 by /64),
whatever ids are named, without locking anyone else out; X-Forwarded-For
counts only from --trusted-proxies; the audit trail does not grow by one
entry per refused attempt. Loopback only (127.0.0.2 and 127.0.0.3 are other
addresses: all of 127/8 is loopback on Linux); every test is bounded."""
import http.client
import json
import os
import re
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from harness import SLOW, Raw, assert_error, basic, finish, req, start

MIB = 1024 * 1024
GUID = "0123456789abcdef0123456789abcdef"


def send_from(d, src, method, path, body=None, headers=None, timeout=10):
    """(status, headers, body) of one request on its own connection from @src."""
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout * SLOW,
                                   source_address=(src, 0))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def login(d, src, key_id, secret, xff=None):
    headers = {"Content-Type": "application/json"}
    if xff is not None:
        headers["X-Forwarded-For"] = xff
    return send_from(d, src, "POST", "/api/v1/login",
                     json.dumps({"username": key_id, "password": secret}), headers)[0]


def basic_get(d, src, authz, xff=None):
    headers = {"Authorization": authz}
    if xff is not None:
        headers["X-Forwarded-For"] = xff
    return send_from(d, src, "GET", "/api/v1/version", headers=headers)[0]


def audit(d):
    r = requests.get(d.url + "/api/v1/audit?limit=1000",
                     headers=dict(d.auth, Connection="close"), timeout=15 * SLOW)
    assert r.status_code == 200, r.text
    return r.json()


def metric(d, name, **labels):
    r = requests.get(d.url + "/metrics", headers=dict(d.auth, Connection="close"),
                     timeout=15 * SLOW)
    want = name + ("{" + ",".join('%s="%s"' % kv for kv in sorted(labels.items())) + "}"
                   if labels else "")
    for line in r.text.splitlines():
        if line.startswith(want + " "):
            return int(float(line.split()[-1]))
    return 0


def new_key(d, role="operator"):
    r = requests.post(d.url + "/api/v1/access_keys", json={"name": "k", "role": role},
                      headers=dict(d.auth, Connection="close"), timeout=15 * SLOW)
    assert r.status_code == 201, r.text
    return r.json()


class Prober(threading.Thread):
    """GET /healthz from 127.0.0.1 every 0.1 s until stopped."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d, self.stop, self.lat, self.errors = d, threading.Event(), [], []

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                r = requests.get(self.d.url + "/healthz", headers={"Connection": "close"},
                                 timeout=5 * SLOW)
                if r.status_code != 200:
                    self.errors.append(r.status_code)
            except requests.RequestException as e:
                self.errors.append(repr(e))
            self.lat.append(time.monotonic() - t0)
            self.stop.wait(0.1)

    def finish(self):
        self.stop.set()
        self.join(10)
        assert not self.errors, self.errors[:5]
        assert len(self.lat) >= 5 and max(self.lat) < 1.0 * SLOW, max(self.lat)


# ------------------------------------------------------ whole-request deadline

CONN_TIMEOUT = 2


def trickle(d, jobs, budget):
    """Open one connection per (src, head, body) job, send each head at
    once, then one body byte per job every 0.2 s until the server closes
    the connection or @budget seconds pass. Returns the seconds after which
    each was closed (None: still open)."""
    socks, closed = [], []
    for src, head, _ in jobs:
        s = socket.create_connection(("127.0.0.1", d.port), timeout=3 * SLOW,
                                     source_address=(src, 0))
        s.sendall(head)
        socks.append(s)
        closed.append(None)
    t0 = time.monotonic()
    pos = [0] * len(jobs)
    try:
        while time.monotonic() - t0 < budget and None in closed:
            for i, s in enumerate(socks):
                if closed[i] is not None:
                    continue
                body = jobs[i][2]
                try:
                    if pos[i] < len(body) - 1:  # never complete the request
                        s.send(body[pos[i]:pos[i] + 1])
                        pos[i] += 1
                    r, _, _ = select.select([s], [], [], 0)
                    if r and s.recv(65536) == b"":
                        closed[i] = time.monotonic() - t0
                except (BrokenPipeError, ConnectionResetError):
                    closed[i] = time.monotonic() - t0
            time.sleep(0.2)
    finally:
        for s in socks:
            s.close()
    return closed


def test_slow_bodies_are_cut_off_while_others_are_served():
    """Login bodies, authenticated-route bodies and chunked bodies sent at
    a trickle are all cut off about --conn-timeout after the request began,
    though every byte is activity; a normal client is served throughout."""
    d = start("--conn-timeout", str(CONN_TIMEOUT))
    try:
        auth = d.auth["Authorization"]
        login_body = json.dumps({"username": "ak-x", "password": "y" * 200}).encode()
        cred = json.dumps({"_id": "slow-1", "type": "ibmCloud", "accountGUID": GUID,
                           "secret": {"plain": "k" * 200}}).encode()
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(cred), cred)
        jobs = []
        for i in range(8):
            jobs.append(("127.0.0.2", req("POST", "/api/v1/login", headers=[
                "Content-Type: application/json", "Content-Length: %d" % len(login_body)]),
                login_body))
        for i in range(6):
            jobs.append(("127.0.0.2", req("POST", "/api/v1/credentials", auth=auth, headers=[
                "Content-Type: application/json", "Content-Length: %d" % len(cred)]), cred))
        for i in range(4):
            jobs.append(("127.0.0.3", req("PUT", "/api/v1/credentials/slow-1", auth=auth,
                                          headers=["Transfer-Encoding: chunked"]), chunked))
        probe = Prober(d)
        probe.start()
        closed = trickle(d, jobs, CONN_TIMEOUT + 5)
        probe.finish()
        late = [(i, t) for i, t in enumerate(closed) if t is None or t > CONN_TIMEOUT + 2.5]
        early = [(i, t) for i, t in enumerate(closed) if t is not None and t < CONN_TIMEOUT - 0.5]
        assert not late, "trickling requests not cut off by ~%ds: %r" % (CONN_TIMEOUT + 2, late)
        assert not early, "cut off before --conn-timeout: %r" % early
        r = requests.get(d.url + "/api/v1/credentials/slow-1", headers=d.auth, timeout=5 * SLOW)
        assert r.status_code == 404
        # A body that trickles but arrives in time is served.
        c = Raw(d)
        c.send(req("POST", "/api/v1/credentials", auth=auth, headers=[
            "Content-Type: application/json", "Content-Length: %d" % len(cred)]))
        for i in range(0, len(cred), len(cred) // 8 + 1):
            time.sleep(0.1)
            c.send(cred[i:i + len(cred) // 8 + 1])
        resp = c.response(timeout=5)
        c.close()
        assert resp is not None and resp[0] == 201, resp and resp[:2]
    finally:
        finish(d)


def test_long_poll_outlives_the_request_deadline():
    """A long-poll is a request being handled (suspended), not one still
    arriving: it is answered when its wait runs out, past --conn-timeout."""
    d = start("--conn-timeout", "1")
    try:
        t0 = time.monotonic()
        r = requests.get(d.url + "/api/v1/events?since=0&wait=4",
                         headers=dict(d.auth, Connection="close"), timeout=20 * SLOW)
        took = time.monotonic() - t0
        assert r.status_code == 200 and r.json()["events"] == [], r.text
        assert took >= 3.5, "long-poll answered after %.1fs, expected ~4s" % took
    finally:
        finish(d)


# ---------------------------------------------- refused before the body is read

def test_unauthenticated_upload_is_refused_from_the_headers():
    """The headers of a 1 MiB upload to an authenticated route, with no or
    a bad credential, get 401 at once (and 413 past the cap), before any of
    the body is sent; the connection then closes. An authenticated client's
    upload is waited for and read."""
    d = start("--auth-max-failures", "1000")
    try:
        problems = []
        auths = {
            "none": [],
            "wrong Basic": ["Authorization: " + basic(d.admin["id"], "0" * 64)],
            "malformed Basic": ["Authorization: Basic !!!"],
            "bad Bearer": ["Authorization: Bearer a.b.c"],
            "bad x-redlock-auth": ["x-redlock-auth: nope"],
            "unknown scheme": ["Authorization: Digest x"],
        }
        targets = [("POST", "/api/v1/credentials"), ("PUT", "/api/v1/credentials/x"),
                   ("POST", "/api/v1/credentials/x/resolve"), ("POST", "/api/v1/access_keys"),
                   ("POST", "/api/v1/credentials/x/usages")]
        framings = {"1 MiB": ["Content-Length: %d" % MIB],
                    "1 MiB + 1": ["Content-Length: %d" % (MIB + 1)],
                    "chunked": ["Transfer-Encoding: chunked"],
                    "expect 100": ["Content-Length: %d" % MIB, "Expect: 100-continue"]}
        for aname, ah in auths.items():
            for method, path in targets:
                for fname, fh in framings.items():
                    c = Raw(d)
                    c.send(req(method, path, headers=["Content-Type: application/json"] + ah + fh))
                    resp = c.response(timeout=3)
                    closed = c.closed_within(3 * SLOW) if resp else None
                    c.close()
                    want = 413 if fname == "1 MiB + 1" else 401
                    label = "%s %s, %s, %s" % (method, path, aname, fname)
                    if resp is None or resp[0] != want:
                        problems.append("%s: %r" % (label, resp and resp[:2]))
                    elif resp[1].get("connection", "").lower() != "close" or closed is None:
                        problems.append("%s: connection kept open" % label)
        assert not problems, "\n".join(problems[:20])
        # Authenticated: the server waits for the body, then answers it.
        c = Raw(d)
        body = json.dumps({"_id": "up-1", "type": "ibmCloud", "accountGUID": GUID,
                           "secret": {"plain": "k"}}).encode()
        body += b" " * (MIB - len(body))
        c.send(req("POST", "/api/v1/credentials", auth=d.auth["Authorization"],
                   headers=["Content-Type: application/json", "Content-Length: %d" % MIB]))
        assert c.response(timeout=1) is None, "answered before the body was sent"
        c.send(body)
        resp = c.response(timeout=10)
        c.close()
        assert resp is not None and resp[0] == 201, resp and resp[:2]
    finally:
        finish(d)


def test_public_bodies_are_capped_small():
    """Login needs a few hundred bytes: 4 KiB is accepted (and judged), one
    byte more is 413, declared or chunked."""
    d = start("--auth-max-failures", "1000")
    try:
        def padded(n):
            b = json.dumps({"username": "ak-nobody", "password": "x"}).encode()
            return b + b" " * (n - len(b))
        st, _, body = send_from(d, "127.0.0.1", "POST", "/api/v1/login", padded(4096),
                                {"Content-Type": "application/json"})
        assert st == 401 and json.loads(body)["code"] == "invalid_credentials", body
        for n in (4097, 5000, 64 * 1024, MIB):
            r = requests.post(d.url + "/api/v1/login", data=padded(n),
                              headers={"Connection": "close"}, timeout=15 * SLOW)
            assert_error(r, 413, "body_too_large")
        c = Raw(d)
        big = padded(5000)
        c.send(req("POST", "/api/v1/login", headers=["Transfer-Encoding: chunked"],
                   body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big)))
        resp = c.response(timeout=3)
        c.close()
        assert resp is not None and resp[0] == 413, resp and resp[:2]
        # Other public routes take no more.
        st, _, _ = send_from(d, "127.0.0.1", "GET", "/healthz", b"h" * 5000)
        assert st == 413
    finally:
        finish(d)


# ----------------------------------------------------- per-address connections

def open_served(d, src):
    """A keep-alive connection from @src with one request answered."""
    c = Raw(d, src=src)
    c.send(req("GET", "/healthz"))
    resp = c.response(timeout=3)
    assert resp is not None and resp[0] == 200, (src, resp)
    return c


def test_per_address_connection_limit():
    d = start("--max-connections-per-address", "4", "--trusted-proxies", "127.0.0.4/32")
    held = []
    try:
        held = [open_served(d, "127.0.0.2") for _ in range(4)]
        # A fifth from the same address is shut without an answer.
        x = Raw(d, src="127.0.0.2")
        try:
            x.send(req("GET", "/healthz"))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert x.response(timeout=2) is None
        assert x.closed_within(2 * SLOW) is not None
        x.close()
        # Other addresses are served meanwhile.
        for src in ("127.0.0.3", "127.0.0.1"):
            open_served(d, src).close()
        # A trusted proxy carries many clients: not limited per address.
        proxied = [open_served(d, "127.0.0.4") for _ in range(8)]
        for c in proxied:
            c.close()
        # A freed slot is usable again.
        held.pop().close()
        deadline = time.monotonic() + 5 * SLOW
        while True:
            try:
                held.append(open_served(d, "127.0.0.2"))
                break
            except AssertionError:
                assert time.monotonic() < deadline, "freed slot never reusable"
                time.sleep(0.1)
        assert metric(d, "credstore_connections_refused_total") >= 1
    finally:
        for c in held:
            c.close()
        finish(d)


# ------------------------------------------------------------ brute force

def fnv_slot(kind, subject):
    """The slot the old table (FNV-1a, 4096 slots) gave a subject."""
    h = 1469598103934665603 ^ ord(kind)
    for b in subject.encode():
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return (h or 1) % 4096


def colliding_ids(kind, subject, n):
    """Key ids the old table put in the same slot as (@kind, @subject)."""
    want, out, i = fnv_slot(kind, subject), [], 0
    while len(out) < n:
        cand = "ak-%024x" % i
        if fnv_slot("k", cand) == want:
            out.append(cand)
        i += 1
    return out


def test_no_choice_of_ids_exceeds_the_limit():
    """From one address, at most --auth-max-failures failures before 429,
    whatever ids are named: ids chosen to collide in the old table with the
    address and with the key, random ids, empty and oversize ids, swapped
    id and secret, malformed Basic, login and Basic interleaved, and correct
    logins of the attacker's own key in between."""
    d = start("--auth-max-failures", "5", "--auth-cooloff", "60")
    try:
        mine = new_key(d)
        src = "127.0.0.2"
        ids = colliding_ids("a", src, 4) + colliding_ids("k", d.admin["id"], 4) + [
            d.admin["id"], "", "ak-" + "0" * 24, "i" * 3000, d.admin["secret"]]
        wrong = [("login", kid, "f" * 64) for kid in ids] + \
                [("basic", basic(kid, "f" * 64), None) for kid in ids] + \
                [("basic", "Basic " + b, None) for b in ("!!!", "Og==", "OnNlY3JldA==",
                                                          "bm9jb2xvbg==", "")]
        attempts = []
        for i, w in enumerate(wrong):
            attempts.append(w)
            if i % 2:  # the attacker's own key, right, in between
                attempts.append(("login", mine["id"], mine["secret"]))
        statuses = [login(d, src, a, b) if kind == "login" else basic_get(d, src, a)
                    for kind, a, b in attempts]
        first_429 = statuses.index(429)
        assert statuses[:first_429].count(401) == 5, statuses
        assert set(statuses[:first_429]) <= {200, 401}, statuses
        assert set(statuses[first_429:]) == {429}, statuses
    finally:
        finish(d)


def test_concurrent_guesses_cannot_overrun_the_limit():
    d = start("--auth-max-failures", "5", "--auth-cooloff", "60")
    try:
        with ThreadPoolExecutor(max_workers=24) as pool:
            got = list(pool.map(lambda i: login(d, "127.0.0.3", "ak-%024x" % i, "f" * 64),
                                range(48)))
        assert got.count(401) == 5 and got.count(429) == 43, got
    finally:
        finish(d)


def test_attacker_cannot_lock_out_a_key():
    """An address cooling off on the admin's key id slows down that address
    only: the right secret works from every other address, by login and by
    Basic, and also from the attacker's address once its cool-off ends."""
    d = start("--auth-max-failures", "3", "--auth-cooloff", "2")
    try:
        aid, sec = d.admin["id"], d.admin["secret"]
        for _ in range(3):
            assert login(d, "127.0.0.2", aid, "f" * 64) == 401
        assert login(d, "127.0.0.2", aid, sec) == 429
        assert basic_get(d, "127.0.0.2", basic(aid, sec)) == 429
        for _ in range(5):  # it keeps trying: still nobody else is affected
            assert login(d, "127.0.0.2", aid, "f" * 64) == 429
        for src in ("127.0.0.1", "127.0.0.3"):
            assert login(d, src, aid, sec) == 200
            assert basic_get(d, src, basic(aid, sec)) == 200
        time.sleep(2.2)
        assert login(d, "127.0.0.2", aid, sec) == 200
    finally:
        finish(d)


# ------------------------------------------------------------ X-Forwarded-For

def remotes(d, msg):
    return [l.get("remote") for l in d.log_lines() if l.get("msg") == msg]


def test_spoofed_forwarded_for_is_ignored_from_untrusted_peers():
    d = start("--auth-max-failures", "3", "--auth-cooloff", "60")
    try:
        got = [login(d, "127.0.0.2", d.admin["id"], "f" * 64, xff="198.51.100.%d" % i)
               for i in range(8)]
        assert got == [401] * 3 + [429] * 5, got
        assert basic_get(d, "127.0.0.2", basic(d.admin["id"], d.admin["secret"]),
                         xff="203.0.113.1") == 429
        # The log and the audit trail name the peer, not the header.
        fails = d.wait_log(lambda l: l.get("msg") == "authentication failure")
        assert {l["remote"] for l in fails} == {"127.0.0.2"}
        entries = [e for e in audit(d) if e["action"] == "auth"]
        assert {e["remote"] for e in entries} == {"127.0.0.2"}
        assert "198.51.100" not in d.log()
    finally:
        finish(d)


def test_forwarded_for_from_a_trusted_proxy():
    """Behind --trusted-proxies, clients are told apart by X-Forwarded-For
    (right-most untrusted hop): one cooling off does not hold back another;
    a client cannot escape by prepending addresses; IPv6 clients count by
    /64 and IPv4-mapped IPv6 as IPv4; log, audit and limit see one address."""
    d = start("--auth-max-failures", "3", "--auth-cooloff", "60",
              "--trusted-proxies", "127.0.0.1/32")
    try:
        aid, sec, wrong = d.admin["id"], d.admin["secret"], "f" * 64
        for _ in range(3):
            assert login(d, "127.0.0.1", aid, wrong, xff="198.51.100.1") == 401
        assert login(d, "127.0.0.1", aid, sec, xff="198.51.100.1") == 429
        assert login(d, "127.0.0.1", aid, sec, xff="10.9.9.9, 198.51.100.1") == 429
        assert login(d, "127.0.0.1", aid, sec, xff="::ffff:198.51.100.1") == 429
        assert login(d, "127.0.0.1", aid, sec, xff="198.51.100.2") == 200
        assert basic_get(d, "127.0.0.1", basic(aid, sec), xff="198.51.100.2") == 200
        # IPv6: the /64 is one client.
        for _ in range(3):
            assert login(d, "127.0.0.1", aid, wrong, xff="2001:db8:1:2::1") == 401
        assert login(d, "127.0.0.1", aid, sec, xff="2001:db8:1:2:ffff::9") == 429
        assert login(d, "127.0.0.1", aid, sec, xff="[2001:db8:1:3::1]:5555") == 200
        # An untrusted peer's header is still ignored.
        assert login(d, "127.0.0.3", aid, sec, xff="198.51.100.1") == 200
        logged = set(remotes(d, "authentication failure"))
        assert logged == {"198.51.100.1", "2001:db8:1:2::1"}, logged
        entries = [e for e in audit(d) if e["action"] == "auth"]
        assert {e["remote"] for e in entries if e["result"] == "failure"} == logged
        # The log names the client's own address; the limit counts its /64.
        want = {"198.51.100.1", "198.51.100.2", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9",
                "2001:db8:1:3::1", "127.0.0.3"}
        deadline = time.monotonic() + 10 * SLOW
        while True:  # the access line is written when MHD completes the request
            access = {l["remote"] for l in d.log_lines() if l.get("msg") == "request"
                      and l.get("route") == "login"}
            if want <= access or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert access == want, access
    finally:
        finish(d)


def test_keep_alive_connection_logs_each_requests_own_client():
    """The peer's address is formatted once per connection: on one kept-alive
    connection from a trusted proxy, each request is still logged with its
    own client (forwarded, then the proxy itself, then another), and on one
    from an untrusted peer every request names that peer. Request ids stay
    16 hex digits, one per request."""
    d = start("--trusted-proxies", "127.0.0.1/32")
    try:
        sends = [("127.0.0.1", ["198.51.100.7", None, "2001:db8::5", None]),
                 ("127.0.0.2", ["198.51.100.8", None])]
        authz = basic(d.admin["id"], d.admin["secret"])
        rids = {}
        for src, xffs in sends:
            c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10 * SLOW,
                                           source_address=(src, 0))
            try:
                for xff in xffs:
                    headers = {"Authorization": authz}
                    if xff:
                        headers["X-Forwarded-For"] = xff
                    c.request("GET", "/api/v1/version", headers=headers)
                    r = c.getresponse()
                    r.read()
                    assert r.status == 200
                    assert r.getheader("Connection", "").lower() != "close"
                    rid = r.getheader("X-Request-Id")
                    assert re.fullmatch(r"[0-9a-f]{16}", rid), rid
                    assert rid not in rids
                    rids[rid] = xff if src == "127.0.0.1" and xff else src
            finally:
                c.close()
        want = rids
        deadline = time.monotonic() + 10 * SLOW
        while True:  # the access line is written when MHD completes the request
            got = {l["rid"]: l["remote"] for l in d.log_lines()
                   if l.get("msg") == "request" and l.get("rid") in want}
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert got == want, (got, want)
    finally:
        finish(d)


# -------------------------------------------------------------- audit growth

def test_refused_attempts_do_not_grow_the_audit_trail():
    """40 wrong attempts from one address with --auth-max-failures 3: the
    audit trail gets the 3 failures and one rate_limited entry; every
    attempt is still counted in /metrics and logged."""
    d = start("--auth-max-failures", "3", "--auth-cooloff", "60")
    try:
        before = len(audit(d))
        for i in range(40):
            if i % 2:
                login(d, "127.0.0.2", "ak-%024x" % i, "f" * 64)
            else:
                basic_get(d, "127.0.0.2", basic("ak-%024x" % i, "f" * 64))
        entries = [e for e in audit(d)[before:] if e["action"] == "auth"]
        assert [e["result"] for e in entries] == ["failure"] * 3 + ["rate_limited"], entries
        assert all(e["remote"] == "127.0.0.2" for e in entries)
        assert metric(d, "credstore_auth_attempts_total", result="failure") == 3
        assert metric(d, "credstore_auth_attempts_total", result="rate_limited") == 37
        deadline = time.monotonic() + 10 * SLOW
        while True:  # log lines are written by a thread: poll for them
            limited = [l for l in d.log_lines() if l.get("msg") == "authentication rate_limited"]
            if len(limited) >= 37 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(limited) == 37 and {l["remote"] for l in limited} == {"127.0.0.2"}
    finally:
        finish(d)


def test_bad_guard_options_are_refused():
    from harness import Daemon
    d = Daemon()
    try:
        for args, word in [(["--trusted-proxies", "10.0.0.0/33"], "--trusted-proxies"),
                           (["--trusted-proxies", "10.0.0.1,"], "--trusted-proxies"),
                           (["--trusted-proxies", "proxy.example"], "--trusted-proxies"),
                           (["--max-connections-per-address", "0"],
                            "--max-connections-per-address")]:
            try:
                d.start(args)
            except RuntimeError as e:
                assert word in str(e), e
            else:
                d.stop()
                raise AssertionError("serve started with %r" % args)
    finally:
        d.close()
