"""The API contract, api-spec/openapi.yaml: it lints with a real OpenAPI tool
(@redocly/cli from the npm registry), it describes every route of the server
and of API.md with the server's roles and error codes, and the real daemon's
responses conform to it (openapi_check.check)."""
import base64
import json
import os
import re
import subprocess

import pytest
import requests
from jsonschema import Draft202012Validator
from requests.structures import CaseInsensitiveDict

import openapi_check as oc
from harness import Daemon, assert_error
from openapi_check import SpecViolation, check

ROOT = oc.ROOT
SPEC_DIR = os.path.join(ROOT, "api-spec")
ALL_ROLES = {"admin", "operator", "auditor", "ci"}

# server/api/http.h: the role masks of the route table.
ROLE_MACROS = {
    "CS_PUBLIC": None,
    "CS_R_ADMIN": {"admin"},
    "CS_R_WRITE": {"admin", "operator"},
    "CS_R_READ": {"admin", "operator", "auditor"},
    "CS_R_AUDIT": {"admin", "auditor"},
    "CS_R_USE": {"admin", "operator", "ci"},
    "CS_R_ANY": ALL_ROLES,
}

# Every route of API.md §2-§5 (method, path). test_api_md_routes_are_in_the_spec
# also re-reads API.md when it is at hand and checks this list against it.
API_ROUTES = {
    ("POST", "/api/v1/login"),
    ("GET", "/api/v1/auth_token/extend"),
    ("POST", "/api/v1/access_keys"),
    ("GET", "/api/v1/access_keys"),
    ("DELETE", "/api/v1/access_keys/{id}"),
    ("GET", "/api/v1/credentials"),
    ("GET", "/api/v1/credentials/{id}"),
    ("POST", "/api/v1/credentials"),
    ("PUT", "/api/v1/credentials/{id}"),
    ("DELETE", "/api/v1/credentials/{id}"),
    ("POST", "/api/v1/credentials/{id}/usages"),
    ("GET", "/api/v1/credentials/{id}/usages"),
    ("DELETE", "/api/v1/credentials/{id}/usages/{usageId}"),
    ("POST", "/api/v1/credentials/{id}/resolve"),
    ("POST", "/api/v1/credentials/{id}/test"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/aws/container-credentials/{id}"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/deliveries"),
    ("POST", "/api/v1/deliveries/{id}/retry"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/version"),
    # §7, the /prisma mount
    ("POST", "/prisma/api/v{ver}/authenticate"),
    ("GET", "/prisma/api/v{ver}/authenticate/renew"),
    ("GET", "/prisma/api/v{ver}/credentials"),
    ("POST", "/prisma/api/v{ver}/credentials"),
    ("DELETE", "/prisma/api/v{ver}/credentials/{name}"),
    ("GET", "/prisma/api/v{ver}/credentials/{name}/usages"),
    ("POST", "/prisma/login"),
    ("GET", "/prisma/auth_token/extend"),
}

# Registry codes (common/common.h) that no HTTP response carries, and why.
NOT_OVER_HTTP = {
    "ok": "not an error",
    "already_initialized": "only `credstore init` on an initialised data dir",
    "already_exists": "only init and the store's no-overwrite puts (random ids never collide)",
    "unsupported_media_type": "no handler checks Content-Type (bodies are parsed as JSON)",
}


def route_table_flags():
    """(method, pattern, roles-macro, name, flags) for every row of server/api/routes.c."""
    src = open(os.path.join(ROOT, "server", "api", "routes.c")).read()
    table = src[src.index("cs_routes[] = {"):]
    table = table[:table.index("};")]
    rows = re.findall(r'\{CS_(GET|POST|PUT|DELETE),\s*"([^"]+)",\s*\w+,\s*(\w+),\s*"(\w+)",'
                      r'\s*(\w+)\}', table)
    assert len(rows) >= 8, "could not read the route table"
    assert len(rows) == table.count("{CS_"), "a route table row did not parse"
    return rows


def route_table():
    """(method, pattern, roles-macro, name) for every row of server/api/routes.c."""
    return [r[:4] for r in route_table_flags()]


def normalize(template):
    return re.sub(r"\{[^}]*\}", "{}", template)


def spec_index():
    """(METHOD, normalized template) -> (template, operation)."""
    return {(m, normalize(t)): (t, op) for m, t, op in oc.operations()}


def error_registry():
    """code -> HTTP status, from CS_ERR_LIST in common/common.h."""
    src = open(os.path.join(ROOT, "common", "common.h")).read()
    rows = re.findall(r'X\(CS_\w+,\s*(\d+),\s*"([a-z0-9_]+)"', src)
    assert len(rows) >= 20, "could not read CS_ERR_LIST"
    return {code: int(status) for status, code in rows}


# ----------------------------------------------------------------- lint

def redocly_installed():
    pkg = os.path.join(SPEC_DIR, "node_modules", "@redocly", "cli", "package.json")
    want = json.load(open(os.path.join(SPEC_DIR, "package.json")))["devDependencies"]["@redocly/cli"]
    return os.path.exists(pkg) and json.load(open(pkg))["version"] == want


def test_spec_lints():
    env = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true",
               npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false")
    if not redocly_installed():
        # From the committed lock file; fails (does not skip) without the registry.
        r = subprocess.run(["npm", "ci", "--prefix", "api-spec"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, "npm ci failed:\n" + r.stdout + r.stderr
        assert redocly_installed()
    r = subprocess.run(["npx", "--prefix", "api-spec", "redocly", "lint", "--format=stylish",
                        "--config", "api-spec/redocly.yaml", "api-spec/openapi.yaml"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, "redocly lint failed:\n" + out
    assert "openapi.yaml" in out and "valid" in out, out
    # Every finding is an error in redocly.yaml; none may be left, not even a warning.
    assert not re.search(r"^\s*\d+:\d+\s+(error|warning)\s", out, re.M), out


# ------------------------------------------------------------ structure

def test_spec_is_openapi_3_1_and_every_ref_resolves():
    doc = oc.spec()
    assert doc["openapi"].startswith("3.1.")
    refs = [(p, n["$ref"]) for p, n in oc.walk(doc) if isinstance(n, dict) and "$ref" in n]
    assert len(refs) > 100
    for where, ref in refs:
        oc.pointer(doc, ref)  # raises on a dangling ref
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    # The Error schema is the registry's body shape.
    err = doc["components"]["schemas"]["Error"]
    assert set(err["required"]) == {"err", "code"}
    assert err["properties"]["code"]["pattern"] == "^[a-z0-9_]+$"
    assert err.get("additionalProperties", True) is not False


LOGINS = {"/api/v1/login", "/prisma/api/v{version}/authenticate", "/prisma/login"}


def prisma_error(schema):
    """The /prisma mount's error body (API.md §7): {"err"} and no code."""
    return schema.get("required") == ["err"] and "code" not in schema.get("properties", {})


def test_every_operation_follows_the_house_rules():
    doc = oc.spec()
    schemes = set(doc["components"]["securitySchemes"])
    assert schemes == {"bearerAuth", "redlockAuth", "basicAuth"}
    assert doc["components"]["securitySchemes"]["redlockAuth"]["name"] == "x-redlock-auth"
    assert {k for s in doc["security"] for k in s} == schemes
    ids = [op["operationId"] for _, _, op in oc.operations()]
    assert len(ids) == len(set(ids)), "duplicate operationId"
    for method, template, op in oc.operations():
        name = "%s %s" % (method, template)
        responses = op["responses"]
        public = op.get("security") == []
        roles = op.get("x-credstore-roles")
        if public:
            assert roles is None, name
            # Only the logins answer 401 without authenticating (a wrong key).
            assert "401" not in responses or template in LOGINS, name
        else:
            assert "security" not in op, name + ": authenticated operations use the global security"
            assert roles and set(roles) <= ALL_ROLES, name
            assert {"401", "429"} <= set(responses), name
            # 403 exactly when some role may not call it, or a key with a scope.
            assert ("403" in responses) == (set(roles) != ALL_ROLES or
                                            op.get("x-credstore-unscoped") is True), name
        assert {"413", "500"} <= set(responses), name
        if "{" in template:
            assert "404" in responses, name
        if template.startswith("/api/v1/credentials/{id}") or "{id}" in template and \
                "container-credentials" in template:
            assert "400" in responses, name + ": a malformed credential id gets 400 invalid_id"
        if op.get("requestBody"):
            assert "400" in responses, name
        # A success, or (the console's redirects) only a redirect that says where to.
        redirects = [s for s in responses if s.startswith("3")]
        assert any(s.startswith("2") for s in responses) or redirects and all(
            "Location" in oc.deref(responses[s]).get("headers", {}) for s in redirects), name
        for status, resp in responses.items():
            resp = oc.deref(resp)
            assert "X-Request-Id" in resp.get("headers", {}), "%s %s: no X-Request-Id" % (name, status)
            if status.startswith(("4", "5")):
                schema = resp["content"]["application/json"]["schema"]
                target = oc.deref(schema)
                if template.startswith("/prisma/"):
                    # API.md §7: the mount's bodies are Prisma's {"err"}, and the
                    # CSPM routes say the code in x-redlock-status.
                    assert schema == {"$ref": "#/components/schemas/PrismaError"}, (name, status)
                    assert ("x-redlock-status" in resp["headers"]) == \
                        (template in ("/prisma/login", "/prisma/auth_token/extend")), (name, status)
                    continue
                assert {"$ref": "#/components/schemas/Error"} in target.get("allOf", []), \
                    "%s %s: error bodies must be an Error" % (name, status)
            if status == "429":
                assert "Retry-After" in resp["headers"], name
            if status == "204":
                assert not resp.get("content"), name
    assert "Total-Count" in oc.deref(
        doc["paths"]["/api/v1/credentials"]["get"]["responses"]["200"])["headers"]
    put = doc["paths"]["/api/v1/credentials/{id}"]["put"]
    assert any(oc.deref(p)["name"] == "If-Match" and oc.deref(p)["in"] == "header"
               for p in put["parameters"])
    assert "412" in put["responses"]
    unmatched = doc["x-credstore-unmatched-responses"]
    assert set(unmatched["unknownPath"]) == {"404", "413"}
    assert set(unmatched["unsupportedMethod"]) == {"405", "413"}
    assert "Allow" in oc.deref(unmatched["unsupportedMethod"]["405"])["headers"]


def test_every_example_in_the_spec_validates():
    doc = oc.spec()
    n = 0
    for where, node in oc.walk(doc):
        if isinstance(node, dict) and "schema" in node and "example" in node:
            oc.validate(node["example"], node["schema"], "example at " + where)
            n += 1
        if isinstance(node, dict) and isinstance(node.get("examples"), list) \
                and "type" in node and where.startswith("/components/schemas"):
            for ex in node["examples"]:
                oc.validate(ex, node, "schema example at " + where)
                n += 1
    assert n >= 20


def test_every_server_route_is_in_the_spec_with_its_roles():
    index = spec_index()
    rows = route_table()
    for method, pattern, macro, name in rows:
        assert macro in ROLE_MACROS, "unknown roles macro %s" % macro
        key = (method, normalize(pattern))
        assert key in index, "%s %s (%s) is not in api-spec/openapi.yaml" % (method, pattern, name)
        template, op = index[key]
        assert op["operationId"] == name, (template, op["operationId"], name)
        roles = ROLE_MACROS[macro]
        if roles is None:
            assert op.get("security") == [], \
                "%s is CS_PUBLIC in routes.c, but the spec requires authentication (roles %s)" \
                % (name, op.get("x-credstore-roles"))
        else:
            assert op.get("security") != [], \
                "%s needs authentication in routes.c (%s), the spec marks it public" % (name, macro)
            assert set(op["x-credstore-roles"]) == roles, \
                "%s: routes.c allows %s (%s), the spec %s" % (
                    name, sorted(roles), macro, sorted(op["x-credstore-roles"]))


def test_unscoped_routes_are_marked_in_the_spec():
    index = spec_index()
    for method, pattern, _, name, flags in route_table_flags():
        _, op = index[(method, normalize(pattern))]
        assert ("CS_ROUTE_UNSCOPED" in flags) == (op.get("x-credstore-unscoped") is True), \
            "%s: routes.c flags %s, the spec's x-credstore-unscoped %r" % (
                name, flags, op.get("x-credstore-unscoped"))


def find_api_md():
    for p in [os.environ.get("CREDSTORE_API_MD", ""),
              os.path.join(ROOT, "..", "shared", "API.md"),
              os.path.join(ROOT, "shared", "API.md")]:
        if p and os.path.exists(p):
            return p
    return None


def test_api_md_routes_are_in_the_spec():
    index = spec_index()
    for method, path in sorted(API_ROUTES):
        assert (method, normalize(path)) in index, "%s %s of API.md is not in the spec" % (method, path)
    # Nothing in the spec that the contract or the server does not name.
    known = {(m, normalize(p)) for m, p in API_ROUTES}
    known |= {(m, normalize(p)) for m, p, _, _ in route_table()}
    assert set(index) <= known, set(index) - known
    api_md = find_api_md()
    if api_md:
        text = open(api_md, encoding="utf-8").read()
        found = set(re.findall(r"`(GET|POST|PUT|DELETE) (/[^`\s?]*)", text))
        found = {(m, p.rstrip("[")) for m, p in found
                 if p.startswith(("/api/", "/prisma/")) or p in ("/healthz", "/readyz", "/metrics")}
        assert len(found) >= 15, found
        missing = {(m, normalize(p)) for m, p in found} - known
        assert not missing, "API.md routes missing from API_ROUTES: %s" % missing


def test_error_codes_match_the_registry():
    registry = error_registry()
    doc = oc.spec()
    in_spec = {}
    for where, node in oc.walk(doc):
        if not (isinstance(node, dict) and "responses" in node and isinstance(node["responses"], dict)):
            continue
        for status, resp in node["responses"].items():
            if not status.isdigit() or int(status) < 400:
                continue
            schema = oc.deref(oc.deref(resp)["content"]["application/json"]["schema"])
            if prisma_error(schema):
                assert where.startswith("/paths/~1prisma~1") or where.startswith("/components"), \
                    where
                continue  # the mount's bodies carry no code; x-redlock-status does
            code = schema.get("properties", {}).get("code", {})
            codes = code.get("enum") or ([code["const"]] if "const" in code else [])
            assert codes, "%s %s: the error schema names no codes" % (where, status)
            for c in codes:
                in_spec.setdefault(c, set()).add(int(status))
    for group in doc["x-credstore-unmatched-responses"].values():
        for status, resp in group.items():
            schema = oc.deref(oc.deref(resp)["content"]["application/json"]["schema"])
            in_spec.setdefault(schema["properties"]["code"]["const"], set()).add(int(status))
    for code, statuses in in_spec.items():
        assert code in registry, "the spec names %r, which common.h does not define" % code
        assert statuses == {registry[code]}, \
            "%s is HTTP %d in common.h, documented under %s" % (code, registry[code], statuses)
    missing = set(registry) - set(in_spec) - set(NOT_OVER_HTTP)
    assert not missing, "error codes the spec does not document: %s" % missing


# ---------------------------------------------------- check() itself

def fake(status, body=None, headers=None, method="GET", url="http://x/healthz", raw=None):
    r = requests.Response()
    r.status_code = status
    h = {"X-Request-Id": "0123456789abcdef"}
    if body is not None or raw is not None:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    r.headers = CaseInsensitiveDict(h)
    r._content = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    r.request = requests.Request(method, url).prepare()
    r.url = url
    return r


AK = "ak-0123456789abcdef01234567"
KEY = {"id": AK, "name": "n", "role": "ci", "createdAt": "2026-11-22T15:54:38Z"}


def test_check_accepts_conforming_and_refuses_the_rest():
    assert check(fake(200, {"status": "ok"})) == {"status": "ok"}
    assert check(fake(200, [KEY], url="http://x/api/v1/access_keys"), "GET",
                 "/api/v1/access_keys") == [KEY]
    assert check(fake(204, method="DELETE", url="http://x/api/v1/access_keys/" + AK)) is None
    bad = [
        # undocumented status
        fake(418, {"err": "x", "code": "teapot"}),
        # wrong body
        fake(200, {"status": "fine"}),
        # the required X-Request-Id missing
        fake(200, {"status": "ok"}, headers={"X-Request-Id": None}),
        # a list item leaking the secret, or an unknown member
        fake(200, [dict(KEY, secret="0" * 64)], url="http://x/api/v1/access_keys"),
        fake(200, [dict(KEY, hash="ab")], url="http://x/api/v1/access_keys"),
        fake(200, [dict(KEY, id="ak-xyz")], url="http://x/api/v1/access_keys"),
        fake(200, [dict(KEY, createdAt=1700000000)], url="http://x/api/v1/access_keys"),
        # an error body without err, or a code of another status, or a bad code
        fake(401, {"code": "unauthorized"}, url="http://x/api/v1/version"),
        fake(401, {"err": "x", "code": "forbidden"}, url="http://x/api/v1/version"),
        fake(409, {"err": "x", "code": "Last-Admin"}, method="DELETE",
             url="http://x/api/v1/access_keys/" + AK),
        # 429 without Retry-After
        fake(429, {"err": "x", "code": "too_many_attempts"}, url="http://x/api/v1/version"),
        # a 204 with a body, JSON that is not JSON, an undocumented media type
        fake(204, raw=b"{}", method="DELETE", url="http://x/api/v1/access_keys/" + AK),
        fake(200, raw=b"{not json"),
        fake(200, {"status": "ok"}, headers={"Content-Type": "text/html"}),
        # routing: a 200 on an unknown path, a 405 whose Allow is not the spec's
        fake(200, {"status": "ok"}, url="http://x/nope"),
        fake(405, {"err": "x", "code": "method_not_allowed"}, method="PUT",
             headers={"Allow": "GET"}, url="http://x/api/v1/access_keys"),
        # a credential whose secret is shown in plain, or without its version
        fake(200, {"_id": "a", "type": "ibmCloud", "accountGUID": "g",
                   "secret": {"plain": "s"}, "version": 1, "owner": AK,
                   "created": "2026-11-22T15:54:38Z", "lastModified": "2026-11-22T15:54:38Z"},
             url="http://x/api/v1/credentials/a"),
        fake(200, {"_id": "a", "type": "ibmCloud", "accountGUID": "g",
                   "secret": {"encrypted": "e"}, "owner": AK,
                   "created": "2026-11-22T15:54:38Z", "lastModified": "2026-11-22T15:54:38Z"},
             url="http://x/api/v1/credentials/a"),
    ]
    for r in bad:
        with pytest.raises(SpecViolation):
            check(r)
    cred = {"_id": "a", "type": "ibmCloud", "accountGUID": "g", "secret": {"encrypted": "e"},
            "version": 1, "owner": AK, "created": "2026-11-22T15:54:38Z",
            "lastModified": "2026-11-22T15:54:38Z"}
    assert check(fake(200, cred, url="http://x/api/v1/credentials/a"))["_id"] == "a"
    assert check(fake(405, {"err": "x", "code": "method_not_allowed"}, method="PUT",
                      headers={"Allow": "POST, GET"}, url="http://x/api/v1/access_keys"))
    assert check(fake(404, {"err": "x", "code": "no_route", "path": "/nope"}, url="http://x/nope"))
    oc.validate_schema({"seq": 1, "type": "updated", "credentialId": "a", "version": 2,
                        "at": "2026-11-22T15:54:38Z"}, "Event")
    with pytest.raises(SpecViolation):
        oc.validate_schema({"seq": 1, "type": "renamed", "credentialId": "a", "version": 2,
                            "at": "2026-11-22T15:54:38Z"}, "Event")


# ------------------------------------------------------- the live daemon

def basic(key_id, secret):
    return "Basic " + base64.b64encode(("%s:%s" % (key_id, secret)).encode()).decode()


@pytest.fixture
def d():
    dd = Daemon(serve_args=["--auth-max-failures", "1000"]).start()
    dd.admin_auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
    yield dd
    rc = dd.stop()
    log = dd.log()
    dd.close()
    assert rc == 0, "serve did not exit cleanly on SIGTERM:\n" + log[-4000:]


def new_key(d, role, **extra):
    body = dict({"name": "k-" + role, "role": role}, **extra)
    r = d.post("/api/v1/access_keys", json=body, headers=d.admin_auth)
    key = check(r, "POST", "/api/v1/access_keys")
    assert r.status_code == 201, r.text
    return key


def token(d, key):
    r = d.post("/api/v1/login", json={"username": key["id"], "password": key["secret"]})
    body = check(r, "POST", "/api/v1/login")
    assert r.status_code == 200, r.text
    return body["token"]


BIG = b"x" * (1024 * 1024 + 1)


def test_live_public_routes_and_routing(d):
    r = d.get("/healthz")
    assert r.status_code == 200 and check(r, "GET", "/healthz") == {"status": "ok"}
    r = d.get("/readyz")
    assert r.status_code == 200 and check(r, "GET", "/readyz") == {"status": "ready"}
    r = d.request("HEAD", "/healthz")
    assert r.status_code == 200 and check(r, "HEAD", "/healthz") is None
    for method, path in [("POST", "/healthz"), ("DELETE", "/readyz"), ("PUT", "/api/v1/login"),
                         ("GET", "/api/v1/login"), ("PUT", "/api/v1/access_keys"),
                         ("GET", "/api/v1/access_keys/" + d.admin["id"]),
                         ("POST", "/api/v1/version"), ("PATCH", "/api/v1/access_keys"),
                         ("OPTIONS", "/healthz")]:
        r = d.request(method, path, headers=d.admin_auth)
        assert_error(r, 405, "method_not_allowed")
        check(r, method, path)
    for path in ["/nope", "/api/v1/access_keys/", "/api/v1", "/healthz/x", "/api/v2/version"]:
        r = d.get(path, headers=d.admin_auth)
        assert_error(r, 404, "no_route")
        check(r, "GET", path)
    # Bodies over 1 MiB get 413, before routing or authentication.
    for method, path in [("POST", "/api/v1/login"), ("POST", "/api/v1/access_keys"),
                         ("GET", "/healthz"), ("POST", "/nope"), ("PUT", "/healthz")]:
        r = d.request(method, path, data=BIG)
        assert_error(r, 413, "body_too_large")
        check(r, method, path)


def test_live_login_extend_version(d):
    a = d.admin
    r = d.post("/api/v1/login", json={"username": a["id"], "password": a["secret"]})
    tok = check(r, "POST", "/api/v1/login")["token"]
    assert r.status_code == 200
    for headers in [{"Authorization": "Bearer " + tok}, {"x-redlock-auth": tok}, d.admin_auth]:
        r = d.get("/api/v1/auth_token/extend", headers=headers)
        assert r.status_code == 200 and check(r, "GET", "/api/v1/auth_token/extend")["token"]
        r = d.get("/api/v1/version", headers=headers)
        v = check(r, "GET", "/api/v1/version")
        assert r.status_code == 200 and v["schema"] >= 1 and v["version"]
    cases = [
        (d.post("/api/v1/login", json={"username": a["id"], "password": "0" * 64}), 401,
         "invalid_credentials"),
        (d.post("/api/v1/login", json={"username": "ak-nobody", "password": a["secret"]}), 401,
         "invalid_credentials"),
        (d.post("/api/v1/login", data=b"{not json"), 400, "malformed_json"),
        (d.post("/api/v1/login", json=["a"]), 400, "malformed_json"),
        (d.post("/api/v1/login", data=b"[" * 100 + b"]" * 100), 400, None),
        (d.post("/api/v1/login", json={"username": a["id"]}), 400, "missing_field"),
        (d.post("/api/v1/login", json={"username": 5, "password": "x"}), 400, None),
    ]
    for path in ["/api/v1/auth_token/extend", "/api/v1/version"]:
        cases += [
            (d.get(path), 401, "unauthorized"),
            (d.get(path, headers={"Authorization": "Digest abc"}), 401, "unauthorized"),
            (d.get(path, headers={"Authorization": "Bearer a.b.c"}), 401, "invalid_token"),
            (d.get(path, headers={"x-redlock-auth": tok + "x"}), 401, "invalid_token"),
            (d.get(path, headers={"Authorization": basic(a["id"], "f" * 64)}), 401,
             "invalid_credentials"),
        ]
    for r, status, code in cases:
        assert_error(r, status, code)
        check(r)


def test_live_access_keys(d):
    k = new_key(d, "operator", scope=["aws-*", "kube-staging"], expiresAt="2099-01-01T00:00:00Z")
    assert k["scope"] == ["aws-*", "kube-staging"] and k["expiresAt"] == "2099-01-01T00:00:00Z"
    ci = new_key(d, "ci")
    assert "scope" not in ci and "expiresAt" not in ci
    r = d.get("/api/v1/access_keys", headers=d.admin_auth)
    keys = check(r, "GET", "/api/v1/access_keys")
    assert r.status_code == 200 and {x["id"] for x in keys} >= {d.admin["id"], k["id"], ci["id"]}
    assert all("secret" not in x for x in keys)
    for bad in [{"role": "admin"}, {"name": "x"}, {"name": "x", "role": "root"},
                {"name": "x", "role": "ci", "scope": "aws-*"},
                {"name": "x", "role": "ci", "scope": ["a/b"]},
                {"name": "x", "role": "ci", "expiresAt": "tomorrow"}]:
        r = d.post("/api/v1/access_keys", json=bad, headers=d.admin_auth)
        assert_error(r, 400)
        check(r, "POST", "/api/v1/access_keys")
    r = d.post("/api/v1/access_keys", data=b"{", headers=d.admin_auth)
    assert_error(r, 400, "malformed_json")
    check(r, "POST", "/api/v1/access_keys")
    # ci (token and Basic) and no credentials at all.
    for headers, status in [({"x-redlock-auth": token(d, ci)}, 403),
                            ({"Authorization": basic(ci["id"], ci["secret"])}, 403),
                            ({}, 401)]:
        for method, path, tmpl in [("POST", "/api/v1/access_keys", None),
                                   ("GET", "/api/v1/access_keys", None),
                                   ("DELETE", "/api/v1/access_keys/" + k["id"],
                                    "/api/v1/access_keys/{id}")]:
            r = d.request(method, path, json={"name": "x", "role": "admin"}, headers=headers)
            assert_error(r, status)
            check(r, method, tmpl or path)
    r = d.delete("/api/v1/access_keys/" + d.admin["id"], headers=d.admin_auth)
    assert_error(r, 409, "last_admin_key")
    check(r, "DELETE", "/api/v1/access_keys/{id}")
    r = d.delete("/api/v1/access_keys/" + k["id"], headers=d.admin_auth)
    assert r.status_code == 204 and check(r, "DELETE", "/api/v1/access_keys/{id}") is None
    r = d.delete("/api/v1/access_keys/" + k["id"], headers=d.admin_auth)
    assert_error(r, 404, "not_found")
    check(r, "DELETE", "/api/v1/access_keys/{id}")


def test_live_rate_limited_authentication_gets_429_with_retry_after():
    dd = Daemon(serve_args=["--auth-max-failures", "2", "--auth-cooloff", "30"]).start()
    try:
        a = dd.admin
        for _ in range(2):
            r = dd.post("/api/v1/login", json={"username": a["id"], "password": "f" * 64})
            assert_error(r, 401, "invalid_credentials")
            check(r)
        r = dd.post("/api/v1/login", json={"username": a["id"], "password": a["secret"]})
        assert_error(r, 429, "too_many_attempts")
        check(r, "POST", "/api/v1/login")
        assert r.headers["Retry-After"] == "30"
        for path in ["/api/v1/version", "/api/v1/auth_token/extend", "/api/v1/access_keys"]:
            r = dd.get(path, headers={"Authorization": basic(a["id"], a["secret"])})
            assert_error(r, 429, "too_many_attempts")
            check(r, "GET", path)
    finally:
        rc = dd.stop()
        log = dd.log()
        dd.close()
    assert rc == 0, "serve did not exit cleanly on SIGTERM:\n" + log[-4000:]


def test_live_every_route_conforms_for_every_role(d):
    """Every row of the route table, without credentials and as each role,
    with an empty JSON body and unknown ids: each answer must be one the
    spec documents, and 403 must come exactly for the roles the spec does
    not list in x-credstore-roles."""
    keys = {role: new_key(d, role) for role in ALL_ROLES}
    auths = {role: {"x-redlock-auth": token(d, keys[role])} for role in ALL_ROLES}
    index = spec_index()
    seen = set()
    for method, pattern, macro, name in route_table():
        template, op = index[(method, normalize(pattern))]
        path = pattern.replace("/v{}/", "/v1/").replace("{}", "no-such-thing")
        roles = op.get("x-credstore-roles")
        # A redirect is checked as this route's answer, not where it leads.
        r = d.request(method, path, data=b"{}", allow_redirects=False)
        check(r, method, template)
        if roles is not None:
            assert r.status_code == 401, \
                "%s needs authentication per the spec, got %d: %s" % (name, r.status_code, r.text[:200])
            if not name.startswith("prisma_"):
                assert_error(r, 401, "unauthorized")
        else:
            assert r.status_code not in (401, 403), (name, r.status_code, r.text[:300])
        for role in sorted(ALL_ROLES):
            r = d.request(method, path, data=b"{}", headers=auths[role], allow_redirects=False)
            check(r, method, template)
            seen.add((name, r.status_code))
            if roles is not None and role not in roles:
                if name.startswith("prisma_"):
                    assert r.status_code == 403 and set(r.json()) == {"err"}, (name, r.text)
                else:
                    assert_error(r, 403, "forbidden")
            else:
                assert r.status_code not in (401, 403), (name, role, r.status_code, r.text[:300])
    assert len(seen) >= len(route_table())


# ------------------------------------------- credentials, usages, resolve

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures")
CREDS = "/api/v1/credentials"
ONE = CREDS + "/{id}"


def fixture_text(name):
    with open(os.path.join(FIX, name)) as f:
        return f.read()


def cred_bodies():
    """One valid body per type and shape (API.md §3)."""
    return {
        "aws-static": {"type": "aws", "accountID": "AKIAIOSFODNN7EXAMPLE",
                       "secret": {"plain": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"},
                       "description": "prod account"},
        "aws-role": {"type": "aws", "useAWSRole": True,
                     "roleArn": "arn:aws:iam::123456789012:role/scanner",
                     "externalID": "ext-42", "durationSeconds": 1800,
                     "useSTSRegionalEndpoint": True, "region": "eu-west-1"},
        "azure-sp": {"type": "azure", "secret": {"plain": fixture_text("azure-sdk-auth.json")}},
        "gcp-sa": {"type": "gcp", "secret": {"plain": fixture_text("gcp-service-account.json")}},
        "gcp-token": {"type": "gcp", "apiToken": {"plain": "AIzaSyD-test-api-token-1234567890"}},
        "ibm-1": {"type": "ibmCloud", "accountGUID": "0123456789abcdef0123456789abcdef",
                  "secret": {"plain": "ibm-api-key-abcdefghijklmnopqrstuvwxyz012345"}},
        "kube-token": {"type": "kubeconfig",
                       "secret": {"plain": fixture_text("kubeconfig-token.yaml")}},
    }


def implemented(*names):
    have = {row[3] for row in route_table()}
    missing = set(names) - have
    if missing:
        pytest.skip("not in server/api/routes.c yet: %s" % ", ".join(sorted(missing)))


def test_live_credentials(d):
    implemented("credentials_list", "credentials_get", "credentials_upsert",
                "credentials_update", "credentials_delete")
    adm = d.admin_auth
    scoped = new_key(d, "operator", scope=["aws-*", "kube-*"])
    scoped_auth = {"Authorization": basic(scoped["id"], scoped["secret"])}
    auditor = new_key(d, "auditor")
    aud_auth = {"Authorization": basic(auditor["id"], auditor["secret"])}
    ci = new_key(d, "ci")
    ci_auth = {"Authorization": basic(ci["id"], ci["secret"])}
    bodies = cred_bodies()
    created = {}
    for cid, body in bodies.items():
        r = d.post(CREDS, json=dict(body, _id=cid), headers=adm)
        c = check(r, "POST", CREDS)
        assert r.status_code == 201 and c["type"] == body["type"], (cid, r.text[:300])
        created[cid] = c
        r = d.get(CREDS + "/" + cid, headers=aud_auth)
        assert r.status_code == 200 and check(r, "GET", ONE) == c
    # Upsert of an existing id: 200; a GET answer sent back keeps the secret.
    r = d.post(CREDS, json=dict(created["ibm-1"], description="edited"), headers=adm)
    c = check(r, "POST", CREDS)
    assert r.status_code == 200 and c["version"] == 2
    assert c["secret"] == created["ibm-1"]["secret"]
    # Lists, Total-Count, filters.
    r = d.get(CREDS, params={"limit": 2, "sort": "created", "reverse": "true"}, headers=adm)
    page = check(r, "GET", CREDS)
    assert len(page) == 2 and int(r.headers["Total-Count"]) == len(bodies)
    r = d.get(CREDS, params={"type": "gcp", "search": "gcp"}, headers=aud_auth)
    assert {c["_id"] for c in check(r, "GET", CREDS)} == {"gcp-sa", "gcp-token"}
    r = d.get(CREDS, headers=scoped_auth)
    assert {c["_id"] for c in check(r, "GET", CREDS)} == {"aws-static", "aws-role", "kube-token"}
    for q in [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"type": "vault"},
              {"sort": "size"}, {"reverse": "maybe"}, {"search": "x" * 129}]:
        r = d.get(CREDS, params=q, headers=adm)
        assert_error(r, 400, "invalid_query")
        check(r, "GET", CREDS)
    # PUT with If-Match, 412, a malformed If-Match, a body _id of another record.
    kube = created["kube-token"]
    path = CREDS + "/kube-token"
    r = d.put(path, json=dict(kube, description="v2"),
              headers=dict(adm, **{"If-Match": str(kube["version"])}))
    assert r.status_code == 200 and check(r, "PUT", ONE)["version"] == kube["version"] + 1
    for headers, status, code in [({"If-Match": str(kube["version"])}, 412, "precondition_failed"),
                                  ({"If-Match": "abc"}, 400, None)]:
        r = d.put(path, json=dict(kube, description="v3"), headers=dict(adm, **headers))
        assert_error(r, status, code)
        check(r, "PUT", ONE)
    bad_puts = [
        (path, dict(kube, _id="other"), 400),
        (path, dict(kube, secret={"encrypted": created["aws-static"]["secret"]["encrypted"]}), 400),
        (path, {"type": "kubeconfig", "secret": {"plain": "not: [a kubeconfig"}}, 400),
        (CREDS + "/no-such-credential", {"type": "ibmCloud", "accountGUID": "g",
                                          "secret": {"plain": "k" * 20}}, 404),
        (CREDS + "/" + "x" * 129, {"type": "ibmCloud"}, 400),
    ]
    for p, body, status in bad_puts:
        r = d.put(p, json=body, headers=adm)
        assert_error(r, status)
        check(r, "PUT", ONE)
    # POST errors name the field.
    bad_posts = [
        ({"type": "aws", "accountID": "AKIAIOSFODNN7EXAMPLE", "secret": {"plain": "s"}}, "_id"),
        (dict(bodies["aws-role"], _id="aws-x", roleArn="arn:nope"), "roleArn"),
        (dict(bodies["aws-role"], _id="aws-x", durationSeconds=5), "durationSeconds"),
        ({"_id": "az-x", "type": "azure", "secret": {"plain": "{}"}}, None),
        ({"_id": "bad/id!", "type": "ibmCloud", "accountGUID": "g", "secret": {"plain": "k"}},
         None),
        ({"_id": "t-x", "type": "vault"}, None),
    ]
    for body, field in bad_posts:
        r = d.post(CREDS, json=body, headers=adm)
        err = assert_error(r, 400)
        check(r, "POST", CREDS)
        if field:
            assert err.get("field") == field, err
    r = d.post(CREDS, data=b'{"_id": ', headers=adm)
    assert_error(r, 400, "malformed_json")
    check(r, "POST", CREDS)
    # Roles and scope.
    for method, p, tmpl, auth, status in [
            ("POST", CREDS, CREDS, aud_auth, 403),
            ("POST", CREDS, CREDS, ci_auth, 403),
            ("GET", CREDS, CREDS, ci_auth, 403),
            ("GET", CREDS + "/ibm-1", ONE, ci_auth, 403),
            ("DELETE", CREDS + "/ibm-1", ONE, aud_auth, 403),
            ("PUT", CREDS + "/ibm-1", ONE, aud_auth, 403),
            ("GET", CREDS + "/ibm-1", ONE, scoped_auth, 404),
            ("DELETE", CREDS + "/ibm-1", ONE, scoped_auth, 404),
            ("POST", CREDS, CREDS, scoped_auth, 403),  # an _id outside the scope
            ("GET", CREDS + "/ibm-1", ONE, {}, 401)]:
        r = d.request(method, p, json=dict(bodies["ibm-1"], _id="ibm-1"), headers=auth)
        assert_error(r, status)
        check(r, method, tmpl)
    r = d.delete(CREDS + "/gcp-token", headers=adm)
    assert r.status_code == 204 and check(r, "DELETE", ONE) is None
    for method in ("GET", "DELETE"):
        r = d.request(method, CREDS + "/gcp-token", headers=adm)
        assert_error(r, 404, "not_found")
        check(r, method, ONE)
    r = d.get(CREDS + "/" + "x" * 129, headers=adm)
    assert_error(r, 400, "invalid_id")
    check(r, "GET", ONE)


def test_live_usages_resolve_events_audit(d):
    implemented("credentials_upsert", "usages_create", "usages_list", "usages_delete",
                "resolve", "events", "audit")
    adm = d.admin_auth
    ci = new_key(d, "ci")
    ci_auth = {"Authorization": basic(ci["id"], ci["secret"])}
    USAGES, USAGE = ONE + "/usages", ONE + "/usages/{usageId}"
    RESOLVE = ONE + "/resolve"
    bodies = {k: v for k, v in cred_bodies().items() if k != "aws-role"}  # aws-role needs IMDS
    usage_of = {}
    for cid, body in bodies.items():
        r = d.post(CREDS, json=dict(body, _id=cid), headers=adm)
        assert r.status_code == 201, r.text
        r = d.post(CREDS + "/%s/usages" % cid, json={"type": "Registry Scan"}, headers=ci_auth)
        u = check(r, "POST", USAGES)
        assert r.status_code == 201 and "callbackSecret" not in u and u["seenVersion"] == 0
        usage_of[cid] = u["id"]
        r = d.post(CREDS + "/%s/resolve" % cid, json={"usageId": u["id"]}, headers=ci_auth)
        m = check(r, "POST", RESOLVE)
        assert r.status_code == 200 and m["type"] == body["type"], r.text
    r = d.post(CREDS + "/ibm-1/usages", headers=adm,
               json={"type": "Alert profile", "description": "hook",
                     "callbackUrl": "http://127.0.0.1:9/hook"})
    hooked = check(r, "POST", USAGES)
    assert r.status_code == 201 and len(hooked["callbackSecret"]) >= 32
    # An update makes the resolved usage stale.
    r = d.post(CREDS, json=dict(bodies["ibm-1"], _id="ibm-1", description="v2"), headers=adm)
    assert r.status_code == 200
    r = d.get(CREDS + "/ibm-1/usages", headers=adm)
    listed = {u["id"]: u for u in check(r, "GET", USAGES)}
    assert listed[usage_of["ibm-1"]]["stale"] is True and listed[usage_of["ibm-1"]]["resolveCount"] == 1
    assert all("callbackSecret" not in u for u in listed.values())
    # In use: 409 with the usages.
    r = d.delete(CREDS + "/ibm-1", headers=adm)
    err = assert_error(r, 409, "credential_in_use")
    check(r, "DELETE", ONE)
    assert {u["id"] for u in err["usages"]} == set(listed)
    errors = [
        ("POST", CREDS + "/ibm-1/resolve", RESOLVE, {}, 400),
        ("POST", CREDS + "/ibm-1/resolve", RESOLVE, {"usageId": usage_of["kube-token"]}, 400),
        ("POST", CREDS + "/ibm-1/resolve", RESOLVE,
         {"usageId": usage_of["ibm-1"], "durationSeconds": 1}, 400),
        ("POST", CREDS + "/nope/resolve", RESOLVE, {"usageId": usage_of["ibm-1"]}, 404),
        ("POST", CREDS + "/ibm-1/usages", USAGES, {"description": "no type"}, 400),
        ("POST", CREDS + "/ibm-1/usages", USAGES, {"type": "x", "callbackUrl": "ftp://h/"}, 400),
        ("POST", CREDS + "/nope/usages", USAGES, {"type": "x"}, 404),
        ("GET", CREDS + "/nope/usages", USAGES, None, 404),
        ("DELETE", CREDS + "/ibm-1/usages/u-nope", USAGE, None, 404),
    ]
    for method, p, tmpl, body, status in errors:
        r = d.request(method, p, json=body, headers=adm)
        assert_error(r, status)
        check(r, method, tmpl)
    for method, p, tmpl in [("GET", CREDS + "/ibm-1/usages", USAGES),
                            ("GET", "/api/v1/events", "/api/v1/events"),
                            ("GET", "/api/v1/audit", "/api/v1/audit")]:
        r = d.request(method, p, headers=ci_auth)
        assert_error(r, 403, "forbidden")
        check(r, method, tmpl)
    # Events and audit.
    r = d.get("/api/v1/events", params={"since": 0}, headers=adm)
    page = check(r, "GET", "/api/v1/events")
    types = {e["type"] for e in page["events"]}
    assert {"created", "updated", "usage_added"} <= types and page["next"] >= len(page["events"])
    r = d.get("/api/v1/events", params={"since": page["next"], "wait": 1}, headers=adm)
    assert check(r, "GET", "/api/v1/events")["events"] == []
    for q in [{"since": "x"}, {"wait": 61}, {"credential": "bad/id!"}]:
        r = d.get("/api/v1/events", params=q, headers=adm)
        assert_error(r, 400, "invalid_query")
        check(r, "GET", "/api/v1/events")
    r = d.get("/api/v1/audit", params={"limit": 1000}, headers=adm)
    entries = check(r, "GET", "/api/v1/audit")
    assert any(e["action"] == "resolve" for e in entries), entries[:3]
    for q in [{"limit": 0}, {"since": "x"}]:
        r = d.get("/api/v1/audit", params=q, headers=adm)
        assert_error(r, 400, "invalid_query")
        check(r, "GET", "/api/v1/audit")
    # Removing the usages frees the credential.
    for uid in listed:
        r = d.delete(CREDS + "/ibm-1/usages/" + uid, headers=ci_auth)
        assert r.status_code == 204 and check(r, "DELETE", USAGE) is None
    r = d.delete(CREDS + "/ibm-1", headers=adm)
    assert r.status_code == 204 and check(r, "DELETE", ONE) is None


def test_live_aws_container_credentials(d):
    implemented("aws_container_credentials", "usages_create")
    adm = d.admin_auth
    body = cred_bodies()["aws-static"]
    r = d.post(CREDS, json=dict(body, _id="aws-static"), headers=adm)
    assert r.status_code == 201
    u = d.post(CREDS + "/aws-static/usages", json={"type": "Cloud Scan"}, headers=adm).json()
    tmpl = "/api/v1/aws/container-credentials/{id}"
    r = d.get("/api/v1/aws/container-credentials/aws-static", params={"usage": u["id"]},
              headers=adm)
    got = check(r, "GET", tmpl)
    assert r.status_code == 200 and got["AccessKeyId"] == body["accountID"]
    for params, headers, status in [({}, adm, 400), ({"usage": "u-nope"}, adm, 400),
                                    ({"usage": u["id"]}, {}, 401)]:
        r = d.get("/api/v1/aws/container-credentials/aws-static", params=params, headers=headers)
        assert_error(r, status)
        check(r, "GET", tmpl)


def test_live_metrics(d):
    implemented("metrics")
    r = d.get("/metrics", headers=d.admin_auth)
    text = check(r, "GET", "/metrics")
    assert r.status_code == 200 and "# TYPE" in text
    r = d.get("/metrics")
    check(r, "GET", "/metrics")
