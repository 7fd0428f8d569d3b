"""Issue 5: usages, delete protection, resolve, events, webhooks, audit."""
import hashlib
import hmac
import http.server
import json
import shutil
import socket
import threading
import time

import lmdb
import pytest

from harness import Daemon, assert_error, run_cli
from test_auth import basic, new_key
from test_credentials import AWS_SECRET, fixture, valid_bodies


@pytest.fixture(scope="module")
def d():
    dd = Daemon(serve_args=["--webhook-retry-ms", "100"]).start()
    dd.auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
    yield dd
    assert dd.stop() == 0
    dd.close()


def create(d, cid, body):
    r = d.post("/api/v1/credentials", json=dict(body, _id=cid), headers=d.auth)
    assert r.status_code in (200, 201), r.text
    return r.json()


def add_usage(d, cid, headers=None, **kw):
    body = {"type": "Registry Scan", "description": "scan of " + cid}
    body.update(kw)
    return d.post("/api/v1/credentials/%s/usages" % cid, json=body, headers=headers or d.auth)


def resolve(d, cid, uid, headers=None, **kw):
    return d.post("/api/v1/credentials/%s/resolve" % cid, json=dict(kw, usageId=uid),
                  headers=headers or d.auth)


def usages(d, cid):
    r = d.get("/api/v1/credentials/%s/usages" % cid, headers=d.auth)
    assert r.status_code == 200, r.text
    return {u["id"]: u for u in r.json()}


def test_usage_blocks_delete_until_removed(d):
    create(d, "in-use", valid_bodies()["ibm-1"])
    r = add_usage(d, "in-use")
    assert r.status_code == 201, r.text
    u = r.json()
    assert u["type"] == "Registry Scan" and u["seenVersion"] == 0 and u["resolveCount"] == 0
    assert u["lastResolvedAt"] is None and u["owner"] == d.admin["id"]
    assert "callbackSecret" not in u and u["createdAt"].endswith("Z")
    r = d.delete("/api/v1/credentials/in-use", headers=d.auth)
    err = assert_error(r, 409, "credential_in_use")
    assert [x["id"] for x in err["usages"]] == [u["id"]]
    assert d.get("/api/v1/credentials/in-use", headers=d.auth).status_code == 200
    assert d.delete("/api/v1/credentials/in-use/usages/" + u["id"],
                    headers=d.auth).status_code == 204
    assert_error(d.delete("/api/v1/credentials/in-use/usages/" + u["id"], headers=d.auth), 404)
    assert d.delete("/api/v1/credentials/in-use", headers=d.auth).status_code == 204


def test_usage_validation(d):
    create(d, "uv", valid_bodies()["ibm-1"])
    assert_error(add_usage(d, "missing-cred"), 404)
    for bad in [{"description": "no type"}, {"type": ""}, {"type": 5},
                {"type": "x", "callbackUrl": "ftp://x"}, {"type": "x", "callbackUrl": "http://"},
                {"type": "x", "callbackUrl": "http://a b"}, {"type": "x", "description": []}]:
        r = d.post("/api/v1/credentials/uv/usages", json=bad, headers=d.auth)
        assert_error(r, 400)
    assert usages(d, "uv") == {}


def test_resolve_every_type_and_stale_flag(d):
    azure = json.loads(fixture("azure-sdk-auth.json"))
    sa = json.loads(fixture("gcp-service-account.json"))
    checks = {
        "r-aws": lambda m: m["AccessKeyId"] == "AKIAIOSFODNN7EXAMPLE" and
        m["SecretAccessKey"] == AWS_SECRET and "SessionToken" not in m,
        "r-azure": lambda m: m["clientSecret"] == azure["clientSecret"] and
        m["tenantId"] == azure["tenantId"] and m["serviceKey"] == azure,
        "r-gcp": lambda m: m["serviceAccount"] == sa,
        "r-gtok": lambda m: m["apiToken"] == "AIzaSyD-test-api-token-1234567890",
        "r-ibm": lambda m: m["apiKey"] == "ibm-api-key-abcdefghijklmnopqrstuvwxyz012345" and
        m["accountGUID"] == "0123456789abcdef0123456789abcdef",
        "r-kube": lambda m: m["kubeconfig"] == fixture("kubeconfig-token.yaml"),
    }
    src = {"r-aws": "aws-static", "r-azure": "azure-sp", "r-gcp": "gcp-sa", "r-gtok": "gcp-token",
           "r-ibm": "ibm-1", "r-kube": "kube-token"}
    types = {"r-aws": "aws", "r-azure": "azure", "r-gcp": "gcp", "r-gtok": "gcp",
             "r-ibm": "ibmCloud", "r-kube": "kubeconfig"}
    for cid, check in checks.items():
        create(d, cid, valid_bodies()[src[cid]])
        uid = add_usage(d, cid).json()["id"]
        assert usages(d, cid)[uid]["stale"] is True
        r = resolve(d, cid, uid)
        assert r.status_code == 200, r.text
        m = r.json()
        assert m["type"] == types[cid] and m["version"] == 1 and check(m), (cid, m)
        u = usages(d, cid)[uid]
        assert u["seenVersion"] == 1 and u["resolveCount"] == 1 and u["stale"] is False
        assert u["lastResolvedAt"].endswith("Z")
    # An update makes the usage stale; the next resolve returns the new value.
    uid = list(usages(d, "r-ibm"))[0]
    create(d, "r-ibm", dict(valid_bodies()["ibm-1"], secret={"plain": "rotated-ibm-key-000"}))
    assert usages(d, "r-ibm")[uid]["stale"] is True
    m = resolve(d, "r-ibm", uid).json()
    assert m["apiKey"] == "rotated-ibm-key-000" and m["version"] == 2
    u = usages(d, "r-ibm")[uid]
    assert u["stale"] is False and u["seenVersion"] == 2 and u["resolveCount"] == 2


def test_concurrent_resolves_count_exactly(d):
    """Usage stats are written once per usage per group commit (usages.c): with
    many resolves of the same usages in flight, every answered resolve is
    counted once and audited once, seenVersion is the highest resolved, and a
    usage deleted among them leaves the others' counts exact."""
    import requests

    create(d, "co-1", valid_bodies()["ibm-1"])
    create(d, "co-2", valid_bodies()["ibm-1"])
    u1, u2 = (add_usage(d, "co-1").json()["id"] for _ in range(2))
    u3 = add_usage(d, "co-2").json()["id"]
    gone = add_usage(d, "co-2").json()["id"]
    plan = [("co-1", u1), ("co-1", u2), ("co-2", u3), ("co-2", gone)] * 40
    answers, lock = [], threading.Lock()

    def worker(part):
        with requests.Session() as s:
            for cid, uid in part:
                r = s.post(d.url + "/api/v1/credentials/%s/resolve" % cid, json={"usageId": uid},
                           headers=d.auth, timeout=60)
                with lock:
                    answers.append((cid, uid, r.status_code, r.json().get("version")))

    threads = [threading.Thread(target=worker, args=(plan[i::16],)) for i in range(16)]
    for t in threads:
        t.start()
    create(d, "co-1", dict(valid_bodies()["ibm-1"], secret={"plain": "rotated-ibm-key-co1"}))
    assert d.delete("/api/v1/credentials/co-2/usages/" + gone, headers=d.auth).status_code == 204
    for t in threads:
        t.join()
    assert len(answers) == len(plan)
    assert all(st == 200 or (uid == gone and st == 400) for _, uid, st, _ in answers), answers
    ok = [(cid, uid, v) for cid, uid, st, v in answers if st == 200]
    listed = {**usages(d, "co-1"), **usages(d, "co-2")}
    assert gone not in listed
    for uid in (u1, u2, u3):
        mine = [v for _, x, v in ok if x == uid]
        assert listed[uid]["resolveCount"] == len(mine) == 40, (uid, listed[uid])
        assert listed[uid]["seenVersion"] == max(mine)
    aud = new_key(d, d.auth["Authorization"], "auditor")
    aud = {"Authorization": basic(aud["id"], aud["secret"])}
    for cid in ("co-1", "co-2"):
        entries = d.get("/api/v1/audit?credential=%s&limit=1000" % cid, headers=aud).json()
        resolves = [e for e in entries if e["action"] == "resolve" and e["result"] == "success"]
        assert len(resolves) == len([1 for c, _, _ in ok if c == cid]), cid


def test_resolve_errors_and_roles(d):
    create(d, "re-1", valid_bodies()["ibm-1"])
    create(d, "re-2", valid_bodies()["ibm-1"])
    u1 = add_usage(d, "re-1").json()["id"]
    err = assert_error(d.post("/api/v1/credentials/re-1/resolve", json={}, headers=d.auth), 400)
    assert err["field"] == "usageId"
    assert_error(resolve(d, "re-2", u1), 400)
    assert_error(resolve(d, "re-1", "u-nope"), 400)
    assert_error(resolve(d, "nope", u1), 404)
    ci = new_key(d, d.auth["Authorization"], "ci")
    ci_h = {"Authorization": basic(ci["id"], ci["secret"])}
    assert resolve(d, "re-1", u1, headers=ci_h).status_code == 200
    uid = add_usage(d, "re-1", headers=ci_h).json()["id"]
    assert d.delete("/api/v1/credentials/re-1/usages/" + uid, headers=ci_h).status_code == 204
    aud = new_key(d, d.auth["Authorization"], "auditor")
    aud_h = {"Authorization": basic(aud["id"], aud["secret"])}
    assert_error(resolve(d, "re-1", u1, headers=aud_h), 403)
    assert d.get("/api/v1/credentials/re-1/usages", headers=aud_h).status_code == 200


def test_concurrent_delete_and_register_never_orphan_a_usage():
    dd = Daemon().start()
    auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
    try:
        outcomes = set()
        for i in range(40):
            cid = "race-%d" % i
            dd.post("/api/v1/credentials", json=dict(valid_bodies()["ibm-1"], _id=cid),
                    headers=auth)
            res = {}
            def do_delete():
                res["del"] = dd.request("DELETE", "/api/v1/credentials/" + cid,
                                        headers=auth).status_code
            def do_register():
                import requests
                res["reg"] = requests.post(dd.url + "/api/v1/credentials/%s/usages" % cid,
                                           json={"type": "Cloud Scan"}, headers=auth,
                                           timeout=30).status_code
            ts = [threading.Thread(target=do_delete), threading.Thread(target=do_register)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            outcomes.add((res["del"], res["reg"]))
            assert (res["del"], res["reg"]) in [(204, 404), (409, 201)], res
        assert dd.stop() == 0
        env = lmdb.open(dd.data, readonly=True, lock=False, max_dbs=16)
        creds = env.open_db(b"credentials")
        us = env.open_db(b"usages")
        with env.begin() as txn:
            for _, v in txn.cursor(db=us):
                u = json.loads(v)
                assert txn.get(u["credentialId"].encode(), db=creds) is not None, u
        env.close()
    finally:
        dd.close()


def last_seq(d):
    return d.get("/api/v1/events?since=0", headers=d.auth).json()["next"]


def test_events_feed_and_long_poll(d):
    since = last_seq(d)
    create(d, "ev-1", valid_bodies()["ibm-1"])
    create(d, "ev-1", valid_bodies()["ibm-1"])
    uid = add_usage(d, "ev-1").json()["id"]
    d.delete("/api/v1/credentials/ev-1/usages/" + uid, headers=d.auth)
    d.delete("/api/v1/credentials/ev-1", headers=d.auth)
    r = d.get("/api/v1/events?since=%d&credential=ev-1" % since, headers=d.auth).json()
    assert [(e["type"], e["version"]) for e in r["events"]] == [
        ("created", 1), ("updated", 2), ("usage_added", 2), ("usage_removed", 2), ("deleted", 2)]
    assert all(e["credentialId"] == "ev-1" and e["at"].endswith("Z") for e in r["events"])
    seqs = [e["seq"] for e in r["events"]]
    assert seqs == sorted(seqs) and r["next"] == seqs[-1]
    # Nothing new: wait=0 answers at once with next unchanged.
    nxt = last_seq(d)
    t0 = time.time()
    r = d.get("/api/v1/events?since=%d&wait=0" % nxt, headers=d.auth).json()
    assert r == {"events": [], "next": nxt} and time.time() - t0 < 2
    # A long-poll is woken at once by a change.
    got = {}
    def poll():
        t = time.time()
        got["r"] = d.get("/api/v1/events?since=%d&wait=30" % nxt, headers=d.auth).json()
        got["t"] = time.time() - t
    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.7)
    create(d, "ev-2", valid_bodies()["ibm-1"])
    th.join(timeout=20)
    assert got["r"]["events"][0]["credentialId"] == "ev-2"
    assert 0.6 <= got["t"] < 3.0, got["t"]
    # A long-poll with nothing new returns after its wait.
    t0 = time.time()
    r = d.get("/api/v1/events?since=%d&wait=1" % got["r"]["next"], headers=d.auth).json()
    assert r["events"] == [] and 0.9 <= time.time() - t0 < 5
    for bad in ["wait=61", "since=-1", "wait=x", "credential=a%2Fb", "credential=%20a",
                "credential=a%00b", "credential=a%FF"]:
        assert_error(d.get("/api/v1/events?" + bad, headers=d.auth), 400)


def test_many_long_polls_do_not_starve_the_server(d):
    nxt = last_seq(d)
    ths = [threading.Thread(target=lambda: d.get(
        "/api/v1/events?since=%d&wait=5" % nxt, headers=d.auth)) for _ in range(16)]
    import requests
    for t in ths:
        t.start()
    time.sleep(0.5)
    t0 = time.time()
    r = requests.get(d.url + "/api/v1/credentials?limit=1", headers=d.auth, timeout=10)
    assert r.status_code == 200 and time.time() - t0 < 2
    create(d, "ev-wake", valid_bodies()["ibm-1"])
    for t in ths:
        t.join(timeout=20)
        assert not t.is_alive()


class Receiver:
    """A webhook receiver that checks signatures; fails the first `fail` calls."""

    def __init__(self, fail=0, port=0):
        self.fail = fail
        self.calls = []
        self.secrets = {}
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls.append((dict(self.headers), body))
                code = 500 if len(outer.calls) <= outer.fail else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.port = self.srv.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def ok_calls(self, secret):
        good = []
        for headers, body in self.calls:
            mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            if headers.get("X-Credstore-Signature") == "sha256=" + mac:
                good.append(json.loads(body))
        return good

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def wait_for(pred, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_webhook_signed_and_retried_until_2xx(d):
    rx = Receiver(fail=2)
    try:
        create(d, "wh-1", valid_bodies()["ibm-1"])
        u = add_usage(d, "wh-1", callbackUrl=rx.url).json()
        assert len(u["callbackSecret"]) == 64 and u["callbackUrl"] == rx.url
        assert "callbackSecret" not in usages(d, "wh-1")[u["id"]]
        create(d, "wh-1", dict(valid_bodies()["ibm-1"], description="edit"))
        assert wait_for(lambda: len(rx.calls) >= 3)
        time.sleep(0.3)
        assert len(rx.calls) == 3, "retried until the first 2xx, then stopped"
        good = rx.ok_calls(u["callbackSecret"])
        assert len(good) == 3
        assert good[-1] == {"type": "updated", "credentialId": "wh-1", "version": 2,
                            "usageId": u["id"]}
        assert not rx.ok_calls("0" * 64), "the signature depends on the secret"
        for _, body in rx.calls:
            assert b"ibm-api-key" not in body
    finally:
        rx.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def test_outbox_survives_restart():
    dd = Daemon(serve_args=["--webhook-retry-ms", "100"]).start()
    auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
    dd.auth = auth
    port = free_port()
    try:
        create(dd, "ob-1", valid_bodies()["ibm-1"])
        u = add_usage(dd, "ob-1", callbackUrl="http://127.0.0.1:%d/hook" % port).json()
        create(dd, "ob-1", valid_bodies()["ibm-1"])  # queued; nobody listens yet
        time.sleep(0.5)
        assert dd.stop() == 0
        rx = Receiver(port=port)
        try:
            dd.start()
            assert wait_for(lambda: rx.ok_calls(u["callbackSecret"]), timeout=20)
            assert rx.ok_calls(u["callbackSecret"])[0]["version"] == 2
        finally:
            rx.close()
        assert dd.stop() == 0
    finally:
        dd.close()


def test_audit_trail_records_and_verifies(tmp_path):
    dd = Daemon().start()
    auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
    dd.auth = auth
    try:
        create(dd, "au-1", valid_bodies()["ibm-1"])
        create(dd, "au-1", valid_bodies()["ibm-1"])
        uid = add_usage(dd, "au-1").json()["id"]
        assert resolve(dd, "au-1", uid).status_code == 200
        dd.delete("/api/v1/credentials/au-1/usages/" + uid, headers=auth)
        dd.delete("/api/v1/credentials/au-1", headers=auth)
        k = new_key(dd, auth["Authorization"], "auditor")
        dd.post("/api/v1/login", json={"username": k["id"], "password": "f00d" * 16})
        aud = {"Authorization": basic(k["id"], k["secret"])}
        entries = dd.get("/api/v1/audit?limit=1000", headers=aud).json()
        actions = [(e["action"], e["target"], e["result"]) for e in entries]
        for want in [("create", "au-1", "success"), ("update", "au-1", "success"),
                     ("usage_create", "au-1", "success"), ("resolve", "au-1", "success"),
                     ("usage_delete", "au-1", "success"), ("delete", "au-1", "success"),
                     ("access_key_create", k["id"], "success"), ("auth", k["id"], "failure")]:
            assert want in actions, want
        for a, b in zip(entries, entries[1:]):
            assert b["prevHash"] == a["hash"] and b["seq"] == a["seq"] + 1
        e0 = [e for e in entries if e["action"] == "resolve"][0]
        assert e0["actor"] == dd.admin["id"] and e0["role"] == "admin" and e0["remote"] == "127.0.0.1"
        assert "ibm-api-key" not in json.dumps(entries) and "f00d" * 16 not in json.dumps(entries)
        assert dd.get("/api/v1/audit?credential=au-1", headers=aud).json()[0]["target"] == "au-1"
        page = dd.get("/api/v1/audit?since=2&limit=3", headers=aud).json()
        assert [e["seq"] for e in page] == [3, 4, 5]
        ci = new_key(dd, auth["Authorization"], "ci")
        assert_error(dd.get("/api/v1/audit", headers={"Authorization": basic(ci["id"], ci["secret"])}), 403)
        assert dd.stop() == 0
        r = run_cli("audit-verify", "--data", dd.data)
        assert r.returncode == 0, r.stderr
        # Everything listed, plus the ci key created after the listing.
        assert json.loads(r.stdout)["entries"] == entries[-1]["seq"] + 1
    finally:
        if dd.proc:
            dd.stop()
        dd.close()


def tamper_copy(src, dst, fn):
    shutil.copytree(src, dst)
    env = lmdb.open(str(dst), max_dbs=16)
    audit = env.open_db(b"audit")
    with env.begin(write=True) as txn:
        fn(txn, audit)
    env.close()


def test_audit_verify_detects_modified_and_removed_entries(tmp_path):
    dd = Daemon().start()
    auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
    try:
        for i in range(5):
            dd.post("/api/v1/credentials", json=dict(valid_bodies()["ibm-1"], _id="t%d" % i),
                    headers=auth)
        assert dd.stop() == 0
        assert run_cli("audit-verify", "--data", dd.data).returncode == 0

        def modify(txn, db):
            k = (3).to_bytes(8, "big")
            v = txn.get(k, db=db)
            txn.put(k, v.replace(b'"t2"', b'"t9"'), db=db)

        def remove_middle(txn, db):
            txn.delete((2).to_bytes(8, "big"), db=db)

        def remove_last(txn, db):
            txn.delete((5).to_bytes(8, "big"), db=db)

        def rehash(txn, db):
            # Recomputing the entry's own hash is not enough: the next prevHash breaks.
            k = (3).to_bytes(8, "big")
            v = txn.get(k, db=db)
            entry = v[32:].replace(b'"t2"', b'"t9"')
            prev = bytes.fromhex(json.loads(entry)["prevHash"])
            txn.put(k, hashlib.blake2b(prev + entry, digest_size=32).digest() + entry, db=db)

        for name, fn in [("modify", modify), ("middle", remove_middle), ("last", remove_last),
                         ("rehash", rehash)]:
            copy = tmp_path / name
            tamper_copy(dd.data, copy, fn)
            r = run_cli("audit-verify", "--data", str(copy))
            assert r.returncode != 0, name
            assert "broken" in r.stderr, r.stderr
        # The original is untouched and still verifies.
        assert run_cli("audit-verify", "--data", dd.data).returncode == 0
    finally:
        dd.close()


# ------------------------------------------- resolves parked while queued

class StoreWriteLock:
    """Another process's LMDB write transaction on the daemon's data file:
    the daemon's writer blocks in its next commit until released, so every
    change queued meanwhile waits in the group commit."""

    def __init__(self, d):
        self.env = lmdb.open(d.data, max_dbs=16)
        self.txn = self.env.begin(write=True)

    def release(self):
        if self.txn:
            self.txn.abort()
            self.txn = None
        self.env.close()


def resolve_audits(d, cid):
    aud = new_key(d, d.auth["Authorization"], "auditor")
    aud = {"Authorization": basic(aud["id"], aud["secret"])}
    entries = d.get("/api/v1/audit?credential=%s&limit=1000" % cid, headers=aud).json()
    return [e for e in entries if e["action"] == "resolve" and e["result"] == "success"]


def test_resolves_beyond_the_thread_pool_wait_without_a_thread():
    """With --threads 2, 32 resolves in flight while the store's write lock is
    held elsewhere: each is parked with its record queued, so the two pool
    threads still answer a GET; no material is handed out before the records
    are durable; once the lock goes, all 32 answer 200, counted and audited
    exactly once each."""
    import requests
    from harness import SLOW, finish, start

    d = start("--threads", "2")
    try:
        create(d, "pk-1", valid_bodies()["ibm-1"])
        uid = add_usage(d, "pk-1").json()["id"]
        lock = StoreWriteLock(d)
        answers, mu = [], threading.Lock()

        def one():
            r = requests.post(d.url + "/api/v1/credentials/pk-1/resolve", json={"usageId": uid},
                              headers=d.auth, timeout=60 * SLOW)
            with mu:
                answers.append((r.status_code, r.json()))

        threads = [threading.Thread(target=one) for _ in range(32)]
        try:
            for t in threads:
                t.start()
            time.sleep(1.0 * SLOW)
            r = requests.get(d.url + "/api/v1/credentials/pk-1", headers=d.auth, timeout=10 * SLOW)
            assert r.status_code == 200, r.text
            with mu:
                assert answers == []  # nothing handed out before its audit entry commits
        finally:
            lock.release()
        for t in threads:
            t.join()
        assert len(answers) == 32
        assert all(st == 200 and m["apiKey"].startswith("ibm-api-key") for st, m in answers), answers
        assert usages(d, "pk-1")[uid]["resolveCount"] == 32
        assert len(resolve_audits(d, "pk-1")) == 32
    finally:
        finish(d)


def test_resolves_whose_client_hung_up_while_parked_are_still_audited():
    """Clients that disconnect while their resolve is parked: the record still
    commits (the material was made, so it is audited), the job's material is
    wiped and freed (ASan/valgrind at exit), and the daemon serves on."""
    from harness import SLOW, Raw, finish, req, start

    d = start("--threads", "2")
    try:
        create(d, "hu-1", valid_bodies()["ibm-1"])
        uid = add_usage(d, "hu-1").json()["id"]
        body = json.dumps({"usageId": uid}).encode()
        lock = StoreWriteLock(d)
        try:
            conns = []
            for _ in range(8):
                c = Raw(d)
                c.send(req("POST", "/api/v1/credentials/hu-1/resolve", body=body,
                           auth=d.auth["Authorization"],
                           headers=["Content-Type: application/json",
                                    "Content-Length: %d" % len(body)]))
                conns.append(c)
            time.sleep(1.0 * SLOW)
            for c in conns:
                assert c.response(timeout=0.2) is None  # parked: no answer yet
                c.close()
        finally:
            lock.release()
        deadline = time.monotonic() + 20 * SLOW
        while usages(d, "hu-1")[uid]["resolveCount"] < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert usages(d, "hu-1")[uid]["resolveCount"] == 8
        assert len(resolve_audits(d, "hu-1")) == 8
        assert resolve(d, "hu-1", uid).status_code == 200
        assert usages(d, "hu-1")[uid]["resolveCount"] == 9
    finally:
        finish(d)


def test_credential_writes_beyond_the_thread_pool_are_parked():
    """Creates (POST), updates (PUT) and deletes parked while their write is
    queued: with --threads 2 and the store's write lock held elsewhere, 12
    creates, 12 updates of one credential and 4 deletes are in flight and a
    GET still answers; once the lock goes every create answers 201, every
    update 200 (versions 2..13 each once) and every delete 204."""
    import requests
    from harness import SLOW, finish, start

    d = start("--threads", "2")
    try:
        create(d, "pw-0", valid_bodies()["ibm-1"])
        for i in range(4):
            create(d, "pw-d%d" % i, valid_bodies()["ibm-1"])
        lock = StoreWriteLock(d)
        answers, mu = [], threading.Lock()

        def one(method, path, body):
            r = requests.request(method, d.url + path, json=body, headers=d.auth,
                                 timeout=60 * SLOW)
            with mu:
                answers.append((method, r.status_code, r.json() if r.content else None))

        plan = [("POST", "/api/v1/credentials", dict(valid_bodies()["ibm-1"], _id="pw-c%d" % i))
                for i in range(12)]
        plan += [("PUT", "/api/v1/credentials/pw-0",
                  dict(valid_bodies()["ibm-1"], description="rev %d" % i)) for i in range(12)]
        plan += [("DELETE", "/api/v1/credentials/pw-d%d" % i, None) for i in range(4)]
        threads = [threading.Thread(target=one, args=p) for p in plan]
        try:
            for t in threads:
                t.start()
            time.sleep(1.0 * SLOW)
            r = requests.get(d.url + "/api/v1/credentials/pw-0", headers=d.auth, timeout=10 * SLOW)
            assert r.status_code == 200 and r.json()["version"] == 1, r.text
            with mu:
                assert answers == []
        finally:
            lock.release()
        for t in threads:
            t.join()
        assert sorted(st for m, st, _ in answers if m == "POST") == [201] * 12, answers
        assert sorted(st for m, st, _ in answers if m == "PUT") == [200] * 12, answers
        assert sorted(c["version"] for m, _, c in answers if m == "PUT") == list(range(2, 14))
        assert sorted(st for m, st, _ in answers if m == "DELETE") == [204] * 4, answers
        assert all("plain" not in json.dumps(c) for _, _, c in answers)
        for i in range(12):
            assert d.get("/api/v1/credentials/pw-c%d" % i, headers=d.auth).status_code == 200
        for i in range(4):
            assert d.get("/api/v1/credentials/pw-d%d" % i, headers=d.auth).status_code == 404
    finally:
        finish(d)
