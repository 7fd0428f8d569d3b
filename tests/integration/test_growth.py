"""Issue 17 (correctness): updates that never fail under contention, events
retention, and webhook dead letters. The real daemon on loopback; every
receiver listens on 127.0.0.1 in this process."""
import json
import os
import shutil
import threading
import time

import pytest
import requests

from harness import WRAPPER, Daemon, assert_error, basic, finish, start
from openapi_check import check
from test_credentials import valid_bodies
from test_usages import Receiver, add_usage, create, free_port, resolve, wait_for

# Valgrind slows the daemon tenfold: fewer updates there, the same claims.
WRITERS = 8
UPDATES = 50 if WRAPPER else 500


def ibm(description, secret=None):
    body = dict(valid_bodies()["ibm-1"], description=description)
    if secret is None:
        del body["secret"]  # omitted: the stored secret is kept (the merge)
    else:
        body["secret"] = {"plain": secret}
    return body


def feed(d, since=0, credential=None, headers=None):
    """Every event after `since`, paging on `next` until it stops moving."""
    events = []
    while True:
        params = {"since": since}
        if credential:
            params["credential"] = credential
        r = d.get("/api/v1/events", params=params, headers=headers or d.auth)
        assert r.status_code == 200, r.text
        page = r.json()
        events += page["events"]
        if page["next"] == since:
            return events
        since = page["next"]


# ------------------------------------------------------------ contention


def hammer(d, cid, writers, updates, errors, stop_resolving=None):
    """`writers` threads each PUT `updates` updates of `cid`, no If-Match."""

    def writer(w):
        s = requests.Session()
        for i in range(updates):
            secret = "ibm-key-%d-%d-abcdefghijklmnopqrstuvwxyz" % (w, i) if i % 5 == 0 else None
            r = s.put(d.url + "/api/v1/credentials/" + cid, json=ibm("w%d i%d" % (w, i), secret),
                      headers=d.auth, timeout=60)
            if r.status_code != 200:
                errors.append((r.status_code, r.text))
        s.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if stop_resolving:
        stop_resolving.set()
    return time.time() - t0


def assert_versions_once(d, cid, first, last):
    versions = [e["version"] for e in feed(d, credential=cid) if e["type"] == "updated"]
    assert sorted(versions) == list(range(first, last + 1)), (len(versions), versions[:5])
    assert d.get("/api/v1/credentials/" + cid, headers=d.auth).json()["version"] == last


def test_concurrent_updates_of_one_credential_never_fail():
    d = start()
    try:
        create(d, "hot-1", ibm("v1", "ibm-key-initial-abcdefghijklmnopqrstuvwxyz"))
        errors = []
        took = hammer(d, "hot-1", WRITERS, UPDATES, errors)
        n = WRITERS * UPDATES
        print("%d writers x %d updates of one id: %d errors, %.1f s, %.0f updates/s"
              % (WRITERS, UPDATES, len(errors), took, n / took))
        assert errors == [], errors[:5]
        assert_versions_once(d, "hot-1", 2, n + 1)
        # The kept secret is the last one sent: no update was merged into a stale record.
        u = add_usage(d, "hot-1").json()
        key = resolve(d, "hot-1", u["id"]).json()["apiKey"]
        assert key.startswith("ibm-key-") and key.endswith("-abcdefghijklmnopqrstuvwxyz")
        # If-Match still answers 412 on a stale version, and changes nothing.
        r = d.put("/api/v1/credentials/hot-1", json=ibm("stale"),
                  headers=dict(d.auth, **{"If-Match": "1"}))
        assert_error(r, 412, "precondition_failed")
        assert d.get("/api/v1/credentials/hot-1", headers=d.auth).json()["version"] == n + 1
    finally:
        finish(d)


def test_concurrent_updates_while_usages_resolve():
    d = start()
    try:
        create(d, "hot-2", ibm("v1", "ibm-key-initial-abcdefghijklmnopqrstuvwxyz"))
        uids = [add_usage(d, "hot-2").json()["id"] for _ in range(2)]
        stop = threading.Event()
        resolved, bad = [0, 0], []

        def resolver(k):
            s = requests.Session()
            while not stop.is_set():
                r = s.post(d.url + "/api/v1/credentials/hot-2/resolve",
                           json={"usageId": uids[k]}, headers=d.auth, timeout=60)
                if r.status_code == 200 and r.json()["apiKey"].startswith("ibm-key-"):
                    resolved[k] += 1
                else:
                    bad.append((r.status_code, r.text))
            s.close()

        rs = [threading.Thread(target=resolver, args=(k,)) for k in range(2)]
        for t in rs:
            t.start()
        errors = []
        hammer(d, "hot-2", WRITERS, UPDATES // 2, errors, stop)
        for t in rs:
            t.join()
        assert errors == [] and bad == [], (errors[:5], bad[:5])
        assert_versions_once(d, "hot-2", 2, WRITERS * (UPDATES // 2) + 1)
        r = d.get("/api/v1/credentials/hot-2/usages", headers=d.auth).json()
        counts = {u["id"]: u["resolveCount"] for u in r}
        assert resolved[0] > 0 and [counts[u] for u in uids] == resolved
    finally:
        finish(d)


# ------------------------------------------------------------ events retention


def events(d, since, headers=None):
    return d.get("/api/v1/events", params={"since": since}, headers=headers or d.auth)


def wait_trimmed(d, oldest, timeout=15):
    """Wait (bounded) until the oldest kept event is `oldest`."""
    def done():
        evs = events(d, 0).json()["events"]
        return bool(evs) and evs[0]["seq"] == oldest
    return wait_for(done, timeout=timeout * (10 if WRAPPER else 1))


def assert_expired(r, oldest):
    check(r, "GET", "/api/v1/events")
    body = assert_error(r, 410, "events_expired")
    assert body["oldest"] == oldest, body
    return body


def test_events_count_cap_410_and_resync():
    d = start("--events-max-count", "50")
    try:
        # 1 create + 249 updates: 250 events, 200 over the cap (two full batches and more).
        create(d, "ret-1", ibm("v1", "ibm-key-initial-abcdefghijklmnopqrstuvwxyz"))
        for i in range(249):
            r = d.put("/api/v1/credentials/ret-1", json=ibm("v%d" % (i + 2)), headers=d.auth)
            assert r.status_code == 200, r.text
        assert wait_trimmed(d, 201), events(d, 0).json()["events"][:1]
        kept = feed(d)
        assert [e["seq"] for e in kept] == list(range(201, 251))
        assert [e["version"] for e in kept] == list(range(201, 251))
        # A consumer that had read up to any seq below 200 missed events: 410.
        for since in (1, 2, 100, 199):
            assert_expired(events(d, since), 201)
        assert_expired(d.get("/api/v1/events", params={"since": 5, "credential": "ret-1"},
                             headers=d.auth), 201)
        # Having read up to 200 (= oldest - 1) it missed nothing.
        assert events(d, 200).json()["events"][0]["seq"] == 201
        # The resync path: after a 410, a consumer re-reads its state, then
        # reads on from oldest - 1 (or 0, as a fresh consumer does).
        oldest = assert_expired(events(d, 3), 201)["oldest"]
        state = d.get("/api/v1/credentials/ret-1", headers=d.auth).json()
        resumed = feed(d, since=oldest - 1)
        assert resumed[0]["seq"] == oldest and resumed[-1]["version"] == state["version"]
        assert feed(d, since=0) == resumed
        # Numbering goes on; the floor and the 410 survive a restart.
        assert d.stop() == 0
        d.start()
        assert_expired(events(d, 7), 201)
        d.put("/api/v1/credentials/ret-1", json=ibm("after restart"), headers=d.auth)
        assert events(d, 250).json()["events"][0]["seq"] == 251
        m = d.get("/metrics", headers=d.auth).text
        assert 'credstore_store_records{table="events"} 5' in m, m
    finally:
        finish(d)


def test_events_age_retention_and_an_emptied_feed():
    d = start("--events-retention", "2s")
    try:
        create(d, "age-1", ibm("v1", "ibm-key-initial-abcdefghijklmnopqrstuvwxyz"))
        for i in range(4):
            d.put("/api/v1/credentials/age-1", json=ibm("v%d" % (i + 2)), headers=d.auth)
        assert [e["seq"] for e in feed(d)] == [1, 2, 3, 4, 5]
        # Older than 2 s: all go (bounded wait), and the feed is empty.
        assert wait_for(lambda: feed(d) == [], timeout=15 * (10 if WRAPPER else 1))
        for since in (1, 4):
            assert_expired(events(d, since), 6)
        assert events(d, 5).json()["events"] == []
        # The next event is 6, not 1: sequence numbers never restart.
        d.put("/api/v1/credentials/age-1", json=ibm("v6"), headers=d.auth)
        got = events(d, 5).json()["events"]
        assert [(e["seq"], e["version"]) for e in got] == [(6, 6)]
        assert "credstore_events_trimmed_total 5" in d.get("/metrics", headers=d.auth).text
    finally:
        finish(d)


def test_retention_options_are_checked():
    from harness import run_cli
    for opt, bad in [("--events-retention", "0"), ("--events-retention", "7x"),
                     ("--events-retention", "-1d"), ("--events-retention", ""),
                     ("--events-retention", "d"), ("--webhook-max-age", "99999999999d"),
                     ("--events-max-count", "0"), ("--events-max-count", "1e6")]:
        r = run_cli("serve", "--data", "/nonexistent-credstore-dir", opt, bad, timeout=20)
        assert r.returncode != 0 and opt[2:] in r.stderr, (opt, bad, r.stderr)


# ------------------------------------------------------------ dead letters


def deliveries(d, state=None, headers=None, **params):
    if state:
        params["state"] = state
    r = d.get("/api/v1/deliveries", params=params, headers=headers or d.auth)
    assert r.status_code == 200, r.text
    check(r, "GET", "/api/v1/deliveries")
    assert int(r.headers["Total-Count"]) >= len(r.json())
    return r.json()


def metric(d, name):
    for line in d.get("/metrics", headers=d.auth).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no metric " + name)


def test_dead_letter_after_max_age_retry_and_restart():
    rx = Receiver(fail=10 ** 9)  # refuses everything until told otherwise
    d = start("--webhook-retry-ms", "100", "--webhook-max-age", "2s")
    try:
        create(d, "dl-1", valid_bodies()["ibm-1"])
        u = add_usage(d, "dl-1", callbackUrl=rx.url).json()
        create(d, "dl-1", dict(valid_bodies()["ibm-1"], description="edit"))
        slow = 10 if WRAPPER else 1
        assert wait_for(lambda: deliveries(d, "dead"), timeout=20 * slow)
        attempts = len(rx.calls)
        time.sleep(1.5)
        assert len(rx.calls) == attempts, "a dead letter is not tried again"
        [dl] = deliveries(d, "dead")
        assert dl["state"] == "dead" and dl["usageId"] == u["id"]
        assert dl["credentialId"] == "dl-1" and dl["version"] == 2
        assert dl["attempts"] == attempts >= 2 and dl["lastError"] == "HTTP 500", dl
        assert dl["createdAt"] <= dl["deadAt"] and isinstance(dl["id"], int)
        assert "callbackUrl" not in dl and "callbackSecret" not in json.dumps(dl)
        assert deliveries(d, "pending") == [] and deliveries(d) == [dl]
        assert metric(d, "credstore_webhook_dead_letters") == 1
        assert metric(d, "credstore_webhook_dead_letters_total") == 1
        # Dead letters survive a restart, and are not retried by it.
        assert d.stop() == 0
        d.start()
        time.sleep(0.5)
        assert deliveries(d, "dead") == [dl] and len(rx.calls) == attempts
        assert metric(d, "credstore_webhook_dead_letters") == 1
        # Requeued: delivered once, validly signed.
        rx.fail = 0
        n = len(rx.calls)
        r = d.post("/api/v1/deliveries/%d/retry" % dl["id"], headers=d.auth)
        check(r, "POST", "/api/v1/deliveries/{id}/retry")
        assert r.status_code == 202 and r.json() == {"id": dl["id"], "state": "pending"}, r.text
        assert wait_for(lambda: len(rx.calls) > n, timeout=20 * slow)
        time.sleep(0.5)
        assert len(rx.calls) == n + 1
        good = rx.ok_calls(u["callbackSecret"])
        assert good[-1] == {"type": "updated", "credentialId": "dl-1", "version": 2,
                            "usageId": u["id"]}
        assert len(good) == n + 1, "every attempt, the requeued one too, is validly signed"
        assert not rx.ok_calls("0" * 64)
        assert wait_for(lambda: deliveries(d) == [], timeout=5 * slow)
        assert_error(d.post("/api/v1/deliveries/%d/retry" % dl["id"], headers=d.auth), 404,
                     "not_found")
        audit = d.get("/api/v1/audit?limit=1000", headers=d.auth).json()
        assert [e["target"] for e in audit if e["action"] == "delivery_retry"] == ["dl-1"]
    finally:
        finish(d)
        rx.close()


def test_pending_deliveries_listing_and_retry_refusals():
    port = free_port()  # nobody listens: every attempt fails, well within the max age
    d = start("--webhook-retry-ms", "60000")
    try:
        for cid in ("aws-pd-1", "gcp-pd-2"):
            create(d, cid, valid_bodies()["ibm-1"])
            add_usage(d, cid, callbackUrl="http://127.0.0.1:%d/hook" % port)
            create(d, cid, dict(valid_bodies()["ibm-1"], description="edit"))
        slow = 10 if WRAPPER else 1
        assert wait_for(lambda: all(p["attempts"] >= 1 for p in deliveries(d, "pending"))
                        and len(deliveries(d, "pending")) == 2, timeout=20 * slow)
        pend = deliveries(d, "pending")
        assert [p["credentialId"] for p in pend] == ["aws-pd-1", "gcp-pd-2"]
        assert all(p["state"] == "pending" and p["nextAttemptAt"] for p in pend)
        assert deliveries(d, "dead") == [] and deliveries(d, "all") == pend
        # Paginated like other lists: offset, limit, Total-Count.
        r = d.get("/api/v1/deliveries", params={"limit": 1, "offset": 1}, headers=d.auth)
        assert r.json() == pend[1:] and r.headers["Total-Count"] == "2"
        # Retry is for dead letters only; unknown ids are not found.
        r = d.post("/api/v1/deliveries/%d/retry" % pend[0]["id"], headers=d.auth)
        check(r, "POST", "/api/v1/deliveries/{id}/retry")
        assert_error(r, 409, "not_dead_letter")
        for bad in ("999999", "0", "abc", "-1", "1e3", "%20", "18446744073709551616"):
            assert_error(d.post("/api/v1/deliveries/%s/retry" % bad, headers=d.auth), 404)
        for q in ({"state": "gone"}, {"state": ""}, {"limit": "0"}, {"limit": "501"},
                  {"offset": "-1"}, {"limit": "x"}):
            assert_error(d.get("/api/v1/deliveries", params=q, headers=d.auth), 400,
                         "invalid_query")
        # A scoped admin sees the deliveries of its credentials only.
        from test_auth import new_key
        k = new_key(d, d.auth["Authorization"], "admin", scope=["aws-*"])
        h = {"Authorization": basic(k["id"], k["secret"])}
        assert [p["credentialId"] for p in deliveries(d, headers=h)] == ["aws-pd-1"]
        assert_error(d.post("/api/v1/deliveries/%d/retry" % pend[1]["id"], headers=h), 404)
        assert_error(d.post("/api/v1/deliveries/%d/retry" % pend[0]["id"], headers=h), 409)
    finally:
        finish(d)


# ------------------------------------------------------------ audit export and prune


def test_audit_export_prune_and_verify_from_the_anchor(tmp_path):
    from harness import run_cli
    from test_usages import tamper_copy
    d = start()
    try:
        for i in range(12):
            create(d, "au-%d" % i, valid_bodies()["ibm-1"])
        listed = d.get("/api/v1/audit?limit=1000", headers=d.auth).json()
        # Nothing exported yet: prune refuses and removes nothing (beside a running serve).
        r = run_cli("audit-prune", "--data", d.data, "--before", "5")
        assert r.returncode == 1 and "audit-export first" in r.stderr, r.stderr
        out = tmp_path / "audit.jsonl"
        r = run_cli("audit-export", "--data", d.data, "--out", str(out))
        assert r.returncode == 0, r.stderr
        lines = [json.loads(l) for l in out.read_text().splitlines()]
        assert lines[:len(listed)] == listed and len(lines) == json.loads(r.stdout)["entries"]
        assert lines[0]["prevHash"] == "0" * 64 and all(len(l["hash"]) == 64 for l in lines)
        assert oct(out.stat().st_mode & 0o777) == "0o600"
        r = run_cli("audit-export", "--data", d.data, "--out", str(out))
        assert r.returncode == 1 and "cannot create" in r.stderr, "an export never overwrites"
        # Only exported entries go; the newest one always stays.
        r = run_cli("audit-prune", "--data", d.data, "--before", str(len(lines) + 5))
        assert r.returncode == 1 and "at most %d" % len(lines) in r.stderr, r.stderr
        r = run_cli("audit-prune", "--data", d.data, "--before", "10")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"removed": 9,
                                        "anchor": {"seq": 9, "hash": lines[8]["hash"]}}
        page = d.get("/api/v1/audit?limit=1000", headers=d.auth).json()
        assert page[0]["seq"] == 10 and page[0]["prevHash"] == lines[8]["hash"]
        assert page[-1]["action"] == "audit_prune" and page[-1]["actor"] == "cli"
        assert d.stop() == 0
        r = run_cli("audit-verify", "--data", d.data)
        assert r.returncode == 0, r.stderr
        v = json.loads(r.stdout)
        assert v["anchor"] == {"seq": 9, "hash": lines[8]["hash"]}
        assert v["entries"] == page[-1]["seq"] - 9

        # A tampered remaining entry still fails; so does a removed one or a moved anchor.
        def modify(txn, db):
            k = (11).to_bytes(8, "big")
            txn.put(k, txn.get(k, db=db).replace(b'"au-', b'"xx-'), db=db)

        def remove_first_kept(txn, db):
            txn.delete((10).to_bytes(8, "big"), db=db)

        for name, fn in [("modify", modify), ("removed", remove_first_kept)]:
            copy = tmp_path / name
            tamper_copy(d.data, copy, fn)
            r = run_cli("audit-verify", "--data", str(copy), "--master-key-file",
                        os.path.join(d.data, "master.key"))
            assert r.returncode == 1 and "broken" in r.stderr, (name, r.stdout, r.stderr)
        import lmdb
        copy = tmp_path / "anchor"
        shutil.copytree(d.data, copy)
        env = lmdb.open(str(copy), max_dbs=16)
        meta = env.open_db(b"meta")
        with env.begin(write=True) as txn:
            rec = bytearray(txn.get(b"audit_anchor", db=meta))
            rec[7] = 10  # claim one more entry was pruned, then remove it
            txn.put(b"audit_anchor", bytes(rec), db=meta)
            txn.delete((10).to_bytes(8, "big"), db=env.open_db(b"audit", txn=txn))
        env.close()
        r = run_cli("audit-verify", "--data", str(copy), "--master-key-file",
                    os.path.join(d.data, "master.key"))
        assert r.returncode == 1 and "broken at entry 1" in r.stderr, r.stderr
    finally:
        if d.proc:
            d.stop()
        d.close()


def test_a_store_from_before_the_dead_letters_table_still_verifies_read_only():
    """A data dir an older build wrote has no dead_letters table: the
    read-only commands read it as empty; the first serve creates it."""
    import lmdb
    from harness import run_cli
    d = Daemon()
    try:
        env = lmdb.open(d.data, max_dbs=16)
        with env.begin(write=True) as txn:
            txn.drop(env.open_db(b"dead_letters", txn=txn), delete=True)
        env.close()
        r = run_cli("audit-verify", "--data", d.data)
        assert r.returncode == 0 and json.loads(r.stdout)["intact"] is True, r.stderr
        d.start()
        d.auth = {"Authorization": basic(d.admin["id"], d.admin["secret"])}
        assert deliveries(d) == []
        assert d.stop() == 0
        env = lmdb.open(d.data, max_dbs=16, readonly=True)
        with env.begin() as txn:
            assert env.open_db(b"dead_letters", txn=txn, create=False) is not None
        env.close()
    finally:
        d.close()
