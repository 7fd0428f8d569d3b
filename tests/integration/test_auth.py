"""Issue 3: access keys, roles, login, tokens, brute-force limiting."""
import base64
import http.client
import json
import os
import re
import time

import pytest

from harness import SLOW, Daemon, assert_error, basic

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

# API.md §2, role table. Every route of server/api/routes.c must be listed here.
ALL = {"admin", "operator", "auditor", "ci"}
READ = {"admin", "operator", "auditor"}
WRITE = {"admin", "operator"}
USE = {"admin", "operator", "ci"}
EXPECTED_ROLES = {
    "healthz": None, "readyz": None, "login": None,  # None = public
    "metrics": READ,  # not ci: webhook counters must not be a port-scan oracle
    "version": ALL,
    "auth_token_extend": ALL,
    "access_keys_create": {"admin"},
    "access_keys_list": {"admin"},
    "access_keys_delete": {"admin"},
    "credentials_list": READ,
    "credentials_get": READ,
    "credentials_upsert": WRITE,
    "credentials_update": WRITE,
    "credentials_delete": WRITE,
    "usages_list": READ,
    "usages_create": USE,
    "usages_delete": USE,
    "resolve": USE,
    "credentials_test": WRITE,
    "events": READ,
    "audit": {"admin", "auditor"},
    "deliveries_list": {"admin"},
    "delivery_retry": {"admin"},
    "aws_container_credentials": USE,
    # The web console's files (API.md §10): public; it logs in like any client.
    "root_redirect": None, "ui_redirect": None, "ui_index": None, "ui_asset": None,
    # The /prisma mount (API.md §7): the same roles as the native routes it mirrors.
    "prisma_authenticate": None,
    "prisma_authenticate_renew": ALL,
    "prisma_credentials_list": READ,
    "prisma_credentials_upsert": WRITE,
    "prisma_credentials_delete": WRITE,
    "prisma_usages_list": READ,
    "prisma_login": None,
    "prisma_auth_token_extend": ALL,
}
# Routes whose answers span every credential: a key with a scope gets 403
# (CS_ROUTE_UNSCOPED in the flags column of server/api/routes.c).
EXPECTED_UNSCOPED = {"metrics"}


def route_table_flags():
    """(method, pattern, roles-macro, name, flags) for every row of the route table."""
    src = open(os.path.join(ROOT, "server", "api", "routes.c")).read()
    rows = re.findall(r'\{CS_(GET|POST|PUT|DELETE), "([^"]+)", \w+, (\w+), "(\w+)", (\w+)\}',
                      src)
    assert len(rows) >= 8, "could not read the route table"
    assert len(rows) == src.count("{CS_"), "a route table row did not parse"
    return rows


def route_table():
    """(method, pattern, roles-macro, name) for every row of the route table."""
    return [r[:4] for r in route_table_flags()]




def login(d, key_id, secret):
    return d.post("/api/v1/login", json={"username": key_id, "password": secret})


def token_for(d, key):
    r = login(d, key["id"], key["secret"])
    assert r.status_code == 200, r.text
    return r.json()["token"]


def new_key(d, admin_auth, role, **extra):
    body = {"name": "k-" + role, "role": role}
    body.update(extra)
    r = d.post("/api/v1/access_keys", json=body, headers={"Authorization": admin_auth})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def d():
    dd = Daemon(serve_args=["--auth-max-failures", "1000"]).start()
    dd.admin_auth = basic(dd.admin["id"], dd.admin["secret"])
    yield dd
    assert dd.stop() == 0
    dd.close()


def test_login_and_every_way_to_authenticate(d):
    r = login(d, d.admin["id"], d.admin["secret"])
    assert r.status_code == 200
    body = r.json()
    assert body["message"] == "login_successful"
    tok = body["token"]
    assert tok.count(".") == 2
    header = json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))
    assert header["alg"] == "HS256"
    claims = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
    assert claims["sub"] == d.admin["id"] and claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 600
    for h in [{"Authorization": "Bearer " + tok}, {"x-redlock-auth": tok},
              {"Authorization": d.admin_auth}]:
        r = d.get("/api/v1/access_keys", headers=h)
        assert r.status_code == 200, (h, r.text)
        assert any(k["id"] == d.admin["id"] for k in r.json())


def test_no_or_bad_credentials(d):
    assert_error(d.get("/api/v1/access_keys"), 401, "unauthorized")
    assert_error(d.get("/api/v1/version"), 401, "unauthorized")
    assert_error(login(d, d.admin["id"], "0" * 64), 401, "invalid_credentials")
    assert_error(login(d, "ak-nobody", d.admin["secret"]), 401, "invalid_credentials")
    assert_error(d.get("/api/v1/version", headers={"Authorization": basic(d.admin["id"], "x")}),
                 401, "invalid_credentials")
    for bad in ["Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode(),
                "Basic ", "Digest abc", "Bearer", "Bearer ", "Bearer a.b.c"]:
        r = d.get("/api/v1/version", headers={"Authorization": bad})
        assert r.status_code == 401, (bad, r.text)
        assert_error(r, 401)
    assert_error(d.post("/api/v1/login", data=b"{not json"), 400, "malformed_json")
    assert_error(d.post("/api/v1/login", json={"username": d.admin["id"]}), 400, "missing_field")
    assert_error(d.post("/api/v1/login", json={"username": 5, "password": "x"}), 400)
    assert_error(d.post("/api/v1/login", json=["a"]), 400, "malformed_json")


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def test_tampered_and_malformed_tokens(d):
    tok = token_for(d, d.admin)
    h, p, s = tok.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=="))
    forged_payload = b64url(json.dumps(dict(claims, role="admin", sub="ak-other")).encode())
    none_header = b64url(b'{"alg":"none","typ":"JWT"}')
    hs512_header = b64url(b'{"alg":"HS512","typ":"JWT"}')
    sig_flip = s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1]
    for bad in [h + "." + forged_payload + "." + s, none_header + "." + p + ".",
                none_header + "." + p + "." + s, hs512_header + "." + p + "." + s,
                h + "." + p + "." + sig_flip, h + "." + p, tok + ".x", "garbage",
                h + "." + p + "." + s + "=", "a" * 5000]:
        assert_error(d.get("/api/v1/version", headers={"Authorization": "Bearer " + bad}),
                     401, "invalid_token")
        assert_error(d.get("/api/v1/version", headers={"x-redlock-auth": bad}), 401,
                     "invalid_token")
    # The untampered token still works.
    assert d.get("/api/v1/version", headers={"x-redlock-auth": tok}).status_code == 200


def test_expired_token_is_refused():
    # Under valgrind login and the first request can take over a second: the
    # TTL scales with the wrapper's slowdown so the token is still fresh then.
    ttl = 2 * SLOW
    dd = Daemon(serve_args=["--token-ttl", str(ttl)]).start()
    try:
        tok = token_for(dd, dd.admin)
        assert dd.get("/api/v1/version", headers={"x-redlock-auth": tok}).status_code == 200
        time.sleep(ttl + 1.2)
        assert_error(dd.get("/api/v1/version", headers={"x-redlock-auth": tok}), 401,
                     "invalid_token")
        assert_error(dd.get("/api/v1/auth_token/extend", headers={"x-redlock-auth": tok}), 401)
    finally:
        assert dd.stop() == 0
        dd.close()


def test_extend(d):
    tok = token_for(d, d.admin)
    time.sleep(1.1)
    r = d.get("/api/v1/auth_token/extend", headers={"Authorization": "Bearer " + tok})
    assert r.status_code == 200 and r.json()["message"] == "login_successful"
    tok2 = r.json()["token"]
    c1 = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
    c2 = json.loads(base64.urlsafe_b64decode(tok2.split(".")[1] + "=="))
    assert c2["exp"] > c1["exp"] and c2["sub"] == c1["sub"]
    assert d.get("/api/v1/version", headers={"x-redlock-auth": tok2}).status_code == 200
    assert_error(d.get("/api/v1/auth_token/extend"), 401)


def test_access_keys_create_list_delete(d):
    k = new_key(d, d.admin_auth, "operator", scope=["aws-*", "kube-staging"],
                expiresAt="2099-01-01T00:00:00Z")
    assert k["role"] == "operator" and k["scope"] == ["aws-*", "kube-staging"]
    assert k["expiresAt"] == "2099-01-01T00:00:00Z" and re.match(r"\d{4}-", k["createdAt"])
    assert len(k["secret"]) == 64
    listed = d.get("/api/v1/access_keys", headers={"Authorization": d.admin_auth}).json()
    mine = [x for x in listed if x["id"] == k["id"]]
    assert len(mine) == 1
    assert "secret" not in mine[0] and "hash" not in mine[0]
    assert k["secret"] not in json.dumps(listed)
    assert mine[0]["owner"] == d.admin["id"]
    assert mine[0]["createdAt"] == k["createdAt"] and mine[0]["expiresAt"] == k["expiresAt"]
    assert mine[0]["name"] == "k-operator" and mine[0]["scope"] == k["scope"]
    assert "" not in mine[0]
    # Invalid bodies change nothing.
    for bad in [{"role": "admin"}, {"name": "x"}, {"name": "x", "role": "root"},
                {"name": "", "role": "ci"}, {"name": "x", "role": "ci", "scope": "aws-*"},
                # Patterns may hold spaces and UTF-8 now (names do), not these:
                {"name": "x", "role": "ci", "scope": ["a/b"]},
                {"name": "x", "role": "ci", "scope": ["a\\b*"]},
                {"name": "x", "role": "ci", "scope": ["a\tb"]},
                {"name": "x", "role": "ci", "scope": ["a\u0085"]},
                {"name": "x", "role": "ci", "scope": [""]},
                {"name": "x", "role": "ci", "scope": [1]},
                {"name": "x", "role": "ci", "expiresAt": "2001-01-01T00:00:00Z"},
                {"name": "x", "role": "ci", "expiresAt": "tomorrow"}]:
        assert_error(d.post("/api/v1/access_keys", json=bad,
                            headers={"Authorization": d.admin_auth}), 400)
    after = d.get("/api/v1/access_keys", headers={"Authorization": d.admin_auth}).json()
    assert len(after) == len(listed)
    r = d.delete("/api/v1/access_keys/" + k["id"], headers={"Authorization": d.admin_auth})
    assert r.status_code == 204 and r.text == ""
    assert_error(d.delete("/api/v1/access_keys/" + k["id"],
                          headers={"Authorization": d.admin_auth}), 404, "not_found")


def test_last_admin_key_cannot_be_deleted(d):
    assert_error(d.delete("/api/v1/access_keys/" + d.admin["id"],
                          headers={"Authorization": d.admin_auth}), 409, "last_admin_key")
    other = new_key(d, d.admin_auth, "admin")
    r = d.delete("/api/v1/access_keys/" + d.admin["id"],
                 headers={"Authorization": basic(other["id"], other["secret"])})
    assert r.status_code == 204


def test_deleting_a_key_revokes_its_tokens_at_once(d):
    k = new_key(d, d.admin_auth, "operator")
    tok = token_for(d, k)
    assert d.get("/api/v1/version", headers={"x-redlock-auth": tok}).status_code == 200
    assert d.delete("/api/v1/access_keys/" + k["id"],
                    headers={"Authorization": d.admin_auth}).status_code == 204
    assert_error(d.get("/api/v1/version", headers={"x-redlock-auth": tok}), 401, "invalid_token")
    assert_error(d.get("/api/v1/version", headers={"Authorization": basic(k["id"], k["secret"])}),
                 401, "invalid_credentials")
    assert_error(login(d, k["id"], k["secret"]), 401, "invalid_credentials")


def basic_gets(d, auth, n=12):
    """n GETs with one Basic header: on the daemon's keep-alive session and
    on fresh connections, so that every pool thread that answers has seen
    (and remembered) the header before."""
    out = [d.get("/api/v1/version", headers={"Authorization": auth}).status_code
           for _ in range(n)]
    for _ in range(n // 2):
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        c.request("GET", "/api/v1/version", headers={"Authorization": auth})
        out.append(c.getresponse().status)
        c.close()
    return out


def test_remembered_basic_header_is_revoked_at_once(d):
    """A Basic header verified before is not re-hashed, but the key record
    is still read on every request: deletion and expiry refuse it at once,
    a changed header is verified afresh, and failures are still counted."""
    k = new_key(d, d.admin_auth, "operator")
    good = basic(k["id"], k["secret"])
    assert basic_gets(d, good) == [200] * 18
    # One byte of the secret changed, or the same id with an empty secret:
    # never the remembered answer.
    wrong = [basic(k["id"], k["secret"][:-1] + ("a" if k["secret"][-1] != "a" else "b")),
             basic(k["id"], ""), basic(k["id"], k["secret"] + "x"),
             "Basic  " + good.split(" ", 1)[1] + "=", good[:-2]]
    for w in wrong:
        assert_error(d.get("/api/v1/version", headers={"Authorization": w}), 401,
                     "invalid_credentials")
    assert basic_gets(d, good, 4) == [200] * 6
    assert d.delete("/api/v1/access_keys/" + k["id"],
                    headers={"Authorization": d.admin_auth}).status_code == 204
    assert basic_gets(d, good) == [401] * 18
    # Expiry too: a key that expires while its header is remembered.
    life = 2 * SLOW
    expires = time.time() + life
    exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
    k = new_key(d, d.admin_auth, "ci", expiresAt=exp)
    good = basic(k["id"], k["secret"])
    assert basic_gets(d, good, 4) == [200] * 6
    time.sleep(max(0.0, expires - time.time()) + 1.1)
    assert basic_gets(d, good, 4) == [401] * 6


def test_expired_key_is_refused_like_a_wrong_one(d):
    # The key must outlive its creation and a login, which take seconds
    # under valgrind on a loaded machine: its lifetime scales with SLOW.
    life = 2 * SLOW
    expires = time.time() + life
    exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
    k = new_key(d, d.admin_auth, "ci", expiresAt=exp)
    tok = token_for(d, k)
    claims = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
    assert claims["exp"] <= expires + 1, "a token must not outlive its key"
    time.sleep(max(0.0, expires - time.time()) + 1.1)
    assert_error(login(d, k["id"], k["secret"]), 401, "invalid_credentials")
    assert_error(d.get("/api/v1/version", headers={"x-redlock-auth": tok}), 401)


def fill(pattern):
    return pattern.replace("/v{}/", "/v1/").replace("{}", "no-such-thing")


def route_error(r, status, code, name):
    """assert_error, or on the /prisma mount Prisma's {"err"} body."""
    if not name.startswith("prisma_"):
        return assert_error(r, status, code)
    assert r.status_code == status, (name, r.status_code, r.text)
    body = r.json()
    assert set(body) == {"err"} and isinstance(body["err"], str), (name, body)
    return body


def test_role_route_matrix(d):
    keys = {role: new_key(d, d.admin_auth, role) for role in ALL}
    auths = {role: {"x-redlock-auth": token_for(d, keys[role])} for role in ALL}
    # Scoped rows: a scope narrows what a key reaches, never its role's routes.
    for role in ALL:
        k = new_key(d, d.admin_auth, role, scope=["aws-*"])
        auths["scoped " + role] = {"Authorization": basic(k["id"], k["secret"])}
    rows = route_table()
    names = {r[3] for r in rows}
    missing = names - set(EXPECTED_ROLES)
    assert not missing, "routes without an expected-roles row: %s" % missing
    for method, pattern, macro, name in rows:
        expected = EXPECTED_ROLES[name]
        path = fill(pattern)
        if expected is None:
            assert macro == "CS_PUBLIC", name
            r = d.request(method, path, data=b"{}")
            assert r.status_code not in (401, 403), (name, r.status_code)
            continue
        r = d.request(method, path, data=b"{}")
        route_error(r, 401, None, name)
        for who, h in auths.items():
            role = who.split()[-1]
            r = d.request(method, path, data=b"{}", headers=h)
            if role in expected and not (who.startswith("scoped") and name in EXPECTED_UNSCOPED):
                assert r.status_code not in (401, 403), (name, who, r.status_code, r.text)
            else:
                body = route_error(r, 403, "forbidden", name)
                assert (role if role not in expected else "scope") in body["err"], body


def test_scoped_keys_route_matrix(d):
    """Every route as a key of each role with a scope: the roles column still
    decides, and CS_ROUTE_UNSCOPED routes refuse the scoped key with 403."""
    rows = route_table_flags()
    assert {r[3] for r in rows if "CS_ROUTE_UNSCOPED" in r[4]} == EXPECTED_UNSCOPED
    assert all(r[4] in ("0", "CS_ROUTE_UNSCOPED", "CS_ROUTE_PRISMA", "CS_ROUTE_REDLOCK")
               for r in rows), rows
    assert {r[3] for r in rows if r[4] in ("CS_ROUTE_PRISMA", "CS_ROUTE_REDLOCK")} == \
        {n for n in EXPECTED_ROLES if n.startswith("prisma_")}
    for scope in (["no-such-*"],):  # [] is refused at creation
        scoped = {role: new_key(d, d.admin_auth, role, scope=scope) for role in ALL}
        auths = {role: {"x-redlock-auth": token_for(d, scoped[role])} for role in ALL}
        for method, pattern, _, name, _ in rows:
            expected = EXPECTED_ROLES[name]
            if expected is None:
                continue
            for role in ALL:
                r = d.request(method, fill(pattern), data=b"{}", headers=auths[role])
                if role in expected and name not in EXPECTED_UNSCOPED:
                    assert r.status_code not in (401, 403), (name, role, r.status_code, r.text)
                else:
                    body = route_error(r, 403, "forbidden", name)
                    assert (role if role not in expected else "scope") in body["err"], body


def conn_from(port, src):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(src, 0))


def post_login(port, src, key_id, secret):
    c = conn_from(port, src)
    c.request("POST", "/api/v1/login", body=json.dumps({"username": key_id, "password": secret}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    out = (r.status, r.getheader("Retry-After"), r.read())
    c.close()
    return out


def test_brute_force_gets_429_then_cools_off():
    dd = Daemon(serve_args=["--auth-max-failures", "3", "--auth-cooloff", "2"]).start()
    try:
        other = new_key(dd, basic(dd.admin["id"], dd.admin["secret"]), "operator")
        wrong = "f" * 64
        for _ in range(3):
            assert post_login(dd.port, "127.0.0.1", dd.admin["id"], wrong)[0] == 401
        st, retry, body = post_login(dd.port, "127.0.0.1", dd.admin["id"], dd.admin["secret"])
        assert st == 429 and retry == "2"
        assert json.loads(body)["code"] == "too_many_attempts"
        # Basic from the same address is blocked too.
        r = dd.get("/api/v1/version", headers={"Authorization": basic(other["id"], other["secret"])})
        assert r.status_code == 429
        # Another address is not held back: only the failing address cools off,
        # never the key it named (else anyone could lock out any key).
        assert post_login(dd.port, "127.0.0.2", dd.admin["id"], dd.admin["secret"])[0] == 200
        assert post_login(dd.port, "127.0.0.2", other["id"], other["secret"])[0] == 200
        time.sleep(2.2)
        assert post_login(dd.port, "127.0.0.1", dd.admin["id"], dd.admin["secret"])[0] == 200
        # Failures are logged with the key id and address, never the secret.
        fails = dd.wait_log(lambda l: l["msg"] == "authentication failure")
        assert len(fails) >= 3 and fails[0]["actor"] == dd.admin["id"]
        assert fails[0]["remote"] == "127.0.0.1"
        assert wrong not in dd.log() and dd.admin["secret"] not in dd.log()
    finally:
        assert dd.stop() == 0
        dd.close()


def test_swapped_id_and_secret_never_reach_log_or_audit(d):
    # A client that puts the secret in the id field must not get it recorded.
    assert_error(login(d, d.admin["secret"], d.admin["id"]), 401, "invalid_credentials")
    r = d.get("/api/v1/version", headers={"Authorization": basic(d.admin["secret"], "x")})
    assert_error(r, 401)
    fails = d.wait_log(lambda l: l["msg"] == "authentication failure")
    assert len(fails) >= 2 and fails[-1]["actor"] == "(not a key id)"
    audit = d.get("/api/v1/audit?limit=1000", headers={"Authorization": d.admin_auth}).json()
    assert any(e["action"] == "auth" and e["result"] == "failure" for e in audit)
    assert d.admin["secret"] not in json.dumps(audit)
    assert d.admin["secret"] not in d.log()


# ------------------------------------------------- scoped admins (issue 11)

def ibm(cid):
    return {"_id": cid, "type": "ibmCloud", "accountGUID": "0123456789abcdef0123456789abcdef",
            "secret": {"plain": "ibm-api-key-" + cid}}


def keys_seen(d, auth):
    r = d.get("/api/v1/access_keys", headers={"Authorization": auth})
    assert r.status_code == 200, r.text
    return {k["id"]: k for k in r.json()}


def in_hours(h):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + h * 3600))


def test_scoped_admin_on_the_access_keys_routes(d):
    """The route table lets every admin manage keys; scope bounds what it reaches."""
    sa = new_key(d, d.admin_auth, "admin", scope=["aws-*"])
    auths = {"Authorization": basic(sa["id"], sa["secret"])}, \
        {"x-redlock-auth": token_for(d, sa)}
    rows = [r for r in route_table() if r[3].startswith("access_keys_")]
    assert {r[3] for r in rows} == {"access_keys_create", "access_keys_list",
                                    "access_keys_delete"}
    expect = {"access_keys_create": (400, "invalid_field"), "access_keys_list": (200, None),
              "access_keys_delete": (404, "not_found")}
    for method, pattern, macro, name in rows:
        assert macro == "CS_R_ADMIN", name
        for h in auths:
            r = d.request(method, fill(pattern), data=b"{}", headers=h)
            status, code = expect[name]
            assert r.status_code == status, (name, r.status_code, r.text)
            if code:
                assert_error(r, status, code)


def test_scoped_admin_cannot_create_a_broader_key(d):
    for cid in ["aws-prod", "aws-dev", "gcp-prod"]:
        assert d.post("/api/v1/credentials", json=ibm(cid),
                      headers={"Authorization": d.admin_auth}).status_code == 201
    sa = new_key(d, d.admin_auth, "admin", scope=["aws-*"])
    sa_auth = basic(sa["id"], sa["secret"])
    before = keys_seen(d, d.admin_auth)
    broader = [["*"], ["aws*"], ["a?s-*"], ["[a]ws-*"], ["?ws-*"], ["aws-*", "gcp-*"],
               ["gcp-prod"], ["*-prod"], ["aws-prod", "*"], ["[!x]*"], ["aws"]]
    for role in ALL:
        for scope in broader:
            body = {"name": "esc", "role": role, "scope": scope}
            r = d.post("/api/v1/access_keys", json=body, headers={"Authorization": sa_auth})
            err = assert_error(r, 403, "forbidden")
            assert err["field"] == "scope", err
    # An empty scope is refused for everyone: it would see nothing.
    for auth in (sa_auth, d.admin_auth):
        r = d.post("/api/v1/access_keys", json={"name": "e", "role": "ci", "scope": []},
                   headers={"Authorization": auth})
        assert assert_error(r, 400, "invalid_field")["field"] == "scope"
    assert keys_seen(d, d.admin_auth).keys() == before.keys(), "a refused create made a key"
    # Leaving scope out, or null, gives the creator's scope, never every credential.
    for extra in [{}, {"scope": None}]:
        child = new_key(d, sa_auth, "admin", **extra)
        assert child["scope"] == ["aws-*"], child
        h = {"Authorization": basic(child["id"], child["secret"])}
        ids = {c["_id"] for c in d.get("/api/v1/credentials", headers=h).json()}
        assert ids == {"aws-prod", "aws-dev"}
        assert_error(d.get("/api/v1/credentials/gcp-prod", headers=h), 404)
        # And the child is bounded in turn.
        r = d.post("/api/v1/access_keys", json={"name": "g", "role": "ci", "scope": ["*"]},
                   headers=h)
        assert_error(r, 403, "forbidden")
        assert keys_seen(d, d.admin_auth)[child["id"]]["scope"] == ["aws-*"]
    # Narrower scopes, any role.
    for role, scope in [("ci", ["aws-prod"]), ("operator", ["aws-[!x]*"]),
                        ("admin", ["aws-*"]), ("auditor", ["aws-dev-*", "aws-prod"]),
                        ("ci", ["aws-?rod"])]:
        k = new_key(d, sa_auth, role, scope=scope)
        assert k["scope"] == scope and k["role"] == role and k["owner"] == sa["id"]


def test_key_cannot_outlive_its_creator(d):
    exp = in_hours(1)
    ta = new_key(d, d.admin_auth, "admin", expiresAt=exp)
    ta_auth = basic(ta["id"], ta["secret"])
    # Left out: the creator's expiry.
    k = new_key(d, ta_auth, "operator")
    assert k["expiresAt"] == exp
    # Later is refused, earlier is kept.
    r = d.post("/api/v1/access_keys", json={"name": "l", "role": "ci", "expiresAt": in_hours(2)},
               headers={"Authorization": ta_auth})
    assert assert_error(r, 403, "forbidden")["field"] == "expiresAt"
    early = in_hours(0.5)
    assert new_key(d, ta_auth, "ci", expiresAt=early)["expiresAt"] == early
    # A scoped, expiring admin: both limits apply.
    st = new_key(d, d.admin_auth, "admin", scope=["aws-*"], expiresAt=exp)
    st_auth = basic(st["id"], st["secret"])
    for body, field in [({"scope": ["*"]}, "scope"), ({"expiresAt": in_hours(3)}, "expiresAt")]:
        r = d.post("/api/v1/access_keys", json=dict(body, name="x", role="ci"),
                   headers={"Authorization": st_auth})
        assert assert_error(r, 403, "forbidden")["field"] == field
    k = new_key(d, st_auth, "ci")
    assert k["scope"] == ["aws-*"] and k["expiresAt"] == exp
    # A key that never expires is broader than one that does: not seen, not deletable.
    seen = keys_seen(d, ta_auth)
    assert d.admin["id"] not in seen and ta["id"] in seen
    assert all("expiresAt" in x and x["expiresAt"] <= exp for x in seen.values())
    assert_error(d.delete("/api/v1/access_keys/" + d.admin["id"],
                          headers={"Authorization": ta_auth}), 404, "not_found")
    assert d.admin["id"] in keys_seen(d, d.admin_auth)


def test_scoped_admin_lists_and_deletes_only_keys_within(d):
    sa = new_key(d, d.admin_auth, "admin", scope=["aws-*"])
    sa_auth = basic(sa["id"], sa["secret"])
    inside = [new_key(d, d.admin_auth, "ci", scope=["aws-prod"]),
              new_key(d, d.admin_auth, "operator", scope=["aws-*"]),
              new_key(d, sa_auth, "auditor")]
    outside = [new_key(d, d.admin_auth, "admin"),                       # unscoped admin
               new_key(d, d.admin_auth, "ci"),                          # unscoped ci
               new_key(d, d.admin_auth, "admin", scope=["gcp-*"]),      # a sibling scope
               new_key(d, d.admin_auth, "ci", scope=["aws-*", "gcp-*"]),
               new_key(d, d.admin_auth, "ci", scope=["a?s-*"]),
               new_key(d, d.admin_auth, "ci", scope=["*"])]
    seen = keys_seen(d, sa_auth)
    assert set(seen) == {sa["id"]} | {k["id"] for k in inside}, seen
    for k in seen.values():
        assert k["scope"] and all(p.startswith("aws-") for p in k["scope"]), k
    tok = {"x-redlock-auth": token_for(d, sa)}
    assert set(x["id"] for x in d.get("/api/v1/access_keys", headers=tok).json()) == set(seen)
    # Deleting outside answers exactly like a key that does not exist.
    missing = d.delete("/api/v1/access_keys/ak-000000000000000000000000",
                       headers={"Authorization": sa_auth})
    assert_error(missing, 404, "not_found")
    for victim in [d.admin] + outside:
        for h in ({"Authorization": sa_auth}, tok):
            r = d.delete("/api/v1/access_keys/" + victim["id"], headers=h)
            body = assert_error(r, 404, "not_found")
            assert set(body) == set(missing.json())
            assert body["err"] == missing.json()["err"].replace(
                "ak-000000000000000000000000", victim["id"])
    everything = keys_seen(d, d.admin_auth)
    assert all(k["id"] in everything for k in [d.admin] + outside + inside)
    # Inside is deletable.
    for k in inside:
        assert d.delete("/api/v1/access_keys/" + k["id"],
                        headers={"Authorization": sa_auth}).status_code == 204
    assert set(keys_seen(d, d.admin_auth)) == set(everything) - {k["id"] for k in inside}
    # The audit trail records the refusals as nothing: only the three deletes.
    audit = d.get("/api/v1/audit?limit=1000", headers={"Authorization": d.admin_auth}).json()
    dels = [e for e in audit if e["action"] == "access_key_delete"]
    assert {e["target"] for e in dels} == {k["id"] for k in inside}
    assert all(e["actor"] == sa["id"] for e in dels)


def test_last_admin_guard_counts_live_unscoped_admins(d):
    until = int(time.time()) + 3
    exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
    temp = new_key(d, d.admin_auth, "admin", expiresAt=exp)
    scoped = new_key(d, d.admin_auth, "admin", scope=["aws-*"])
    time.sleep(max(0, until - time.time()) + 1.1)
    assert_error(login(d, temp["id"], temp["secret"]), 401, "invalid_credentials")
    # The expired admin and the scoped admin do not count.
    assert_error(d.delete("/api/v1/access_keys/" + d.admin["id"],
                          headers={"Authorization": d.admin_auth}), 409, "last_admin_key")
    assert d.admin["id"] in keys_seen(d, d.admin_auth)
    # Expired and scoped admins can themselves go.
    for k in (temp, scoped):
        assert d.delete("/api/v1/access_keys/" + k["id"],
                        headers={"Authorization": d.admin_auth}).status_code == 204
    # A live admin scoped ["*"] reaches every credential and every key: it counts.
    star = new_key(d, d.admin_auth, "admin", scope=["*"])
    star_auth = basic(star["id"], star["secret"])
    assert d.admin["id"] in keys_seen(d, star_auth)
    assert d.delete("/api/v1/access_keys/" + d.admin["id"],
                    headers={"Authorization": star_auth}).status_code == 204
    assert_error(d.delete("/api/v1/access_keys/" + star["id"],
                          headers={"Authorization": star_auth}), 409, "last_admin_key")
    assert list(keys_seen(d, star_auth)) == [star["id"]]

def test_swapped_credentials_never_reach_log_or_audit_in_any_path():
    """The secret where the id goes, in every way a credential is presented
    (login, Basic, Bearer, x-redlock-auth), before and while the address is
    cooling off: the log and the audit trail name "(not a key id)", never
    the secret."""
    dd = Daemon(serve_args=["--auth-max-failures", "3", "--auth-cooloff", "60"]).start()
    try:
        aid, sec = dd.admin["id"], dd.admin["secret"]
        # The auditor reads the trail from another address, never limited.
        aud = new_key(dd, basic(aid, sec), "auditor")
        attempts = [
            lambda: post_login(dd.port, "127.0.0.2", sec, aid)[0],
            lambda: post_login(dd.port, "127.0.0.2", sec, "")[0],
            lambda: get_from(dd.port, "127.0.0.2", {"Authorization": basic(sec, aid)}),
            lambda: get_from(dd.port, "127.0.0.2", {"Authorization": basic(sec, sec)}),
            lambda: get_from(dd.port, "127.0.0.2", {"Authorization": "Bearer " + sec}),
            lambda: get_from(dd.port, "127.0.0.2", {"x-redlock-auth": sec}),
            lambda: get_from(dd.port, "127.0.0.2",
                             {"Authorization": "Basic " + base64.b64encode(sec.encode()).decode()}),
        ]
        statuses = [a() for a in attempts] + [a() for a in attempts]  # the 2nd round cools off
        assert 429 in statuses and set(statuses) <= {401, 429}, statuses
        r = dd.get("/api/v1/audit?limit=1000",
                   headers={"Authorization": basic(aud["id"], aud["secret"])})
        assert r.status_code == 200
        auth_entries = [e for e in r.json() if e["action"] == "auth" and e["result"] != "success"]
        assert {e["result"] for e in auth_entries} == {"failure", "rate_limited"}
        assert {e["actor"] for e in auth_entries} == {"(not a key id)"}
        limited = dd.wait_log(lambda l: l["msg"] == "authentication rate_limited")
        assert limited and {l["actor"] for l in limited} == {"(not a key id)"}
        assert sec not in r.text
        assert sec not in dd.log()
    finally:
        assert dd.stop() == 0
        dd.close()


def get_from(port, src, headers):
    c = conn_from(port, src)
    c.request("GET", "/api/v1/version", headers=headers)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def test_empty_and_oversize_ids_count_and_are_audited():
    """An empty id (Basic ":secret", Basic ":", login "") or an oversize one
    is a failed attempt like any other: 401, counted toward the limit, and
    audited."""
    dd = Daemon(serve_args=["--auth-max-failures", "5", "--auth-cooloff", "60"]).start()
    try:
        b64 = lambda s: "Basic " + base64.b64encode(s.encode()).decode()
        got = [get_from(dd.port, "127.0.0.2", {"Authorization": b64(":" + "f" * 64)}),
               get_from(dd.port, "127.0.0.2", {"Authorization": b64(":")}),
               post_login(dd.port, "127.0.0.2", "", "f" * 64)[0],
               post_login(dd.port, "127.0.0.2", "", "")[0],
               post_login(dd.port, "127.0.0.2", "a" * 2000, "f" * 64)[0],
               post_login(dd.port, "127.0.0.2", dd.admin["id"], dd.admin["secret"])[0]]
        assert got == [401] * 5 + [429], got
        r = dd.get("/api/v1/audit?limit=1000",
                   headers={"Authorization": basic(dd.admin["id"], dd.admin["secret"])})
        fails = [e for e in r.json() if e["action"] == "auth" and e["remote"] == "127.0.0.2"]
        assert [e["result"] for e in fails] == ["failure"] * 5 + ["rate_limited"], fails
    finally:
        assert dd.stop() == 0
        dd.close()
