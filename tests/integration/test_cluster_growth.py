"""API.md §11 in cluster mode: events retention over etcd (the floor in feed
positions, one for the whole cluster) and audit export/prune/verify across
the nodes' chains. Real nodes over the real 3-member etcd cluster of
test_cluster.py's fixtures; every process started here is stopped by PID,
every wait is bounded.
"""
import base64
import json
import os
import tempfile
import threading

import pytest

from harness import assert_error
from test_cluster import (Cluster, create, etcd, etcd_get_prefix, ibm,  # noqa: F401
                          keyfile, wait_for)

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/etcd"),
                                reason="etcd-server is not installed (deploy/deps.sh)")

CAP = 20


def events(d, since, auth):
    return d.get("/api/v1/events", params={"since": since}, headers=auth)


def feed(d, since, auth):
    """Every event after `since`, paging on `next` until it stops moving."""
    out = []
    while True:
        r = events(d, since, auth)
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["events"]
        if page["next"] == since:
            return out
        since = page["next"]


def feed_index_matches_records(d, auth):
    """The node's local feed indexes hold an entry per kept audit entry and
    event, none for trimmed or pruned ones (whole commits go)."""
    text = d.get("/metrics", headers=auth).text
    rec = {}
    for line in text.splitlines():
        for t in ("audit", "events"):
            if line.startswith('credstore_store_records{table="%s"} ' % t):
                rec[t] = int(line.split()[1])
    return metric(d, auth, "credstore_etcd_feed_index_entries") == rec["audit"] + rec["events"]


def metric(d, auth, name):
    for line in d.get("/metrics", headers=auth).text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError("no metric " + name)


@pytest.fixture
def capped(etcd, keyfile):  # noqa: F811
    etcd.wait_healthy()
    c = Cluster(etcd, keyfile, n=3, serve_args=["--events-max-count", str(CAP)])
    yield c
    c.close()


def test_events_count_cap_over_etcd_410_alike_on_every_node_and_resync(capped):
    cl, n = capped, 3 * CAP + 10
    ids = ["grow-%03d" % i for i in range(n)]
    # One event per create, written through every node in turn (sequential:
    # the commit order is this order).
    for i, cid in enumerate(ids):
        r = create(cl.nodes[i % 3], cid, ibm(), cl.auth)
        assert r.status_code == 201, r.text

    def settled():
        feeds = [feed(d, 0, cl.auth) for d in cl.nodes]
        return feeds if all(f == feeds[0] and len(f) == CAP for f in feeds) else None

    feeds, _ = wait_for(settled, timeout=20, step=0.2)
    assert feeds, [len(feed(d, 0, cl.auth)) for d in cl.nodes]
    kept = feeds[0]
    # The newest CAP events are kept, each once, in commit order.
    assert [e["credentialId"] for e in kept] == ids[-CAP:]
    seqs = [e["seq"] for e in kept]
    assert seqs == sorted(set(seqs))
    # Trimmed once in all: the nodes' counters add up to exactly the excess.
    assert sum(metric(d, cl.auth, "credstore_events_trimmed_total") for d in cl.nodes) == n - CAP
    # No node keeps index entries for the trimmed events.
    for d in cl.nodes:
        assert wait_for(lambda: feed_index_matches_records(d, cl.auth), timeout=2)[0]
    # A `since` below the floor is 410 with the same `oldest` on every node.
    bodies = [assert_error(events(d, 1, cl.auth), 410, "events_expired") for d in cl.nodes]
    oldest = bodies[0]["oldest"]
    assert all(b["oldest"] == oldest for b in bodies), bodies
    assert 1 < oldest <= seqs[0]
    for d in cl.nodes:
        for since in (1, oldest // 2, oldest - 2):
            assert assert_error(events(d, since, cl.auth), 410,
                                "events_expired")["oldest"] == oldest
        # since=0 is never 410; the resync from oldest - 1 sees every kept event once.
        assert feed(d, 0, cl.auth) == kept
        assert feed(d, oldest - 1, cl.auth) == kept
    # Retention goes on as writes go on, through any node.
    for i in range(5):
        assert create(cl.nodes[(i + 1) % 3], "more-%d" % i, ibm(), cl.auth).status_code == 201

    def moved():
        f = feed(cl.nodes[2], 0, cl.auth)
        return f if len(f) == CAP and f[-1]["credentialId"] == "more-4" else None

    f, _ = wait_for(moved, timeout=20, step=0.2)
    assert f and [e["credentialId"] for e in f] == ids[-CAP + 5:] + ["more-%d" % i for i in range(5)]
    body = assert_error(events(cl.nodes[0], seqs[2], cl.auth), 410, "events_expired")
    assert body["oldest"] > oldest


def test_trim_never_splits_a_commit_so_a_fresh_node_sees_the_same_feed(etcd, keyfile):  # noqa: F811
    etcd.wait_healthy()
    cl = Cluster(etcd, keyfile, n=2, serve_args=["--events-max-count", str(CAP)])
    try:
        # Concurrent creates through one node: its group commit puts several
        # events in one etcd Txn (one revision, ranks 0, 1, ...).
        def writer(w):
            for i in range(10):
                r = create(cl.nodes[0], "burst-%d-%d" % (w, i), ibm(), cl.auth)
                assert r.status_code == 201, r.text

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        commits = {e["seq"] >> 7 for e in feed(cl.nodes[0], 0, cl.auth)}

        seen = []

        def settled():
            # The same on both nodes, and unchanged over a trimmer tick (1 s).
            a, b = feed(cl.nodes[0], 0, cl.auth), feed(cl.nodes[1], 0, cl.auth)
            seen.append(a if a == b and len(a) < 120 else None)
            return a if len(seen) > 1 and seen[-1] and seen[-1] == seen[-2] else None

        kept, _ = wait_for(settled, timeout=20, step=1.2)
        assert metric_sum(cl) == 120 - len(kept)
        assert kept and len(kept) >= CAP, len(feed(cl.nodes[0], 0, cl.auth))
        oldest = assert_error(events(cl.nodes[0], 1, cl.auth), 410, "events_expired")["oldest"]
        # No kept event shares the commit of the last trimmed one.
        assert all(e["seq"] >> 7 != (oldest - 1) >> 7 for e in kept), (oldest, [e["seq"] for e in kept][:5])
        assert len(commits) < 120  # the burst did share commits
        # A node that loads the store afresh ranks each commit's events
        # from what is left: the same positions, the same 410.
        cl.nodes.append(cl.node(2))
        assert feed(cl.nodes[2], 0, cl.auth) == kept
        assert feed(cl.nodes[2], oldest - 1, cl.auth) == kept
        assert assert_error(events(cl.nodes[2], 1, cl.auth), 410,
                            "events_expired")["oldest"] == oldest
    finally:
        cl.close()


def metric_sum(cl):
    return sum(metric(d, cl.auth, "credstore_events_trimmed_total") for d in cl.nodes)


# ------------------------------------------------------------------ audit


def audit_rows(etcd, cl, chain):
    """(key, value) of `chain`'s stored entries, in chain order."""
    pre = (cl.prefix + "audit/").encode()
    return sorted((k, v) for k, v in etcd_get_prefix(etcd, cl.prefix + "audit/")
                  if k[len(pre):].startswith(chain.encode() + b"\x00"))


def etcd_put(etcd, k, v):
    etcd.post(etcd.leader(), "/v3/kv/put",
              {"key": base64.b64encode(k).decode(), "value": base64.b64encode(v).decode()},
              timeout=5)


def etcd_del(etcd, k):
    etcd.post(etcd.leader(), "/v3/kv/deleterange", {"key": base64.b64encode(k).decode()},
              timeout=5)


def pruned_listing(d, cl, gone):
    """The node's audit listing once it shows none of `gone`, else None."""
    listing = d.get("/api/v1/audit?since=0&limit=1000", headers=cl.auth).json()
    return listing if not {e["seq"] for e in listing} & {e["seq"] for e in gone} else None


def verify(cl, ok=True, chain=None):
    r = cl.cli("audit-verify")
    if ok:
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    assert r.returncode == 1, r.stdout
    assert ('of node "%s"' % chain) in r.stderr, r.stderr
    return None


def test_audit_export_prune_verify_across_chains(etcd, keyfile):  # noqa: F811
    etcd.wait_healthy()
    cl = Cluster(etcd, keyfile, n=2)
    out = os.path.join(tempfile.mkdtemp(prefix="credstore-export-"), "audit.jsonl")
    try:
        for i in range(6):
            assert create(cl.nodes[i % 2], "aud-%d" % i, ibm(), cl.auth).status_code == 201
        before = verify(cl)
        assert before["chains"] == 2 and before["anchors"] == {}  # node0's, node1's
        # Nothing exported yet: nothing may be pruned, and nothing is.
        r = cl.cli("audit-prune", "--before", "1000000000")
        assert r.returncode == 1 and "not yet exported" in r.stderr, r.stderr
        assert verify(cl)["entries"] == before["entries"]

        r = cl.cli("audit-export", "--out", out)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        with open(out) as f:
            lines = [json.loads(line) for line in f]
        assert len(lines) == report["entries"] == before["entries"]
        assert [e["seq"] for e in lines] == sorted({e["seq"] for e in lines})
        assert lines[-1]["seq"] == report["last"]
        assert {"node0", "node1"} <= {e.get("node") for e in lines}
        assert all(len(e["hash"]) == 64 and len(e["prevHash"]) == 64 for e in lines)
        # Written after the export: not exported.
        for i in range(4):
            assert create(cl.nodes[i % 2], "late-%d" % i, ibm(), cl.auth).status_code == 201
        listing = cl.nodes[0].get("/api/v1/audit?since=%d&limit=1000" % report["last"],
                                  headers=cl.auth).json()
        first_late = listing[0]["seq"]
        r = cl.cli("audit-prune", "--before", str(first_late + 1))
        assert r.returncode == 1 and "not yet exported" in r.stderr, r.stderr
        assert verify(cl)["entries"] == before["entries"] + 4

        r = cl.cli("audit-prune", "--before", str(report["last"] + 1))
        assert r.returncode == 0, r.stderr
        pruned = json.loads(r.stdout)
        # Every exported entry goes but each chain's newest (the cli chain's
        # newest is exported: it stays).
        newest = {}
        for e in lines:
            newest[e.get("node", "")] = e
        kept = [e for e in lines if e.get("node") not in ("node0", "node1")
                and newest[e.get("node", "")] is e]
        assert pruned["removed"] == len(lines) - len(kept)
        for node in ("node0", "node1"):
            last = newest[node]
            assert pruned["anchors"][node] == {"seq": last["chainSeq"], "hash": last["hash"]}
        after = verify(cl)
        # audit-prune recorded itself in the cli's chain: a third one.
        assert after["anchors"] == pruned["anchors"] and after["chains"] == 3
        assert after["entries"] == len(kept) + 4 + 1
        gone = [e for e in lines if e not in kept]
        left, _ = wait_for(lambda: pruned_listing(cl.nodes[1], cl, gone), timeout=2)
        assert left, "node1 still lists pruned entries"
        assert {e["seq"] for e in left if e["seq"] <= report["last"]} == {e["seq"] for e in kept}
        assert [e["action"] for e in left].count("audit_prune") == 1
        tamper_remove_forge(etcd, cl, pruned["anchors"])

        # Again, past every entry: the cli chain's only entry (its newest) and
        # each node's newest stay; the trail's newest is refused outright.
        out2 = out + ".2"
        r = cl.cli("audit-export", "--out", out2)
        assert r.returncode == 0, r.stderr
        last2 = json.loads(r.stdout)["last"]
        r = cl.cli("audit-prune", "--before", str(last2 + 1))
        assert r.returncode == 1 and "at most %d" % last2 in r.stderr, r.stderr
        r = cl.cli("audit-prune", "--before", str(last2))
        assert r.returncode == 0, r.stderr
        with open(out2) as f:
            lines2 = [json.loads(line) for line in f]
        chains2 = {e.get("node") for e in lines2}
        assert chains2 == {"node0", "node1", after_cli(lines2)}
        # Every entry below last2 but each chain's newest (node0's entry
        # re-put above sits at last2 now, after its chain's newest).
        top = {}
        for e in lines2:
            top[e["node"]] = max(top.get(e["node"], 0), e["chainSeq"])
        gone = [e for e in lines2 if e["seq"] < last2 and e["chainSeq"] != top[e["node"]]]
        assert gone and json.loads(r.stdout)["removed"] == len(gone)
        again = verify(cl)
        assert again["chains"] == 3 and set(again["anchors"]) == {"node0", "node1"}
        assert again["entries"] == len(lines2) - len(gone) + 1
    finally:
        cl.close()


def after_cli(lines):
    """The cli's chain in an export: the one that is not a node's."""
    names = {e.get("node") for e in lines} - {"node0", "node1"}
    assert len(names) == 1 and next(iter(names)).startswith("cli@"), names
    return next(iter(names))


def tamper_remove_forge(etcd, cl, anchors):
    # A remaining entry tampered with: its chain is named.
    for node in ("node0", "node1"):
        k, v = audit_rows(etcd, cl, node)[0]
        forged = v.replace(b'"result":"success"', b'"result":"failure"')
        assert forged != v
        etcd_put(etcd, k, forged)
        verify(cl, ok=False, chain=node)
        etcd_put(etcd, k, v)
        verify(cl)
    # The first remaining entry removed: the chain no longer goes on from its anchor.
    k, v = audit_rows(etcd, cl, "node0")[0]
    etcd_del(etcd, k)
    verify(cl, ok=False, chain="node0")
    etcd_put(etcd, k, v)
    verify(cl)
    # Forged anchors: a flipped bit, another chain's anchor copied, one moved
    # past a remaining entry without the key, one removed.
    meta = cl.prefix.encode() + b"meta/audit_anchor/"
    good = {n: dict(etcd_get_prefix(etcd, cl.prefix + "meta/audit_anchor/"))[meta + n.encode()]
            for n in ("node0", "node1")}
    first = json.loads(audit_rows(etcd, cl, "node1")[0][1][32:])
    moved = (first["chainSeq"]).to_bytes(8, "big") + audit_rows(etcd, cl, "node1")[0][1][:32] \
        + good["node1"][40:]
    for bad in (bytes([good["node1"][0] ^ 1]) + good["node1"][1:],
                good["node1"][:20] + bytes([good["node1"][20] ^ 0x40]) + good["node1"][21:],
                good["node0"], moved):
        etcd_put(etcd, meta + b"node1", bad)
        verify(cl, ok=False, chain="node1")
    etcd_del(etcd, meta + b"node1")
    verify(cl, ok=False, chain="node1")
    etcd_put(etcd, meta + b"node1", good["node1"])
    assert verify(cl)["anchors"] == anchors


def test_audit_prune_keeps_a_commit_whole_and_a_fresh_node_agrees(etcd, keyfile):  # noqa: F811
    etcd.wait_healthy()
    cl = Cluster(etcd, keyfile, n=2)
    out = os.path.join(tempfile.mkdtemp(prefix="credstore-export-"), "audit.jsonl")
    try:
        # Concurrent creates through one node: its group commit puts several
        # audit entries of its chain in one etcd Txn.
        def writer(w):
            for i in range(8):
                assert create(cl.nodes[0], "c-%d-%d" % (w, i), ibm(), cl.auth).status_code == 201

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert create(cl.nodes[1], "late", ibm(), cl.auth).status_code == 201
        assert cl.cli("audit-export", "--out", out).returncode == 0
        with open(out) as f:
            lines = [json.loads(line) for line in f]
        commits = {}
        for e in lines:
            commits.setdefault(e["seq"] >> 7, []).append(e)
        shared = [c for c in sorted(commits) if len(commits[c]) > 1 and c < lines[-1]["seq"] >> 7]
        assert shared, "the burst shared no commit"
        whole = commits[shared[-1]]
        # `before` between two entries of one commit: the commit stays whole.
        r = cl.cli("audit-prune", "--before", str(whole[1]["seq"]))
        assert r.returncode == 0, r.stderr
        gone = [e for e in lines if e["seq"] >> 7 < shared[-1]]
        assert json.loads(r.stdout)["removed"] == len(gone)
        # The prune is visible on a node within 1 s (API.md §9).
        listing, _ = wait_for(lambda: pruned_listing(cl.nodes[0], cl, gone), timeout=2)
        assert listing, "node0 still lists pruned entries"
        seqs = {e["seq"] for e in listing}
        assert {e["seq"] for e in whole} <= seqs
        assert verify(cl)["anchors"]["node0"]["seq"] == max(e["chainSeq"] for e in gone)
        # Nor for the pruned entries, on the nodes that watched the prune.
        for d in cl.nodes:
            assert wait_for(lambda: feed_index_matches_records(d, cl.auth), timeout=2)[0]
        # A node that loads the store afresh lists the same entries at the same seqs.
        cl.nodes.append(cl.node(2))
        assert cl.nodes[2].get("/api/v1/audit?since=0&limit=1000",
                               headers=cl.auth).json()[:len(listing)] == listing
    finally:
        cl.close()
