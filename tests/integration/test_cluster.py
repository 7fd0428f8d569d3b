"""Cluster mode (API.md §9): credstore nodes over a real 3-member etcd
cluster on loopback (tests/cluster/etcd_cluster.py), every node the real
daemon. Each test inits its own prefix and starts its own nodes; every
process started here is stopped by PID, every wait is bounded.
"""
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import requests

from harness import SLOW, Daemon, basic, run_cli
from test_credentials import b64variants, valid_bodies
from test_webhooks import Answering

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cluster"))
from etcd_cluster import EtcdCluster  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/etcd"),
                                reason="etcd-server is not installed (deploy/deps.sh)")

ETCDCTL = "/usr/bin/etcdctl"


@pytest.fixture(scope="module")
def etcd():
    base = tempfile.mkdtemp(prefix="credstore-cluster-")
    c = EtcdCluster(base, max_lifetime=900)
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def keyfile():
    d = tempfile.mkdtemp(prefix="credstore-mk-")
    path = os.path.join(d, "master.key")
    with open(path, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(path, 0o600)
    return path


def wait_for(pred, timeout, step=0.02):
    """Poll pred until it returns something true; returns (value, seconds taken)."""
    t0 = time.time()
    deadline = t0 + timeout * SLOW
    while True:
        v = pred()
        if v or time.time() > deadline:
            return v, time.time() - t0
        time.sleep(step)


class Cluster:
    """A fresh prefix, initialised once, and N nodes serving it."""

    def __init__(self, etcd, keyfile, n=3, serve_args=()):
        self.etcd = etcd
        self.keyfile = keyfile
        self.prefix = "/t-%s/" % secrets.token_hex(4)
        self.url = etcd.url(self.prefix)
        r = run_cli("init", "--store", self.url, "--master-key-file", keyfile)
        assert r.returncode == 0, r.stderr
        self.admin = json.loads(r.stdout)
        self.auth = {"Authorization": basic(self.admin["id"], self.admin["secret"])}
        self.serve_args = list(serve_args)
        self.nodes = [self.node(i) for i in range(n)]

    def node(self, i):
        d = Daemon(data_dir="(etcd)", store=self.url,
                   serve_args=["--master-key-file", self.keyfile, "--node-id", "node%d" % i,
                               "--webhook-retry-ms", "200", *self.serve_args])
        return d.start()

    def cli(self, *args):
        return run_cli(*args, "--store", self.url, "--master-key-file", self.keyfile)

    def close(self):
        for d in self.nodes:
            if d.proc:
                assert d.stop() == 0, d.log()
            d.close()


@pytest.fixture
def cl(etcd, keyfile):
    etcd.wait_healthy()
    c = Cluster(etcd, keyfile)
    yield c
    c.close()


def create(d, cid, body, auth):
    return d.post("/api/v1/credentials", json=dict(body, _id=cid), headers=auth)


def ibm(secret="ibm-secret-0123456789"):
    return {"type": "ibmCloud", "accountGUID": "0123456789abcdef", "secret": {"plain": secret}}


def all_ids(d, auth):
    """Every credential id a node lists (pages of 500)."""
    ids, off = [], 0
    while True:
        r = d.get("/api/v1/credentials?limit=500&offset=%d" % off, headers=auth)
        assert r.status_code == 200, r.text
        page = r.json()
        ids += [c["_id"] for c in page]
        off += len(page)
        if len(page) < 500:
            return ids


def visible(d, cid, auth, version=None):
    r = d.get("/api/v1/credentials/" + cid, headers=auth)
    return r.status_code == 200 and (version is None or r.json()["version"] == version)


# ---------------------------------------------------------------- auth


def test_token_works_everywhere_and_deleted_key_is_refused_within_1s(cl):
    a, b, c = cl.nodes
    tok = a.post("/api/v1/login", json={"username": cl.admin["id"],
                                        "password": cl.admin["secret"]}).json()["token"]
    for d in cl.nodes:
        assert d.get("/api/v1/credentials", headers={"Authorization": "Bearer " + tok}
                     ).status_code == 200
    k = a.post("/api/v1/access_keys", json={"name": "doomed", "role": "operator"},
               headers=cl.auth).json()
    kb = {"Authorization": basic(k["id"], k["secret"])}
    # A key made on a is known on b and c within 1 s (the watch).
    for d in (b, c):
        _, took = wait_for(lambda: d.get("/api/v1/credentials", headers=kb).status_code == 200, 1)
        assert took < 1 * SLOW
    ktok = b.post("/api/v1/login", json={"username": k["id"], "password": k["secret"]}
                  ).json()["token"]
    kt = {"Authorization": "Bearer " + ktok}
    assert c.get("/api/v1/credentials", headers=kt).status_code == 200
    assert a.delete("/api/v1/access_keys/" + k["id"], headers=cl.auth).status_code == 204
    t0 = time.time()
    for d in (a, b, c):
        for h in (kt, kb):
            ok, _ = wait_for(lambda: d.get("/api/v1/credentials", headers=h).status_code == 401,
                             1, step=0.01)
            assert ok, "node %s still takes the deleted key" % d.url
    assert time.time() - t0 < 1.2 * SLOW


def test_key_rotation_while_serving_reaches_every_node(cl):
    a, b, c = cl.nodes
    assert create(a, "before", ibm("sealed-under-v1"), cl.auth).status_code == 201
    r = cl.cli("rotate-key")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["keyVersion"] == 2
    # A record sealed under version 2 (made on b once it has the new keyring)
    # opens on every node: each loaded the new keyring by itself.
    ok, _ = wait_for(lambda: "data-key version 2" in b.log(), 2)
    assert ok, b.log()
    assert create(b, "after", ibm("sealed-under-v2"), cl.auth).status_code == 201
    for d in (a, b, c):
        r = d.get("/api/v1/credentials/before/usages", headers=cl.auth)
        assert r.status_code == 200
    for d in (a, c, b):
        u = d.post("/api/v1/credentials/after/usages", json={"type": "t"}, headers=cl.auth)
        assert u.status_code == 201, u.text
        r = d.post("/api/v1/credentials/after/resolve", json={"usageId": u.json()["id"]},
                   headers=cl.auth)
        assert r.status_code == 200 and r.json()["apiKey"] == "sealed-under-v2", r.text


# ------------------------------------------------------------- the rules


def test_delete_and_usage_on_two_nodes_never_both_succeed(cl):
    a, b, _ = cl.nodes
    outcomes = set()
    for i in range(15):
        cid = "race-%d" % i
        assert create(a, cid, ibm(), cl.auth).status_code == 201
        assert wait_for(lambda: visible(b, cid, cl.auth), 2)[0]
        res = {}
        go = threading.Barrier(2)

        def delete():
            go.wait()
            res["del"] = a.delete("/api/v1/credentials/" + cid, headers=cl.auth)

        def use():
            go.wait()
            res["use"] = b.post("/api/v1/credentials/%s/usages" % cid, json={"type": "race"},
                                headers=cl.auth)

        ts = [threading.Thread(target=delete), threading.Thread(target=use)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30 * SLOW)
        deleted = res["del"].status_code == 204
        used = res["use"].status_code == 201
        assert res["del"].status_code in (204, 409), res["del"].text
        assert res["use"].status_code in (201, 404), res["use"].text
        assert not (deleted and used), "both succeeded in round %d" % i
        assert deleted or used
        outcomes.add("deleted" if deleted else "used")
        # What the winner did is what every node shows.
        for d in cl.nodes:
            assert wait_for(lambda: visible(d, cid, cl.auth) == used, 1)[0]
    assert outcomes  # at least one round decided


def test_acknowledged_writes_survive_etcd_member_and_leader_kill(cl, etcd):
    acked, errors, odd, stop = [], [], [], threading.Event()

    def writer(d, w):
        n = 0
        while not stop.is_set():
            cid = "w%d-%d" % (w, n)
            n += 1
            try:
                r = create(d, cid, ibm(), cl.auth)
            except requests.RequestException as e:
                errors.append(str(e))
                continue
            if r.status_code == 201:
                acked.append((cid, time.time()))
            elif r.status_code == 503 and r.json()["code"] == "store_unavailable":
                errors.append("store_unavailable")
            else:
                odd.append((r.status_code, r.text))

    ts = [threading.Thread(target=writer, args=(d, w)) for w, d in enumerate(cl.nodes)]
    for t in ts:
        t.start()
    try:
        time.sleep(1)
        leader = etcd.leader()
        follower = (leader + 1) % 3
        etcd.kill(follower)
        time.sleep(1.5)
        etcd.restart(follower)
        etcd.wait_healthy()
        leader = etcd.leader()
        killed_leader_at = time.time()
        etcd.kill(leader)
        time.sleep(3 * SLOW)
        etcd.restart(leader)
        etcd.wait_healthy()
        time.sleep(1)
    finally:
        stop.set()
        for t in ts:
            t.join(60 * SLOW)
    assert not odd, odd[:5]  # a write either commits or says store_unavailable
    assert len(acked) > 20, (len(acked), errors[:5])
    after = [c for c, t in acked if t > killed_leader_at + 0.1]
    assert after, "no write succeeded after the leader died"
    # Nothing acknowledged is lost, on any node.
    for d in cl.nodes:
        ids = set()
        ok, _ = wait_for(lambda: ids.update(all_ids(d, cl.auth))
                         or all(c in ids for c, _ in acked), 5, step=0.2)
        missing = [c for c, _ in acked if c not in ids]
        assert not missing, missing[:10]


# ------------------------------------------------------------- caches


def test_sts_cache_is_invalidated_on_every_node_within_1s(etcd, keyfile):
    from aws_doubles import IMDSDouble, STSDouble
    akid, secret = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    role = "arn:aws:iam::123456789012:role/scanner"
    imds = IMDSDouble()
    sts = STSDouble({akid: secret})
    c = Cluster(etcd, keyfile, n=2,
                serve_args=["--sts-endpoint", sts.url, "--imds-endpoint", imds.url])
    try:
        a, b = c.nodes
        body = {"type": "aws", "accountID": akid, "secret": {"plain": secret}, "roleArn": role}
        assert create(a, "role", body, c.auth).status_code == 201
        assert wait_for(lambda: visible(b, "role", c.auth), 1)[0]
        uid = b.post("/api/v1/credentials/role/usages", json={"type": "scan"},
                     headers=c.auth).json()["id"]

        def resolve():
            return b.post("/api/v1/credentials/role/resolve", json={"usageId": uid},
                          headers=c.auth).json()

        m1 = resolve()
        assert resolve()["AccessKeyId"] == m1["AccessKeyId"] and sts.calls == 1
        assert create(a, "role", dict(body, description="edited"), c.auth).status_code == 200
        m2, took = wait_for(lambda: (lambda m: m if m["version"] == 2 else None)(resolve()), 1)
        assert m2 and took < 1 * SLOW
        assert sts.calls == 2 and m2["AccessKeyId"] != m1["AccessKeyId"]
    finally:
        c.close()
        sts.close()
        imds.close()


def test_long_poll_on_one_node_wakes_on_a_change_on_another(cl):
    a, _, c = cl.nodes
    first = c.get("/api/v1/events?since=0", headers=cl.auth).json()["next"]
    got = {}

    def poll():
        t = time.time()
        r = c.get("/api/v1/events?since=%d&wait=20" % first, headers=cl.auth)
        got["r"], got["t"] = r, time.time() - t

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    assert create(a, "wake-me", ibm(), cl.auth).status_code == 201
    t.join(30 * SLOW)
    r = got["r"]
    assert r.status_code == 200
    evs = r.json()["events"]
    assert [e["credentialId"] for e in evs] == ["wake-me"] and evs[0]["seq"] > first
    woke_after = got["t"] - 0.5
    assert woke_after < 2 * SLOW, woke_after
    # One feed: both nodes list the same events with the same seqs.
    assert (a.get("/api/v1/events?since=0", headers=cl.auth).json()["events"]
            == c.get("/api/v1/events?since=0", headers=cl.auth).json()["events"])


# ------------------------------------------------------------- webhooks


def etcd_get_prefix(etcd, prefix):
    """Every key and value under prefix, through the JSON gateway (binary-safe)."""
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    r = etcd.post(next(i for i in range(3) if etcd.alive(i)), "/v3/kv/range",
                  {"key": base64.b64encode(prefix.encode()).decode(),
                   "range_end": base64.b64encode(end.encode()).decode()}, timeout=5)
    return [(base64.b64decode(kv["key"]), base64.b64decode(kv.get("value", "")))
            for kv in r.get("kvs", [])]


class Slow:
    """A receiver that notes when each POST arrives and answers 200 after `delay` s."""

    def __init__(self, delay):
        import http.server
        self.arrived = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.arrived.append(time.time())
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/hook" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_webhook_is_delivered_once_and_taken_over_when_its_node_dies(cl, etcd):
    good = Answering()
    hang = Slow(delay=4)
    try:
        a, b, c = cl.nodes
        assert create(a, "hooked", ibm(), cl.auth).status_code == 201
        assert wait_for(lambda: visible(b, "hooked", cl.auth), 1)[0]
        assert b.post("/api/v1/credentials/hooked/usages",
                      json={"type": "t", "callbackUrl": good.url}, headers=cl.auth
                      ).status_code == 201
        for v in range(2, 5):
            assert create(c, "hooked", ibm("s%d" % v), cl.auth).status_code == 200
        ok, _ = wait_for(lambda: len(good.calls) >= 3, 10)
        time.sleep(2 * SLOW)  # any second delivery of the same entry would show now
        versions = sorted(json.loads(x)["version"] for x in good.calls)
        assert versions == [2, 3, 4], versions  # once each, not once per node

        # A receiver that hangs keeps the claiming node inside its POST; kill it.
        assert create(a, "slow", ibm(), cl.auth).status_code == 201
        assert wait_for(lambda: visible(b, "slow", cl.auth), 1)[0]
        assert b.post("/api/v1/credentials/slow/usages",
                      json={"type": "t", "callbackUrl": hang.url}, headers=cl.auth
                      ).status_code == 201
        assert create(c, "slow", ibm("v2"), cl.auth).status_code == 200
        claims, _ = wait_for(lambda: [v for k, v in etcd_get_prefix(etcd, cl.prefix)
                                      if b"meta/claim/" in k], 10)
        assert claims, "no node claimed the entry"
        holder = int(claims[0].decode().replace("node", ""))
        victim = cl.nodes[holder]
        victim.kill()  # SIGKILL: its lease is left to expire
        killed = time.time()
        others = [d for i, d in enumerate(cl.nodes) if i != holder]
        for d in others:
            assert d.get("/api/v1/credentials/slow", headers=cl.auth).status_code == 200
        ok, took = wait_for(lambda: any(t > killed for t in hang.arrived), 30)
        assert ok, "no other node took the entry over within 30 s"
        assert time.time() - killed < 30 * SLOW
        # Settled: the outbox empties on the survivors.
        ok, _ = wait_for(lambda: all(
            'credstore_webhook_outbox_depth 0' in d.get("/metrics", headers=cl.auth).text
            for d in others), 15)
        assert ok
    finally:
        good.close()
        hang.close()


# ------------------------------------------------------------- quorum


def test_lost_quorum_is_503_without_secrets_and_recovers(cl, etcd):
    a, b, _ = cl.nodes
    assert create(a, "q", ibm("quorum-secret-xyz"), cl.auth).status_code == 201
    assert wait_for(lambda: visible(b, "q", cl.auth), 1)[0]
    uid = b.post("/api/v1/credentials/q/usages", json={"type": "t"}, headers=cl.auth).json()["id"]
    assert a.get("/readyz").status_code == 200
    leader = etcd.leader()
    down = [i for i in range(3) if i != leader][:1] + [leader]
    for i in down:
        etcd.kill(i)
    try:
        ok, _ = wait_for(lambda: all(d.get("/readyz").status_code == 503 for d in (a, b)), 10)
        assert ok
        r = a.post("/api/v1/credentials", json=dict(ibm(), _id="q2"), headers=cl.auth)
        assert r.status_code == 503 and r.json()["code"] == "store_unavailable", r.text
        r = b.post("/api/v1/credentials/q/resolve", json={"usageId": uid}, headers=cl.auth)
        assert r.status_code == 503 and r.json()["code"] == "store_unavailable", r.text
        assert "quorum-secret-xyz" not in r.text
        # Metadata keeps serving from the local copy.
        assert b.get("/api/v1/credentials/q", headers=cl.auth).status_code == 200
    finally:
        for i in down:
            etcd.restart(i)
    etcd.wait_healthy()
    ok, took = wait_for(lambda: all(d.get("/readyz").status_code == 200 for d in cl.nodes), 20)
    assert ok, "nodes did not recover by themselves"
    r = a.post("/api/v1/credentials", json=dict(ibm(), _id="q2"), headers=cl.auth)
    assert r.status_code == 201, r.text
    r = b.post("/api/v1/credentials/q/resolve", json={"usageId": uid}, headers=cl.auth)
    assert r.status_code == 200 and r.json()["apiKey"] == "quorum-secret-xyz"


# ------------------------------------------------------------- audit


def test_audit_verify_walks_every_chain_and_finds_a_tampered_entry(cl, etcd):
    for i, d in enumerate(cl.nodes):
        assert create(d, "audited-%d" % i, ibm(), cl.auth).status_code == 201
    r = cl.cli("audit-verify")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["intact"] and out["chains"] == 3 and out["entries"] >= 3
    # The listing is one feed: strictly increasing seqs, every node's entries in it.
    entries = cl.nodes[0].get("/api/v1/audit?since=0&limit=1000", headers=cl.auth).json()
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(set(seqs))
    assert {"node0", "node1", "node2"} <= {e.get("node") for e in entries}
    rows = [(k, v) for k, v in etcd_get_prefix(etcd, cl.prefix + "audit/")]
    for i in range(3):
        node = b"node%d\x00" % i
        k, v = next((k, v) for k, v in rows if k[len(cl.prefix + "audit/"):].startswith(node))
        forged = v.replace(b'"result":"success"', b'"result":"failure"')
        assert forged != v
        put = {"key": base64.b64encode(k).decode(), "value": base64.b64encode(forged).decode()}
        etcd.post(etcd.leader(), "/v3/kv/put", put, timeout=5)
        r = cl.cli("audit-verify")
        assert r.returncode == 1 and ('node "node%d"' % i) in r.stderr, r.stderr
        put["value"] = base64.b64encode(v).decode()
        etcd.post(etcd.leader(), "/v3/kv/put", put, timeout=5)
        r = cl.cli("audit-verify")
        assert r.returncode == 0, r.stderr
    # A chain's newest entry removed: its head no longer matches.
    last = max((k for k, _ in rows if b"node1\x00" in k))
    etcd.post(etcd.leader(), "/v3/kv/deleterange", {"key": base64.b64encode(last).decode()},
              timeout=5)
    r = cl.cli("audit-verify")
    assert r.returncode == 1 and 'node "node1"' in r.stderr, r.stderr
    assert run_cli("audit-verify", "--store", etcd.url("/no-store-here/"), "--master-key-file",
                   cl.keyfile).returncode == 1


# ------------------------------------------------------------- migrate


def secret_needles():
    needles = []
    for body in valid_bodies().values():
        s = (body.get("secret") or body.get("apiToken") or {}).get("plain")
        if s:
            needles.append(s.encode())
            if len(s) < 200:
                needles += b64variants(s)
    return needles


def resolve_all(d, auth, usages):
    out = {}
    for cid, uid in usages.items():
        r = d.post("/api/v1/credentials/%s/resolve" % cid, json={"usageId": uid}, headers=auth)
        assert r.status_code in (200, 502), r.text
        if r.status_code == 200:
            out[cid] = r.json()
    return out


def listing(d, auth):
    creds = sorted(d.get("/api/v1/credentials?limit=500", headers=auth).json(),
                   key=lambda c: c["_id"])
    audit = d.get("/api/v1/audit?since=0&limit=1000", headers=auth).json()
    return creds, audit


def test_migrate_lmdb_to_etcd_and_back(etcd, tmp_path):
    src = Daemon().start()
    auth = {"Authorization": basic(src.admin["id"], src.admin["secret"])}
    key = os.path.join(src.data, "master.key")
    usages = {}
    try:
        for cid, body in valid_bodies().items():
            if body.get("useAWSRole"):
                continue  # needs an instance role to resolve
            assert create(src, cid, body, auth).status_code == 201
            usages[cid] = src.post("/api/v1/credentials/%s/usages" % cid, json={"type": "t"},
                                   headers=auth).json()["id"]
        before = resolve_all(src, auth, usages)
        assert len(before) >= 5
        creds0, audit0 = listing(src, auth)
    finally:
        assert src.stop() == 0
    prefix = "/mig-%s/" % secrets.token_hex(4)
    url = etcd.url(prefix)
    try:
        r = run_cli("migrate", "--from", "lmdb:" + src.data, "--to", url)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["records"]["credentials"] == len(usages) and out["audit"]["intact"]
        assert out["audit"]["entries"] == len(audit0)
        # A non-empty target is refused.
        r = run_cli("migrate", "--from", "lmdb:" + src.data, "--to", url)
        assert r.returncode == 1 and "already holds a store" in r.stderr
        # etcd holds no plaintext secret in any spelling.
        dump = subprocess.run([ETCDCTL, "--endpoints=" + ",".join(etcd.endpoints()), "get",
                               "--prefix", prefix],
                              capture_output=True, env=dict(os.environ, ETCDCTL_API="3"),
                              timeout=30)
        assert dump.returncode == 0 and b"credentials" in dump.stdout
        for n in secret_needles():
            assert n not in dump.stdout, n[:20]
        node = Daemon(data_dir="(etcd)", store=url,
                      serve_args=["--master-key-file", key, "--node-id", "m0"]).start()
        try:
            got = resolve_all(node, auth, usages)
            assert got.keys() == before.keys()
            for cid, m in got.items():
                assert {k: v for k, v in m.items() if k != "version"} == \
                    {k: v for k, v in before[cid].items() if k != "version"}, cid
            creds1, audit1 = listing(node, auth)
            assert creds1 == creds0
        finally:
            assert node.stop() == 0
            node.close()
        r = run_cli("audit-verify", "--store", url, "--master-key-file", key)
        assert r.returncode == 0, r.stderr
        back = str(tmp_path / "back")
        r = run_cli("migrate", "--from", url, "--to", "lmdb:" + back, "--master-key-file", key)
        assert r.returncode == 0, r.stderr
        out2 = json.loads(r.stdout)
        assert out2["records"]["credentials"] == len(usages)
        assert out2["audit"]["entries"] == len(audit1) and out2["audit"]["intact"]
        d2 = Daemon(data_dir=back, serve_args=["--master-key-file", key]).start()
        try:
            after = resolve_all(d2, auth, usages)
            assert after.keys() == before.keys()
            for cid, m in after.items():
                assert {k: v for k, v in m.items() if k != "version"} == \
                    {k: v for k, v in before[cid].items() if k != "version"}, cid
            creds2, audit2 = listing(d2, auth)
            assert creds2 == creds0
            # Every audit entry made, in order, in the round trip's feed.
            strip = [(e["action"], e["target"], e["at"]) for e in audit1]
            assert [(e["action"], e["target"], e["at"]) for e in audit2[:len(strip)]] == strip
            ul = d2.get("/api/v1/credentials/ibm-1/usages", headers=auth).json()
            assert [u["id"] for u in ul] == [usages["ibm-1"]]
        finally:
            assert d2.stop() == 0
            d2.close()
        r = run_cli("audit-verify", "--data", back, "--master-key-file", key)
        assert r.returncode == 0, r.stderr
    finally:
        src.close()


# ------------------------------------------------------------- deploy/


def test_k8s_cluster_manifests():
    import glob
    import yaml
    d = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "k8s-cluster")
    docs = []
    for f in sorted(glob.glob(os.path.join(d, "*.yaml"))):
        with open(f) as fh:
            docs += [x for x in yaml.safe_load_all(fh) if x]
    kinds = {x["kind"]: x for x in docs}
    kust = kinds["Kustomization"]
    for r in kust["resources"]:
        assert os.path.exists(os.path.join(d, r)), r
    assert not [x for x in docs if x["kind"] == "Secret"]  # secrets are made by hand
    dep = kinds["Deployment"]
    assert dep["spec"]["replicas"] >= 2
    c = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["CREDSTORE_STORE"]["value"].startswith("etcd://")
    assert env["CREDSTORE_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert c["args"][0] == "serve" and "--data" not in c["args"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["securityContext"]["readOnlyRootFilesystem"]
    sts = kinds["StatefulSet"]
    assert sts["spec"]["replicas"] == 3 and "etcd" in sts["spec"]["template"]["spec"][
        "containers"][0]["image"]
    job = kinds["Job"]["spec"]["template"]["spec"]["containers"][0]
    assert job["args"][0] == "init" and "--master-key-file" in job["args"]
    assert {e["name"]: e["value"] for e in job["env"]}["CREDSTORE_STORE"] == \
        env["CREDSTORE_STORE"]["value"]
