"""Review issue 11, finding 8: a key with a scope sees the audit trail and the
event feed of the credentials its scope allows, and nothing else: no entries
about access keys, logins or the keyring, no early long-poll wake-ups from
changes it may not see, no /metrics (whose numbers span every credential)."""
import fnmatch
import json
import threading
import time

import lmdb
import pytest
import requests

from harness import SLOW, Daemon, assert_error, basic, finish, start
from test_auth import ALL, new_key, token_for
from test_credentials import valid_bodies

# server/core/audit.c about_credential(): the actions whose target is a credential id.
CRED_ACTIONS = {"create", "update", "delete", "usage_create", "usage_delete", "resolve"}
SCAN_MAX = 10000  # server/core/audit.c and server/core/events.c: entries one read examines
IBM = valid_bodies()["ibm-1"]
IDS = ["kube-staging", "aws-prod", "kube-prod", "aws-dev", "gcp-x", "AWS.prod_1",
       "ak-lookalike"]
SCOPES = {
    "aws": ["aws-*"],
    "two": ["aws-prod", "kube-staging"],
    "qmark": ["k?be-*"],
    "bracket": ["[ag]*"],  # aws-*, gcp-x and ak-lookalike, not the access-key entries
    "ak": ["ak-*"],        # matches access key ids too, but those entries are not credentials'
    "dotted": ["AWS.prod_1"],
    "nothing": ["nothing-*"],
    # (scope [] is refused at key creation: test_auth.py)
}


def create(d, cid, body=IBM, headers=None):
    r = d.post("/api/v1/credentials", json=dict(body, _id=cid), headers=headers or d.auth)
    assert r.status_code in (200, 201), r.text
    return r.json()


def path_id(cid):
    return requests.utils.quote(cid, safe="")


def add_usage(d, cid):
    r = d.post("/api/v1/credentials/%s/usages" % path_id(cid), json={"type": "Cloud Scan"},
               headers=d.auth)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def audit(d, headers, **params):
    r = d.get("/api/v1/audit", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json(), int(r.headers["Next-Since"])


def audit_all(d, headers, limit=1000, **params):
    """Every entry the caller may see, paging on Next-Since until it stops moving."""
    since, entries, pages = 0, [], []
    while True:
        page, nxt = audit(d, headers, since=since, limit=limit, **params)
        pages.append(page)
        entries += page
        if nxt == since:
            return entries, pages
        assert nxt > since
        since = nxt


def visible(entries, scope):
    return [e for e in entries if e["action"] in CRED_ACTIONS and
            any(fnmatch.fnmatchcase(e["target"], p) for p in scope)]


@pytest.fixture(scope="module")
def d():
    dd = start()
    for cid in IDS:
        create(dd, cid)
        create(dd, cid, dict(IBM, description="edited"))
        uid = add_usage(dd, cid)
        r = dd.post("/api/v1/credentials/%s/resolve" % path_id(cid), json={"usageId": uid},
                    headers=dd.auth)
        assert r.status_code == 200, r.text
    gone = add_usage(dd, "kube-prod")
    assert dd.delete("/api/v1/credentials/kube-prod/usages/" + gone,
                     headers=dd.auth).status_code == 204
    create(dd, "aws-gone")
    assert dd.delete("/api/v1/credentials/aws-gone", headers=dd.auth).status_code == 204
    dd.keys = {name: new_key(dd, dd.auth["Authorization"], "auditor", scope=scope)
               for name, scope in SCOPES.items()}
    dd.keys["admin-aws"] = new_key(dd, dd.auth["Authorization"], "admin", scope=["aws-*"])
    # A failed login: an "auth" entry about an access key.
    assert dd.post("/api/v1/login", json={"username": dd.keys["aws"]["id"],
                                           "password": "0" * 64}).status_code == 401
    yield dd
    finish(dd)


def auth_of(key):
    return {"Authorization": basic(key["id"], key["secret"])}


def test_scoped_readers_see_only_entries_about_their_credentials(d):
    full, _ = audit_all(d, d.auth)
    actions = {e["action"] for e in full}
    assert {"access_key_create", "auth"} <= actions and CRED_ACTIONS <= actions, actions
    for name, scope in SCOPES.items():
        got, _ = audit_all(d, auth_of(d.keys[name]))
        want = visible(full, scope)
        assert got == want, name
        assert all(e["action"] in CRED_ACTIONS for e in got), name
        if name == "nothing":
            assert got == []
        else:
            assert got, "the scope %s matches entries: the test must be able to fail" % name
    # "ak-*" matches access key ids, but only the credential named ak-lookalike is shown.
    got, _ = audit_all(d, auth_of(d.keys["ak"]))
    assert {e["target"] for e in got} == {"ak-lookalike"}
    assert any(e["target"].startswith("ak-") and e["target"] != "ak-lookalike" for e in full)
    # A scoped admin is filtered the same way.
    got, _ = audit_all(d, auth_of(d.keys["admin-aws"]))
    assert got == visible(full, ["aws-*"])
    assert {e["target"] for e in got} == {"aws-prod", "aws-dev", "aws-gone"}


def test_credential_filter_in_and_out_of_scope(d):
    h = auth_of(d.keys["aws"])
    page, _ = audit(d, h, credential="aws-prod")
    assert page and {e["target"] for e in page} == {"aws-prod"}
    assert {e["action"] for e in page} == {"create", "update", "usage_create", "resolve"}
    # Out of scope: exactly what an in-scope id without entries gets. No oracle.
    control = d.get("/api/v1/audit", params={"credential": "aws-never-was"}, headers=h)
    for cid in ["kube-prod", "gcp-x", "AWS.prod_1", "never-was"]:
        r = d.get("/api/v1/audit", params={"credential": cid}, headers=h)
        assert r.status_code == 200 and r.json() == [] == control.json(), cid
        assert r.headers["Next-Since"] == control.headers["Next-Since"], cid
    # The unscoped reader sees them (the filter itself works).
    page, _ = audit(d, d.auth, credential="kube-prod")
    assert {e["action"] for e in page} >= {"create", "usage_create", "usage_delete"}
    page, _ = audit(d, auth_of(d.keys["dotted"]), credential="AWS.prod_1")
    assert page and {e["target"] for e in page} == {"AWS.prod_1"}
    # An access key id is not a credential: ?credential= never selects key entries.
    page, _ = audit(d, d.auth, credential=d.keys["aws"]["id"])
    assert page == []
    assert_error(d.get("/api/v1/audit", params={"credential": "a/b"}, headers=h), 400)


def test_limit_counts_what_the_caller_sees(d):
    h = auth_of(d.keys["aws"])
    full, _ = audit_all(d, d.auth)
    want = visible(full, ["aws-*"])
    assert len(want) >= 7
    got, pages = audit_all(d, h, limit=3)
    assert got == want
    # Out-of-scope entries lie between them, yet every page but the last is full.
    assert all(len(p) == 3 for p in pages[:len(want) // 3]), [len(p) for p in pages]
    assert any(len(p) == 3 and p[-1]["seq"] - p[0]["seq"] > 2 for p in pages), \
        "no page spans skipped entries: the check is moot"
    first, nxt = audit(d, h, limit=3)
    assert [e["seq"] for e in first] == [e["seq"] for e in want[:3]] and nxt == first[-1]["seq"]
    assert first[0]["seq"] > full[0]["seq"], "entries before the first page were skipped"
    # A scope that matches nothing: one empty page, Next-Since at the end of the trail.
    page, nxt = audit(d, auth_of(d.keys["nothing"]), limit=5)
    assert page == [] and nxt == full[-1]["seq"]


def events(d, headers, **params):
    r = d.get("/api/v1/events", params=params, headers=headers, timeout=90 * SLOW)
    assert r.status_code == 200, r.text
    return r.json()


def timed_poll(d, headers, out, **params):
    t0 = time.time()
    out["r"] = events(d, headers, **params)
    out["t"] = time.time() - t0


def test_scoped_long_poll_wakes_only_for_its_events(d):
    lp = new_key(d, d.auth["Authorization"], "auditor", scope=["lp-in-*"])
    h = auth_of(lp)
    head = events(d, d.auth, since=0)["next"]
    # Changes out of scope during a 5 s wait do not answer it.
    got = {}
    th = threading.Thread(target=timed_poll, args=(d, h, got), kwargs={"since": head, "wait": 5})
    th.start()
    time.sleep(0.5)
    create(d, "lp-out-1")
    create(d, "lp-out-1", dict(IBM, description="edit"))
    add_usage(d, "lp-out-1")
    th.join(timeout=60 * SLOW)
    assert 4.8 <= got["t"] < 5 + 3 * SLOW, got
    assert got["r"]["events"] == []
    head2 = events(d, d.auth, since=head)["next"]
    assert head2 >= head + 3 and got["r"]["next"] == head2, "next skips the unseen events"
    # An in-scope change wakes it at once, past the out-of-scope one before it.
    got = {}
    th = threading.Thread(target=timed_poll, args=(d, h, got),
                          kwargs={"since": head2, "wait": 30})
    th.start()
    time.sleep(0.5)
    create(d, "lp-out-2")
    time.sleep(0.7)
    create(d, "lp-in-1")
    th.join(timeout=60 * SLOW)
    assert 1.1 <= got["t"] < 1.2 + 1.3 * SLOW, got
    assert [(e["type"], e["credentialId"]) for e in got["r"]["events"]] == [("created", "lp-in-1")]


def test_credential_filtered_long_poll_wakes_only_for_that_credential(d):
    create(d, "lp-in-2")
    head = events(d, d.auth, since=0)["next"]
    got = {}
    th = threading.Thread(target=timed_poll, args=(d, d.auth, got),
                          kwargs={"since": head, "wait": 5, "credential": "lp-in-3"})
    th.start()
    time.sleep(0.5)
    create(d, "lp-in-2", dict(IBM, description="other credential"))
    th.join(timeout=60 * SLOW)
    assert 4.8 <= got["t"] < 5 + 3 * SLOW and got["r"]["events"] == [], got
    assert got["r"]["next"] > head
    th = threading.Thread(target=timed_poll, args=(d, d.auth, got),
                          kwargs={"since": got["r"]["next"], "wait": 30, "credential": "lp-in-3"})
    th.start()
    time.sleep(0.7)
    create(d, "lp-in-3")
    th.join(timeout=60 * SLOW)
    assert 0.6 <= got["t"] < 0.7 + 1.3 * SLOW, got
    assert [e["credentialId"] for e in got["r"]["events"]] == ["lp-in-3"]


def test_metrics_needs_an_unscoped_key(d):
    for role in sorted(ALL):
        plain = new_key(d, d.auth["Authorization"], role)
        for scope in (["aws-*"], ["*"]):
            k = new_key(d, d.auth["Authorization"], role, scope=scope)
            for h in (auth_of(k), {"x-redlock-auth": token_for(d, k)}):
                body = assert_error(d.get("/metrics", headers=h), 403, "forbidden")
                # ci may not read /metrics at all (webhook outcomes would be a port-scan
                # oracle); the other roles are refused for their scope.
                assert ("role ci" if role == "ci" else "scope") in body["err"], body
        for h in (auth_of(plain), {"x-redlock-auth": token_for(d, plain)}):
            r = d.get("/metrics", headers=h)
            if role == "ci":
                assert "role ci" in assert_error(r, 403, "forbidden")["err"]
                continue
            assert r.status_code == 200, (role, r.text)
            assert "credstore_http_requests_total" in r.text


# ------------------------------------------- bounded work per request

def inject(data, n_out, audit_in, event_in):
    """Append n_out out-of-scope audit entries and events behind the
    daemon's back, then one in-scope of each (serve stopped). Listing does
    not verify the chain, so placeholder hashes do."""
    env = lmdb.open(data, max_dbs=16, map_size=1 << 30)
    adb, edb = env.open_db(b"audit"), env.open_db(b"events")
    # Dated now: events retention (default 7 days) would trim older ones meanwhile.
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with env.begin(write=True) as txn:
        heads = []
        for db, out_doc, in_doc, prefix in [
                (adb, {"action": "auth", "target": "ak-0000", "result": "failure"}, audit_in,
                 b"\0" * 32),
                (edb, {"type": "updated", "credentialId": "other-x", "version": 1}, event_in,
                 b"")]:
            c = txn.cursor(db=db)
            head = int.from_bytes(c.key(), "big") if c.last() else 0
            heads.append(head)
            for i in range(1, n_out + 2):
                doc = dict(out_doc if i <= n_out else in_doc, seq=head + i,
                           at=now)
                txn.put((head + i).to_bytes(8, "big"), prefix + json.dumps(doc).encode(), db=db)
    env.close()
    return heads


def test_a_scope_that_matches_little_costs_bounded_work_per_request():
    dd = start()
    try:
        k = new_key(dd, dd.auth["Authorization"], "auditor", scope=["aws-*"])
        h = auth_of(k)
        assert dd.stop() == 0
        n = 2 * SCAN_MAX + 5000
        a_head, e_head = inject(dd.data, n, {"action": "resolve", "target": "aws-z",
                                             "result": "success"},
                                {"type": "created", "credentialId": "aws-z", "version": 1})
        dd.start()
        since, pages = a_head, []
        while True:
            t0 = time.time()
            page, nxt = audit(dd, h, since=since, limit=10)
            assert time.time() - t0 < 2 * SLOW
            pages.append(page)
            assert 0 <= nxt - since <= SCAN_MAX
            if nxt == since:
                break
            since = nxt
        assert [len(p) for p in pages] == [0, 0, 1, 0]
        assert pages[2][0]["target"] == "aws-z" and pages[2][0]["seq"] == a_head + n + 1
        # The same bound for an unscoped reader's ?credential= filter.
        page, nxt = audit(dd, dd.auth, since=a_head, credential="aws-z")
        assert page == [] and nxt == a_head + SCAN_MAX
        # The event feed: a long-poll with that much out of view answers at
        # once with next moved on, and the caller catches up from there.
        since, seen = e_head, []
        for _ in range(4):
            t0 = time.time()
            r = events(dd, h, since=since, wait=20)
            assert time.time() - t0 < 3 * SLOW
            assert 0 < r["next"] - since <= SCAN_MAX
            seen += r["events"]
            since = r["next"]
            if seen:
                break
        assert [(e["credentialId"], e["seq"]) for e in seen] == [("aws-z", e_head + n + 1)]
    finally:
        finish(dd)
