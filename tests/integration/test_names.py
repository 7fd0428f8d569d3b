"""Credential names (API.md §3 v2 "Names"): labels like "AWS prod account",
end to end on the native API and the /prisma mount: percent-encoded in
paths (decoded exactly once, '+' a plus, %00 never a NUL), exact, in scope
globs, audit, events, webhooks, the ids filter and credential-process."""
import json
import os
from urllib.parse import quote

import pytest

from harness import BIN, Daemon, assert_error, basic, run_cli
from test_usages import Receiver, wait_for

NAMES = ["AWS prod account", "a+b", "100%", "caf\u00e9 \u2603 \U0001f511", "q;,:@&=$", "x(1)!*'",
         "comma,name", "?#", "~-_.", "tab-free\u00a0nbsp", ".hidden", "..."]


@pytest.fixture(scope="module")
def d():
    dd = Daemon(serve_args=["--webhook-retry-ms", "100"]).start()
    dd.auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
    yield dd
    assert dd.stop() == 0
    dd.close()


def p(name):
    return quote(name, safe="")


def ibm(name, key="k-1"):
    return {"_id": name, "type": "ibmCloud", "accountGUID": "g-1", "secret": {"plain": key}}


def test_names_end_to_end(d):
    rx = Receiver()
    try:
        for n in NAMES:
            r = d.post("/api/v1/credentials", json=ibm(n), headers=d.auth)
            assert r.status_code == 201, (n, r.text)
            assert r.json()["_id"] == n
            r = d.get("/api/v1/credentials/" + p(n), headers=d.auth)
            assert r.status_code == 200 and r.json()["_id"] == n, (n, r.text)
            u = d.post("/api/v1/credentials/%s/usages" % p(n), headers=d.auth,
                       json={"type": "Alert profile", "callbackUrl": rx.url}).json()
            r = d.get("/api/v1/credentials/%s/usages" % p(n), headers=d.auth)
            assert [x["id"] for x in r.json()] == [u["id"]]
            r = d.post("/api/v1/credentials/%s/resolve" % p(n), headers=d.auth,
                       json={"usageId": u["id"]})
            assert r.status_code == 200 and r.json()["apiKey"] == "k-1", (n, r.text)
            # An update fires the webhook, whose JSON carries the name exactly.
            assert d.post("/api/v1/credentials", json=ibm(n, "k-2"),
                          headers=d.auth).status_code == 200
            assert wait_for(lambda: any(c["credentialId"] == n
                                        for c in rx.ok_calls(u["callbackSecret"])))
            ev = d.get("/api/v1/events?since=0&credential=" + p(n), headers=d.auth).json()
            assert [e["type"] for e in ev["events"]] == ["created", "usage_added", "updated"], n
            assert all(e["credentialId"] == n for e in ev["events"])
            au = d.get("/api/v1/audit?limit=1000&credential=" + p(n), headers=d.auth).json()
            assert {a["action"] for a in au} >= {"create", "update", "resolve"}, (n, au)
            assert all(a["target"] == n for a in au)
            # 409 names it in a JSON-escaped message; then delete works.
            r = d.delete("/api/v1/credentials/" + p(n), headers=d.auth)
            assert_error(r, 409, "credential_in_use")
            assert n in r.json()["err"]
            assert d.delete("/api/v1/credentials/%s/usages/%s" % (p(n), u["id"]),
                            headers=d.auth).status_code == 204
        # The longest names, in errors too: the body stays valid UTF-8 JSON.
        for long_name in ["\u20ac" * 128, "\u00fc" * 128, "a" * 127 + "\u20ac"]:
            r = d.get("/api/v1/credentials/" + p(long_name), headers=d.auth)
            assert r.status_code == 404 and long_name in r.json()["err"]
            r = d.delete("/prisma/api/v1/credentials/" + p(long_name), headers=d.auth)
            assert r.status_code == 404 and long_name in r.json()["err"]
            r = d.post("/api/v1/credentials", json=ibm(long_name), headers=d.auth)
            assert r.status_code == 201 and r.json()["_id"] == long_name, r.text
            uid = d.post("/api/v1/credentials/%s/usages" % p(long_name), headers=d.auth,
                         json={"type": "t"}).json()["id"]
            r = d.delete("/api/v1/credentials/" + p(long_name), headers=d.auth)
            assert r.status_code == 409 and long_name in r.json()["err"]
            assert d.delete("/api/v1/credentials/%s/usages/%s" % (p(long_name), uid),
                            headers=d.auth).status_code == 204
            assert d.delete("/api/v1/credentials/" + p(long_name),
                            headers=d.auth).status_code == 204
        # Exact: no case folding, no trimming, no prefix match.
        assert d.get("/api/v1/credentials/aws%20PROD%20account", headers=d.auth).status_code == 404
        assert d.get("/api/v1/credentials/AWS%20prod", headers=d.auth).status_code == 404
        # '+' in a path is a plus: "a b" is not "a+b".
        assert d.get("/api/v1/credentials/a%20b", headers=d.auth).status_code == 404
        assert d.get("/api/v1/credentials/a+b", headers=d.auth).json()["_id"] == "a+b"
        # Decoded once: %25 is a '%', so "100%2525" names "100%25", which does not exist.
        assert d.get("/api/v1/credentials/100%25", headers=d.auth).json()["_id"] == "100%"
        assert d.get("/api/v1/credentials/100%2525", headers=d.auth).status_code == 404
        # The log holds the names JSON-escaped, one object per line.
        for line in d.log().splitlines():
            if line.startswith("{"):
                json.loads(line)
        for n in NAMES:
            assert d.delete("/api/v1/credentials/" + p(n), headers=d.auth).status_code == 204
    finally:
        rx.close()


def test_ids_filter(d):
    for n in ["ids a", "ids b", "ids,c", "ids d"]:
        assert d.post("/api/v1/credentials", json=ibm(n), headers=d.auth).status_code == 201

    def ids(q):
        r = d.get("/api/v1/credentials?" + q, headers=d.auth)
        assert r.status_code == 200, r.text
        assert int(r.headers["Total-Count"]) == len(r.json())
        return sorted(c["_id"] for c in r.json())

    # A single value is split on commas; repeated values are whole names.
    assert ids("ids=" + p("ids a") + "," + p("ids b")) == ["ids a", "ids b"]
    assert ids("ids=ids%20a%2Cids%20b") == ["ids a", "ids b"]
    assert ids("ids=" + p("ids a") + "&ids=" + p("ids,c")) == ["ids a", "ids,c"]
    # A comma-containing name alone: repeat ids (an empty value is ignored).
    assert ids("ids=" + p("ids,c") + "&ids=") == ["ids,c"]
    assert ids("ids=" + p("ids,c")) == []  # split: "ids" and "c", neither exists
    assert ids("ids=nope&ids=" + p("ids d") + "&ids=" + p("ids d")) == ["ids d"]
    assert ids("ids=" + p("ids a") + "&type=kubeconfig") == []
    # Only empty values: no filter, like ids left out.
    everything = ids("limit=500")
    assert ids("ids=&limit=500") == ids("ids=&ids=&limit=500") == everything
    assert len(everything) >= 4
    for bad in ["ids=a%2Fb", "ids=%20x", "ids=a%00", "ids=" + "x" * 129]:
        assert_error(d.get("/api/v1/credentials?" + bad, headers=d.auth), 400, "invalid_query")
    assert_error(d.get("/api/v1/credentials?" + "&".join(["ids=a"] * 501), headers=d.auth), 400)


def test_scope_globs_over_names(d):
    for n in ["team a prod", "team a dev", "team b prod", "\u00e9quipe 1"]:
        assert d.post("/api/v1/credentials", json=ibm(n), headers=d.auth).status_code == 201
    r = d.post("/api/v1/access_keys", headers=d.auth,
               json={"name": "s", "role": "operator", "scope": ["team a *", "\u00e9quipe*"]})
    assert r.status_code == 201, r.text
    k = r.json()
    h = {"Authorization": basic(k["id"], k["secret"])}
    seen = {c["_id"] for c in d.get("/api/v1/credentials?limit=500", headers=h).json()}
    assert seen == {"team a prod", "team a dev", "\u00e9quipe 1"}
    assert d.get("/api/v1/credentials/" + p("team b prod"), headers=h).status_code == 404
    assert d.get("/api/v1/credentials/" + p("team a dev"), headers=h).status_code == 200
    # The mount applies the same scope.
    r = d.get("/prisma/api/v1/credentials", headers=h)
    assert {c["_id"] for c in r.json()} == seen
    r = d.delete("/prisma/api/v1/credentials/" + p("team b prod"), headers=h)
    assert r.status_code == 404 and set(r.json()) == {"err"}
    r = d.post("/prisma/api/v1/credentials", headers=h, json=ibm("team b new"))
    assert r.status_code == 403 and set(r.json()) == {"err"}
    ev = d.get("/api/v1/events?since=0", headers=h).json()["events"]
    assert ev and all(e["credentialId"] in seen for e in ev)


def test_refused_spellings_change_nothing(d):
    before = d.get("/api/v1/credentials?limit=500", headers=d.auth).json()
    for bad in ["a/b", "a\\b", " x", "x ", ".", "..", "nl\nx", "del\x7f", "c1\x85", "",
                "x" * 129, "\U0001f511" * 97]:
        assert_error(d.post("/api/v1/credentials", json=ibm(bad), headers=d.auth), 400,
                     "invalid_id")
        r = d.post("/prisma/api/v1/credentials", json=ibm(bad), headers=d.auth)
        assert r.status_code == 400 and set(r.json()) == {"err"}, (bad, r.text)
    # A raw JSON NUL escape is refused before it can cut the name short.
    assert_error(d.post("/api/v1/credentials", data=b'{"_id":"x\\u0000y","type":"aws"}',
                        headers=d.auth), 400)
    for path in ["a%2Fb", "a%5Cb", "%2E%2E", "%2e", "x%00", "x%00y", "%C3", "%FF%FE", "%20x"]:
        assert_error(d.get("/api/v1/credentials/" + path, headers=d.auth), 400, "invalid_id")
        r = d.delete("/prisma/api/v1/credentials/" + path, headers=d.auth)
        assert r.status_code == 400 and set(r.json()) == {"err"}, (path, r.text)
    # Usage and access-key ids keep their strict shapes.
    assert d.post("/api/v1/credentials", json=ibm("strict ids"), headers=d.auth).status_code == 201
    # (a usage id that is not one names no usage: 404, as before names had spaces)
    assert_error(d.delete("/api/v1/credentials/strict%20ids/usages/u%20x", headers=d.auth), 404,
                 "not_found")
    assert_error(d.post("/api/v1/credentials/strict%20ids/resolve", headers=d.auth,
                        json={"usageId": "u x"}), 400)
    assert_error(d.delete("/api/v1/access_keys/ak%20x", headers=d.auth), 404)
    assert d.delete("/api/v1/credentials/strict%20ids", headers=d.auth).status_code == 204
    assert d.get("/api/v1/credentials?limit=500", headers=d.auth).json() == before


def test_credential_process_encodes_the_name(d):
    n = "aws prod?x=1#%"
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": n, "type": "aws", "accountID": "AKIAIOSFODNN7EXAMPLE",
                     "secret": {"plain": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}})
    assert r.status_code == 201, r.text
    u = d.post("/api/v1/credentials/%s/usages" % p(n), headers=d.auth,
               json={"type": "Cloud Scan"}).json()
    env = {"CREDSTORE_ACCESS_KEY_ID": d.admin["id"],
           "CREDSTORE_ACCESS_KEY_SECRET": d.admin["secret"]}
    r = run_cli("credential-process", "--url", d.url, "--credential", n, "--usage", u["id"],
                env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["Version"] == 1 and out["AccessKeyId"] == "AKIAIOSFODNN7EXAMPLE"
    r = run_cli("credential-process", "--url", d.url, "--credential", "a/b", "--usage", u["id"],
                env=env)
    assert r.returncode != 0 and "credential name" in r.stderr
    # The container-credentials route takes the name the same way.
    r = d.get("/api/v1/aws/container-credentials/%s?usage=%s" % (p(n), u["id"]), headers=d.auth)
    assert r.status_code == 200 and r.json()["AccessKeyId"] == "AKIAIOSFODNN7EXAMPLE", r.text
    assert os.path.exists(BIN)
