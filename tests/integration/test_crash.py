"""Crash safety: concurrent writers against the real daemon, SIGKILL at a
random point mid-stream, restart on the same data dir; every acknowledged
write is present and exact, the store opens cleanly and the audit chain
verifies. Bounded: ROUNDS kills, each after 0.2-1.5 s of writing."""
import json
import os
import random
import threading
import time

import requests

from harness import SLOW, Daemon, basic, run_cli, sanitizer_lines
from test_credentials import fixture

ROUNDS = 5
WRITERS = 4
OPS_PER_ROUND = 400  # per writer; the kill normally comes first
SEED = int(os.environ.get("CREDSTORE_CRASH_SEED", "20261122"))
GUID = "0123456789abcdef0123456789abcdef"
KINDS = ["ibm", "aws", "gcp-token", "azure", "kube"]


def make_body(kind, cid, n, rng):
    """(request body, plain secret) for write number @n of @cid."""
    desc = "%s write %d %08x" % (cid, n, rng.getrandbits(32))
    tag = "%s-%d-%08x" % (cid, n, rng.getrandbits(32))
    if kind == "ibm":
        plain = "ibm-key-" + tag
        body = {"type": "ibmCloud", "accountGUID": GUID, "secret": {"plain": plain}}
    elif kind == "aws":
        plain = ("aws/" + tag + "x" * 40)[:40]
        body = {"type": "aws", "accountID": "AKIAIOSFODNN7EXAMPLE", "secret": {"plain": plain}}
    elif kind == "gcp-token":
        plain = "AIza-" + tag
        body = {"type": "gcp", "apiToken": {"plain": plain}}
    elif kind == "azure":
        sk = json.loads(fixture("azure-sdk-auth.json"))
        sk["clientSecret"] = "az-" + tag
        plain = sk["clientSecret"]
        body = {"type": "azure", "secret": {"plain": json.dumps(sk)}}
    else:
        plain = fixture("kubeconfig-token.yaml")
        body = {"type": "kubeconfig", "secret": {"plain": plain}}
    body.update(_id=cid, description=desc)
    return body, plain


def material_matches(kind, m, plain):
    return {
        "ibm": lambda: m.get("apiKey") == plain and m.get("accountGUID") == GUID,
        "aws": lambda: m.get("SecretAccessKey") == plain and
        m.get("AccessKeyId") == "AKIAIOSFODNN7EXAMPLE",
        "gcp-token": lambda: m.get("apiToken") == plain,
        "azure": lambda: m.get("clientSecret") == plain,
        "kube": lambda: m.get("kubeconfig") == plain,
    }[kind]()


class Rec:
    """What the test knows about one credential id."""

    def __init__(self, kind):
        self.kind = kind
        self.n = 0            # writes attempted (for unique bodies)
        self.state = None     # last acknowledged (or, after a crash, adopted) object
        self.plain = None     # its secret
        self.pending = None   # (body, plain) sent without an answer
        self.usages = set()   # acknowledged usage ids
        self.usage_pending = False


class Writer(threading.Thread):
    def __init__(self, idx, rnd, model, acks, url, auth, stop, rng):
        super().__init__(daemon=True)
        self.idx, self.rnd, self.model, self.acks = idx, rnd, model, acks
        self.created = 0
        self.url, self.auth, self.stop, self.rng = url, auth, stop, rng
        self.errors = []
        self.count = {"create": 0, "update": 0, "usage": 0}

    def new_id(self):
        self.created += 1
        return "w%d-r%d-%d" % (self.idx, self.rnd, self.created)

    def run(self):
        s = requests.Session()
        try:
            for _ in range(OPS_PER_ROUND):
                if self.stop.is_set() or not self.step(s):
                    return
        finally:
            s.close()

    def step(self, s):
        rng = self.rng
        known = [cid for cid, r in self.model.items() if r.state is not None]
        x = rng.random()
        if not known or x < 0.4:
            cid = self.new_id()
            rec = self.model[cid] = Rec(rng.choice(KINDS))
            op = "create"
        else:
            cid = rng.choice(known)
            rec = self.model[cid]
            op = "update" if x < 0.8 else "usage"
        try:
            if op == "usage":
                rec.usage_pending = True
                r = s.post("%s/api/v1/credentials/%s/usages" % (self.url, cid),
                           json={"type": "Cloud Scan", "description": "crash test"},
                           headers=self.auth, timeout=10 * SLOW)
            else:
                rec.n += 1
                body, plain = make_body(rec.kind, cid, rec.n, rng)
                rec.pending = (body, plain)
                r = s.post(self.url + "/api/v1/credentials", json=body, headers=self.auth,
                           timeout=10 * SLOW)
        except requests.RequestException:
            return False  # the daemon died under us: the outcome is unknown
        if op == "usage":
            if r.status_code != 201:
                self.errors.append("usage on %s: %d %s" % (cid, r.status_code, r.text[:200]))
                return False
            rec.usages.add(r.json()["id"])
            rec.usage_pending = False
            self.acks.append(("usage", cid, r.json()["id"]))
            self.count["usage"] += 1
            return True
        want = 201 if rec.state is None else 200
        if r.status_code != want:
            self.errors.append("%s %s: %d %s" % (op, cid, r.status_code, r.text[:200]))
            return False
        got = r.json()
        expect_version = 1 if rec.state is None else rec.state["version"] + 1
        if got.get("version") != expect_version or got.get("description") != body["description"]:
            self.errors.append("%s %s acknowledged %r, expected version %d" % (
                op, cid, got, expect_version))
        rec.state, rec.plain, rec.pending = got, plain, None
        self.acks.append(("write", cid, got["version"]))
        self.count[op] += 1
        return True




def get(d, path, auth, **kw):
    return requests.get(d.url + path, headers=dict(auth, Connection="close"),
                        timeout=15 * SLOW, **kw)


def post(d, path, auth, body):
    return requests.post(d.url + path, json=body, headers=dict(auth, Connection="close"),
                         timeout=15 * SLOW)


def list_all(d, auth):
    out, offset = {}, 0
    while True:
        r = get(d, "/api/v1/credentials?limit=500&sort=_id&offset=%d" % offset, auth)
        assert r.status_code == 200, r.text
        page = r.json()
        for c in page:
            assert c["_id"] not in out, "listed twice: " + c["_id"]
            out[c["_id"]] = c
        total = int(r.headers["Total-Count"])
        offset += len(page)
        if not page or offset >= total:
            assert len(out) == total, (len(out), total)
            return out


IN_FLIGHT = {"committed": 0, "lost": 0}


def verify(d, auth, models, acks, rng, label):
    """Compare the restarted store with what was acknowledged; adopt the
    outcome of the writes that were in flight at the kill."""
    assert get(d, "/readyz", {}).status_code == 200, label + ": not ready after restart"
    stored = list_all(d, auth)
    expected_ids = set()
    for model in models:
        for cid in list(model):
            rec = model[cid]
            got = stored.get(cid)
            if rec.state is None:  # only an unacknowledged create
                if got is None:
                    IN_FLIGHT["lost"] += 1
                    del model[cid]
                    continue
                IN_FLIGHT["committed"] += 1
                body, plain = rec.pending
                assert got["version"] == 1 and got["description"] == body["description"], \
                    (label, cid, got)
                rec.state, rec.plain = got, plain
            else:
                assert got is not None, "%s: acknowledged %s is gone" % (label, cid)
                if got["version"] == rec.state["version"]:
                    IN_FLIGHT["lost"] += rec.pending is not None
                    assert got == rec.state, "%s: %s changed:\n%r\n%r" % (
                        label, cid, rec.state, got)
                else:
                    # Only the one write in flight at the kill may be newer.
                    assert rec.pending and got["version"] == rec.state["version"] + 1, \
                        "%s: %s at version %d, acknowledged %d" % (
                            label, cid, got["version"], rec.state["version"])
                    body, plain = rec.pending
                    IN_FLIGHT["committed"] += 1
                    assert got["description"] == body["description"], (label, cid, got)
                    assert got["created"] == rec.state["created"], (label, cid, got)
                    rec.state, rec.plain = got, plain
            rec.pending = None
            expected_ids.add(cid)
            # Exact equality of a single GET as well as the list.
            if rng.random() < 0.1:
                assert get(d, "/api/v1/credentials/" + cid, auth).json() == rec.state
            if rec.usages or rec.usage_pending:
                r = get(d, "/api/v1/credentials/%s/usages" % cid, auth)
                assert r.status_code == 200, r.text
                have = {u["id"] for u in r.json()}
                missing = rec.usages - have
                assert not missing, "%s: acknowledged usages of %s gone: %r" % (
                    label, cid, missing)
                extra = have - rec.usages
                assert len(extra) <= (1 if rec.usage_pending else 0), (label, cid, extra)
                rec.usages |= extra
                rec.usage_pending = False
    phantom = set(stored) - expected_ids
    assert not phantom, "%s: never written but present: %r" % (label, sorted(phantom)[:10])
    # Every acknowledgement so far, not just the latest per id.
    checked = 0
    for kind, cid, v in acks:
        if kind == "write":
            assert stored[cid]["version"] >= v, (label, cid, v, stored[cid]["version"])
        else:
            rec = next(m[cid] for m in models if cid in m)
            assert v in rec.usages, (label, cid, v)
        checked += 1
    # Sealed data intact: resolve a sample and compare the secret material.
    recs = [(cid, rec) for m in models for cid, rec in m.items()]
    for cid, rec in rng.sample(recs, min(8, len(recs))):
        if rec.usages:
            uid = sorted(rec.usages)[0]
        else:
            r = post(d, "/api/v1/credentials/%s/usages" % cid, auth, {"type": "Cloud Scan"})
            assert r.status_code == 201, r.text
            uid = r.json()["id"]
            rec.usages.add(uid)
        r = post(d, "/api/v1/credentials/%s/resolve" % cid, auth, {"usageId": uid})
        assert r.status_code == 200, (label, cid, r.text)
        m = r.json()
        assert m["version"] == rec.state["version"], (label, cid, m["version"])
        assert material_matches(rec.kind, m, rec.plain), (label, cid, rec.kind)
    return checked


def test_sigkill_mid_stream_loses_no_acknowledged_write():
    rng = random.Random(SEED)
    d = Daemon()
    admin = dict(d.admin)  # from the first init; the store keeps it across restarts
    auth = {"Authorization": basic(admin["id"], admin["secret"])}
    models = [dict() for _ in range(WRITERS)]
    acks = [[] for _ in range(WRITERS)]
    totals = {"create": 0, "update": 0, "usage": 0}
    checked = 0
    try:
        d.start()
        for rnd in range(ROUNDS):
            stop = threading.Event()
            writers = [Writer(i, rnd, models[i], acks[i], d.url, auth, stop,
                              random.Random(rng.getrandbits(64))) for i in range(WRITERS)]
            for w in writers:
                w.start()
            time.sleep(rng.uniform(0.2, 1.5))
            d.kill()  # SIGKILL mid-stream
            stop.set()
            for w in writers:
                w.join(30 * SLOW)
                assert not w.is_alive(), "writer %d stuck" % w.idx
                assert not w.errors, w.errors[:5]
                for k in totals:
                    totals[k] += w.count[k]
            assert sanitizer_lines(d) == [], sanitizer_lines(d)[:10]
            # The crashed store opens and its audit chain verifies.
            r = run_cli("audit-verify", "--data", d.data)
            assert r.returncode == 0, "round %d: audit-verify after SIGKILL: %s %s" % (
                rnd, r.stdout, r.stderr)
            d.start()  # same data dir, same log file
            checked = verify(d, auth, models, [a for w in acks for a in w], rng,
                             "round %d" % rnd)
        assert totals["create"] >= ROUNDS and totals["update"] >= 1 and totals["usage"] >= 1, \
            totals
        # A clean stop, then the audit chain and a final clean reopen.
        assert d.stop() == 0, d.log()[-2000:]
        r = run_cli("audit-verify", "--data", d.data)
        assert r.returncode == 0, (r.stdout, r.stderr)
        d.start()
        checked = verify(d, auth, models, [a for w in acks for a in w], rng, "final")
        assert d.stop() == 0
        assert sanitizer_lines(d) == [], sanitizer_lines(d)[:10]
        print("\ncrash test: %d rounds, acknowledged %d creates, %d updates, %d usages; "
              "%d acknowledgements checked against the restarted store; writes in flight "
              "at a kill: %d found committed, %d not"
              % (ROUNDS, totals["create"], totals["update"], totals["usage"], checked,
                 IN_FLIGHT["committed"], IN_FLIGHT["lost"]))
    finally:
        d.close()
