"""The /prisma mount (API.md §7) driven the way Prisma Cloud's own clients
drive it (the request sequences of /work/brief/prisma-clients.md §8,
re-expressed here; no client code). The Terraform provider prismacloudcompute
(TF), the Python SDK prismacloud-api (PY) and the CSPM Go SDK (GO) against
the real daemon over TLS, as PY needs."""
import json
import subprocess
from urllib.parse import quote

import pytest
import requests

from harness import Daemon, basic

TF_HEADERS = {"Content-Type": "application/json", "User-Agent": "Go-http-client/1.1",
              "Accept-Encoding": "gzip"}


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "server.crt", d / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return str(crt), str(key)


class Tls:
    """A daemon served over TLS with the test certificate as the CA."""

    def __init__(self, cert, *args):
        crt, key = cert
        self.d = Daemon(serve_args=["--tls-cert", crt, "--tls-key", key, *args])
        self.d.scheme = "https"
        self.d.start()
        self.ca = crt
        self.admin = self.d.admin
        self.auth = {"Authorization": basic(self.admin["id"], self.admin["secret"])}
        self.s = requests.Session()

    def req(self, method, path, **kw):
        kw.setdefault("timeout", 30)
        kw.setdefault("verify", self.ca)  # REQUESTS_CA_BUNDLE would beat a session's verify
        return self.s.request(method, self.d.url + path, **kw)

    def close(self):
        rc = self.d.stop()
        self.d.close()
        assert rc == 0


@pytest.fixture(scope="module")
def t(cert):
    tt = Tls(cert, "--customer-name", "acme")
    yield tt
    tt.close()


B = "/prisma/api/v1"


def tf_login(t, project=None):
    """TF: compact body, an empty Bearer (Go trims "Bearer " to "Bearer")."""
    q = "?project=" + project if project else ""
    body = '{"username":"%s","password":"%s"}' % (t.admin["id"], t.admin["secret"])
    r = t.req("POST", B + "/authenticate" + q, data=body.encode(),
              headers=dict(TF_HEADERS, Authorization="Bearer"))
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["token"], str)
    return dict(TF_HEADERS, Authorization="Bearer " + r.json()["token"])


def tf_request(t, method, path, h, body=None):
    """TF's Request(): only 200 is success; POST and DELETE must have no body."""
    data = body.encode() if isinstance(body, str) else body
    hh = dict(h)
    if method == "DELETE":
        hh["Content-Length"] = "0"
    r = t.req(method, path, data=data, headers=hh)
    return r


def tf_list(t, h, q=""):
    r = tf_request(t, "GET", B + "/credentials" + q, h)
    assert r.status_code == 200, r.text
    assert "Total-Count" not in r.headers
    arr = r.json()
    assert isinstance(arr, list)
    for c in arr:
        check_tf_types(c)
    return {c["_id"]: c for c in arr}


def check_tf_types(c):
    """The JSON types of TF's Go struct: one wrong type fails the whole list."""
    for k in ("_id", "type", "description", "accountID", "accountGUID", "roleArn", "caCert",
              "url", "created", "lastModified", "owner"):
        assert k not in c or isinstance(c[k], str), (k, c)
    for k in ("external", "skipVerify", "useAWSRole", "useSTSRegionalEndpoint"):
        assert k not in c or isinstance(c[k], bool), (k, c)
    for k in ("secret", "apiToken"):
        if c.get(k) is not None:
            assert isinstance(c[k], dict) and all(isinstance(v, str) for v in c[k].values())
    assert c.get("tokens") is None or isinstance(c["tokens"], list)
    assert isinstance(c["useAWSRole"], bool)  # prismacloud-cli indexes it


def events_of(t, name):
    r = t.req("GET", "/api/v1/events?since=0&credential=" + quote(name, safe=""), headers=t.auth)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def add_usage(t, name):
    r = t.req("POST", "/api/v1/credentials/%s/usages" % quote(name, safe=""), headers=t.auth,
              json={"type": "Registry Scan", "description": "nightly"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_terraform_lifecycle(t):
    for project in (None, "Central+Console"):
        q = "?project=" + project if project else ""
        h = tf_login(t, project)
        name = "AWS prod account" if not project else "a+b"
        # Create, omitempty style: "apiToken": {} always, "secret" with plain.
        body = ('{"_id":"%s","accountID":"svc","apiToken":{},"description":"d",'
                '"secret":{"plain":"pw1"},"type":"basic"}' % name)
        r = tf_request(t, "POST", B + "/credentials" + q, h, body)
        assert (r.status_code, r.content) == (200, b""), r.text
        assert r.headers["Content-Length"] == "0"
        c = tf_list(t, h, q)[name]
        e1 = c["secret"]["encrypted"]
        assert isinstance(e1, str) and e1 and c["description"] == "d"
        assert c["accountID"] == "svc" and c["type"] == "basic"
        assert "apiToken" not in c or c["apiToken"] is None
        v1 = t.req("GET", "/api/v1/credentials/" + quote(name, safe=""), headers=t.auth).json()
        # Update: description removed (replace, not merge), encrypted echo + same plain.
        body = ('{"_id":"%s","accountID":"svc","apiToken":{},'
                '"secret":{"encrypted":"%s","plain":"pw1"},"type":"basic"}' % (name, e1))
        r = tf_request(t, "POST", B + "/credentials" + q, h, body)
        assert (r.status_code, r.content) == (200, b""), r.text
        c = tf_list(t, h, q)[name]
        assert "description" not in c and c["secret"]["encrypted"] == e1
        assert tf_list(t, h, q)[name]["secret"]["encrypted"] == e1  # stable on every read
        v2 = t.req("GET", "/api/v1/credentials/" + quote(name, safe=""), headers=t.auth).json()
        assert v2["version"] == v1["version"] + 1
        # The same apply again changes nothing: no version, no event, still audited.
        n_events = len(events_of(t, name))
        r = tf_request(t, "POST", B + "/credentials" + q, h, body)
        assert (r.status_code, r.content) == (200, b"")
        v3 = t.req("GET", "/api/v1/credentials/" + quote(name, safe=""), headers=t.auth).json()
        assert v3["version"] == v2["version"] and len(events_of(t, name)) == n_events
        audit = t.req("GET", "/api/v1/audit?limit=1000&credential=" + quote(name, safe=""),
                      headers=t.auth).json()
        assert [a["result"] for a in audit if a["action"] == "update"][-1] == "unchanged"
        # Delete while in use: 409 {"err": str}, and still listed.
        uid = add_usage(t, name)
        path = B + "/credentials/" + (name.replace(" ", "%20") if not project else "a+b") + q
        r = tf_request(t, "DELETE", path, h)
        assert r.status_code == 409 and isinstance(r.json()["err"], str), r.text
        assert set(r.json()) == {"err"}
        assert name in tf_list(t, h, q)
        r = t.req("DELETE", "/api/v1/credentials/%s/usages/%s" % (quote(name, safe=""), uid),
                  headers=t.auth)
        assert r.status_code == 204
        r = tf_request(t, "DELETE", path, h)
        assert (r.status_code, r.content) == (200, b""), r.text
        assert name not in tf_list(t, h, q)
        r = tf_request(t, "DELETE", path, h)  # already gone: an error TF reports
        assert r.status_code == 404 and set(r.json()) == {"err"}


def test_terraform_use_aws_role_and_bools(t):
    h = tf_login(t)
    r = tf_request(t, "POST", B + "/credentials", h,
                   '{"_id":"r","apiToken":{},"secret":{},"type":"aws","useAWSRole":true}')
    assert (r.status_code, r.content) == (200, b""), r.text
    c = tf_list(t, h)["r"]
    assert c["useAWSRole"] is True and "secret" not in c
    # Leaving a bool out clears it (TF can only say "false" by omitting it).
    r = tf_request(t, "POST", B + "/credentials", h,
                   '{"_id":"r","apiToken":{},"secret":{},"type":"aws","useAWSRole":true,'
                   '"skipVerify":true,"external":true,"url":"https://x.example"}')
    assert r.status_code == 200
    c = tf_list(t, h)["r"]
    assert c["skipVerify"] is True and c["external"] is True and c["url"] == "https://x.example"
    r = tf_request(t, "POST", B + "/credentials", h,
                   '{"_id":"r","apiToken":{},"secret":{},"type":"aws","useAWSRole":true}')
    c = tf_list(t, h)["r"]
    assert "skipVerify" not in c and "external" not in c and "url" not in c
    assert tf_request(t, "DELETE", B + "/credentials/r", h).status_code == 200


def py_login(t):
    """PY: json.dumps body (spaces), no Authorization header."""
    body = json.dumps({"username": t.admin["id"], "password": t.admin["secret"]})
    r = t.req("POST", B + "/authenticate", data=body,
              headers={"Content-Type": "application/json", "User-Agent": "PrismaCloudAPI/5.3.0"})
    assert r.status_code < 400, r.text
    return {"Content-Type": "application/json", "Authorization": "Bearer " + r.json()["token"]}


def py_execute(t, h, method, endpoint, calls):
    """PY's execute_compute loop (paginated=False): a Total-Count header makes
    it re-request the same URL and concatenate the answers."""
    offset, more, results = 0, False, []
    while offset == 0 or more:
        r = t.req(method, "/prisma/" + endpoint, headers=h)
        calls.append(r)
        assert r.status_code < 400, r.text
        if not r.content:
            return None
        result = r.json()
        if "Total-Count" in r.headers:
            total = int(r.headers["Total-Count"])
            if total > 0:
                results += result
            offset += 50
            more = offset < total
        else:
            return result
    return results


def test_sdk_listing_sees_each_credential_once(t):
    h = py_login(t)
    names = ["sdk %03d" % i for i in range(65)]
    for n in names:
        r = t.req("POST", B + "/credentials?project=Central+Console", headers=h,
                  data=json.dumps({"_id": n, "type": "basic", "accountID": "u",
                                   "secret": {"plain": "p"}}))
        assert r.status_code == 200 and r.content == b"", r.text
    calls = []
    got = py_execute(t, h, "GET", "api/v1/credentials", calls)
    assert len(calls) == 1
    ids = [c["_id"] for c in got if c["_id"].startswith("sdk ")]
    assert sorted(ids) == names  # each exactly once
    # With limit/offset: pages in a stable _id order, Total-Count on each.
    seen, offset = [], 0
    total = None
    while True:
        r = t.req("GET", B + "/credentials?limit=50&offset=%d" % offset, headers=h)
        assert r.status_code == 200
        total = int(r.headers["Total-Count"])
        page = r.json()
        assert len(page) <= 50
        if not page:
            break
        seen += [c["_id"] for c in page]
        offset += len(page)
        if offset >= total:
            break
    assert len(seen) == len(set(seen)) == total and seen == sorted(seen)
    assert set(names) <= set(seen)
    # The draft SDK's loop (limit=100, offset += len(page)).
    r = t.req("GET", B + "/credentials?limit=100&offset=0", headers=h)
    assert len(r.json()) == min(100, total) and int(r.headers["Total-Count"]) == total
    r = t.req("GET", B + "/credentials?offset=60", headers=h)  # offset alone: default limit 50
    assert r.status_code == 200 and len(r.json()) == min(50, total - 60)
    # ids filter on the mount, repeatable.
    r = t.req("GET", B + "/credentials?ids=sdk%20001&ids=sdk%20002", headers=h)
    assert sorted(c["_id"] for c in r.json()) == ["sdk 001", "sdk 002"]
    # Usages: no Total-Count without paging, {type, description} only.
    add_usage(t, "sdk 000")
    add_usage(t, "sdk 000")
    calls = []
    us = py_execute(t, h, "GET", "api/v1/credentials/%s/usages" % quote("sdk 000"), calls)
    assert len(calls) == 1 and us == [{"type": "Registry Scan", "description": "nightly"}] * 2
    r = t.req("GET", B + "/credentials/%s/usages?limit=1&offset=1" % quote("sdk 000"),
              headers=h)
    assert r.headers["Total-Count"] == "2" and len(r.json()) == 1
    r = t.req("GET", B + "/credentials/nope/usages", headers=h)
    assert r.status_code == 404 and set(r.json()) == {"err"}
    # PY deletes with quote(name): %20, and a 409 body it prints raw.
    r = t.req("DELETE", B + "/credentials/" + quote("sdk 000"), headers=h)
    assert r.status_code == 409 and "err" in r.json()
    for n in names[1:]:
        r = t.req("DELETE", B + "/credentials/" + quote(n), headers=h)
        assert (r.status_code, r.content) == (200, b"")


def test_sdk_unicode_and_plus_names(t):
    h = py_login(t)
    # Python sends \\u00e9; Go sends raw UTF-8: the same stored name.
    r = t.req("POST", B + "/credentials?project=Central+Console", headers=h,
              data=json.dumps({"_id": "caf\u00e9 + co", "type": "basic", "accountID": "u",
                               "secret": {"plain": "p"}}))
    assert r.status_code == 200, r.text
    r = t.req("GET", "/api/v1/credentials/" + quote("caf\u00e9 + co", safe=""), headers=t.auth)
    assert r.status_code == 200 and r.json()["_id"] == "caf\u00e9 + co"
    r = t.req("POST", B + "/credentials", headers=h,
              data=('{"_id":"caf\u00e9 + co","type":"basic","accountID":"v",'
                    '"secret":{"plain":"p"}}').encode())
    assert r.status_code == 200
    assert t.req("GET", "/api/v1/credentials/caf%C3%A9%20%2B%20co",
                 headers=t.auth).json()["accountID"] == "v"
    # PY quotes "a+b" as a%2Bb; TF sends the literal plus: the same name.
    for spelled in ("a%2Bb", "a+b"):
        r = t.req("POST", B + "/credentials", headers=h,
                  json={"_id": "a+b", "type": "basic", "accountID": "u", "secret": {"plain": "p"}})
        assert r.status_code == 200
        r = t.req("DELETE", B + "/credentials/" + spelled, headers=h)
        assert (r.status_code, r.content) == (200, b""), (spelled, r.text)
    r = t.req("DELETE", B + "/credentials/" + quote("caf\u00e9 + co"), headers=h)
    assert r.status_code == 200


def test_mount_auth_rules(t):
    h = py_login(t)
    # An unknown version is an unknown route; other version strings work.
    assert t.req("GET", "/prisma/api/vx/credentials", headers=h).status_code == 404
    assert t.req("GET", "/prisma/api/v34.03/credentials", headers=h).status_code == 200
    # Every call authenticates: Bearer, x-redlock-auth, Basic.
    r = t.req("GET", B + "/credentials")
    assert r.status_code == 401 and set(r.json()) == {"err"}
    assert t.req("GET", B + "/credentials", headers=t.auth).status_code == 200
    tok = h["Authorization"][7:]
    assert t.req("GET", B + "/credentials", headers={"x-redlock-auth": tok}).status_code == 200
    r = t.req("GET", B + "/authenticate/renew?project=x", headers=h)
    assert r.status_code == 200 and isinstance(r.json()["token"], str)
    hh = {"Authorization": "Bearer " + r.json()["token"]}
    assert t.req("GET", B + "/credentials", headers=hh).status_code == 200
    # A stale token on authenticate is ignored; a wrong password is 401 {"err"}.
    r = t.req("POST", B + "/authenticate", headers={"Authorization": "Bearer stale"},
              json={"username": t.admin["id"], "password": t.admin["secret"]})
    assert r.status_code == 200
    r = t.req("POST", B + "/authenticate", json={"username": t.admin["id"], "password": "no"})
    assert r.status_code == 401 and set(r.json()) == {"err"}
    # Unknown type: 400 naming the type in err.
    r = t.req("POST", B + "/credentials", headers=h, json={"_id": "o", "type": "oci"})
    assert r.status_code == 400 and "type" in r.json()["err"] and set(r.json()) == {"err"}
    # Prisma has no GET by name on the mount.
    assert t.req("GET", B + "/credentials/o", headers=h).status_code == 405


def redlock(r):
    v = json.loads(r.headers["x-redlock-status"])
    assert isinstance(v, list) and set(v[0]) == {"i18nKey", "severity", "subject"}
    assert v[0]["subject"] is None and v[0]["severity"] == "error"
    return v[0]["i18nKey"]


def test_cspm_login_and_extend(t, cert):
    # GO: x-redlock-auth with an old token, customerName, no prismaId.
    r = t.req("POST", "/prisma/login", headers={"x-redlock-auth": "expired.jwt.token"},
              json={"username": t.admin["id"], "password": t.admin["secret"],
                    "customerName": "whatever"})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["message"] == "login_successful" and isinstance(j["token"], str)
    cn = j["customerNames"]
    assert len(cn) == 1 and cn[0]["customerName"] == "acme" and cn[0]["tosAccepted"] is True
    pid = cn[0]["prismaId"]
    assert isinstance(pid, str) and len(pid) == 32
    r = t.req("GET", "/prisma/auth_token/extend", headers={"x-redlock-auth": j["token"]})
    assert r.status_code == 200 and r.json()["customerNames"][0]["prismaId"] == pid
    # CSPM tokens work on the mount and on the native API.
    tok = r.json()["token"]
    assert t.req("GET", B + "/credentials", headers={"x-redlock-auth": tok}).status_code == 200
    # Errors: 401 and 400 with x-redlock-status, body {"err"}.
    r = t.req("POST", "/prisma/login", json={"username": t.admin["id"], "password": "wrong"})
    assert r.status_code == 401 and redlock(r) == "invalid_credentials"
    assert set(r.json()) == {"err"}
    r = t.req("POST", "/prisma/login", data=b"{not json")
    assert r.status_code == 400 and redlock(r) == "malformed_json"
    r = t.req("GET", "/prisma/auth_token/extend", headers={"x-redlock-auth": "bad"})
    assert r.status_code == 401 and redlock(r) == "token_expired"
    # The default prismaId is the store's: the same after a restart.
    crt, key = cert
    d2 = Daemon(serve_args=["--tls-cert", crt, "--tls-key", key])
    d2.scheme = "https"
    try:
        ids = []
        for _ in range(2):
            d2.start()
            r = requests.post(d2.url + "/prisma/login", verify=crt, timeout=30,
                              json={"username": d2.admin["id"], "password": d2.admin["secret"]})
            ids.append(r.json()["customerNames"][0])
            assert d2.stop() == 0
        assert ids[0] == ids[1] and ids[0]["customerName"] == "credstore"
        assert ids[0]["prismaId"] != pid  # another store, another id
        d2.start(extra=["--prisma-id", "tenant-7"])
        r = requests.post(d2.url + "/prisma/login", verify=crt, timeout=30,
                          json={"username": d2.admin["id"], "password": d2.admin["secret"]})
        assert r.json()["customerNames"][0]["prismaId"] == "tenant-7"
        assert d2.stop() == 0
    finally:
        d2.close()


def test_rate_limited_login_has_retry_after(cert):
    tt = Tls(cert, "--auth-max-failures", "2", "--auth-cooloff", "7")
    try:
        for path in (B + "/authenticate", "/prisma/login"):
            codes = []
            for _ in range(4):
                r = tt.req("POST", path, json={"username": tt.admin["id"], "password": "x"})
                codes.append(r.status_code)
            assert codes[-1] == 429, codes
            assert r.headers["Retry-After"] == "7" and set(r.json()) == {"err"}
    finally:
        tt.close()


def test_mount_token_ttl(cert):
    tt = Tls(cert, "--prisma-token-ttl", "3000", "--token-ttl", "60")
    try:
        import base64
        h = py_login(tt)

        def exp(tok):
            p = tok.split(".")[1]
            c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
            return c["exp"] - c["iat"]

        assert exp(h["Authorization"][7:]) == 3000
        r = tt.req("POST", "/api/v1/login",
                   json={"username": tt.admin["id"], "password": tt.admin["secret"]})
        assert exp(r.json()["token"]) == 60
    finally:
        tt.close()


def test_mount_answers_conform_to_the_spec(t):
    """The mount's real answers against api-spec/openapi.yaml."""
    from openapi_check import check
    h = py_login(t)
    ok = {"_id": "spec ü", "type": "apiToken", "apiToken": {"plain": "tok-1"},
          "url": "https://x.example", "skipVerify": True, "stsEndpoints": ["a"]}
    r = t.req("POST", B + "/credentials?project=p", headers=h, json=ok)
    assert check(r, "POST", "/prisma/api/v{version}/credentials") is None
    for q in ("", "?limit=2&offset=0", "?ids=" + quote("spec ü")):
        r = t.req("GET", B + "/credentials" + q, headers=h)
        check(r, "GET", "/prisma/api/v{version}/credentials")
        assert ("Total-Count" in r.headers) == ("limit" in q)
    uid = add_usage(t, "spec ü")
    r = t.req("GET", B + "/credentials/%s/usages" % quote("spec ü"), headers=h)
    check(r, "GET", "/prisma/api/v{version}/credentials/{id}/usages")
    r = t.req("DELETE", B + "/credentials/" + quote("spec ü"), headers=h)
    assert r.status_code == 409
    check(r, "DELETE", "/prisma/api/v{version}/credentials/{id}")
    for bad in ({"_id": "x/y", "type": "basic"}, {"_id": "z", "type": "basic", "url": 5}):
        r = t.req("POST", B + "/credentials", headers=h, json=bad)
        assert r.status_code == 400
        check(r, "POST", "/prisma/api/v{version}/credentials")
    r = t.req("POST", "/prisma/login", json={"username": t.admin["id"], "password": "x"})
    check(r, "POST", "/prisma/login")
    r = t.req("POST", "/prisma/login", json={"username": t.admin["id"],
                                            "password": t.admin["secret"], "prismaId": 7})
    assert r.status_code == 200
    check(r, "POST", "/prisma/login")
    r = t.req("GET", "/prisma/auth_token/extend", headers={"x-redlock-auth": r.json()["token"]})
    check(r, "GET", "/prisma/auth_token/extend")
    r = t.req("GET", B + "/authenticate/renew", headers=h)
    check(r, "GET", "/prisma/api/v{version}/authenticate/renew")
    assert t.req("DELETE", "/api/v1/credentials/%s/usages/%s" % (quote("spec ü", safe=""), uid),
                 headers=t.auth).status_code == 204
    r = t.req("DELETE", B + "/credentials/" + quote("spec ü"), headers=h)
    assert check(r, "DELETE", "/prisma/api/v{version}/credentials/{id}") is None
