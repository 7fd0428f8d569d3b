"""Issue 15 through the real daemon: "Test connection" for every type,
resolve formats "token" and "session" with scope/scopes, usages whose
material is "token" only, the serve options for the clouds' endpoints, the
per-kind /metrics counters and the AWS refresh window, against the loopback
doubles of token_doubles.py and aws_doubles.py (which verify what they
receive: Entra's client id, secret and scope; Google's RS256 assertion with
the key's public key; IBM's grant and API key; STS requests re-signed with
botocore; a TLS Kubernetes API server with its own CA)."""
import base64
import datetime
import json
import os
import subprocess
import threading
import time

import pytest

from aws_doubles import STSDouble
from harness import BIN, SLOW, Daemon, assert_error, basic
from token_doubles import EntraDouble, GoogleDouble, IBMDouble, KubeDouble, Pki, new_service_account

TENANT = "8f2c1d3e-6a7b-4c5d-9e0f-123456789abc"
CLIENT_ID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
CLIENT_SECRET = "Zx9~Q2w.E3r-T4y_U5i6O7p8A9s0D1f2G3h4J5k"
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
APIKEY = "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z-_ApiKeyExample0"
AKID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
USER_ARN = "arn:aws:iam::123456789012:user/scanner"
ROLE = "arn:aws:iam::123456789012:role/credstore-scanner"
KUBE_TOKEN = "kube-token-s3cret-0123456789"
ARM = "https://management.azure.com/.default"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def sdk_auth(secret=CLIENT_SECRET):
    return json.dumps({"clientId": CLIENT_ID, "clientSecret": secret, "tenantId": TENANT,
                       "subscriptionId": SUBSCRIPTION})


def kubeconfig(server, ca_pem, token):
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "c", "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}]})


def epoch(iso):
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class Env:
    """One daemon pointed at every double."""

    def __init__(self, tmp, extra=()):
        self.tmp = tmp
        self.sts = STSDouble({AKID: AWS_SECRET}, arns={AKID: USER_ARN})
        self.entra = EntraDouble(TENANT, CLIENT_ID, CLIENT_SECRET)
        self.sa, key = new_service_account()
        self.google = GoogleDouble(self.sa, key.public_key())
        self.ibm = IBMDouble(APIKEY)
        self.pki = Pki(tmp)
        self.kube = KubeDouble(self.pki, token=KUBE_TOKEN)
        self.d = Daemon(serve_args=[
            "--sts-endpoint", self.sts.url, "--azure-authority-host", self.entra.url,
            "--gcp-token-url", self.google.token_url, "--ibm-iam-endpoint", self.ibm.url,
            # Per outbound call: TLS handshakes under valgrind take seconds.
            "--outbound-timeout", str(5 * SLOW), *extra]).start()
        self.auth = {"Authorization": basic(self.d.admin["id"], self.d.admin["secret"])}

    def put(self, cid, **body):
        r = self.d.post("/api/v1/credentials", json=dict(body, _id=cid), headers=self.auth)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def usage(self, cid, **extra):
        r = self.d.post("/api/v1/credentials/%s/usages" % cid,
                        json=dict({"type": "Cloud Scan"}, **extra), headers=self.auth)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def resolve(self, cid, uid, **kw):
        return self.d.post("/api/v1/credentials/%s/resolve" % cid, json=dict(kw, usageId=uid),
                           headers=self.auth)

    def test(self, cid, headers=None):
        return self.d.post("/api/v1/credentials/%s/test" % cid, headers=headers or self.auth)

    def audit(self, cid=None):
        q = "&credential=" + cid if cid else ""
        r = self.d.get("/api/v1/audit?limit=1000" + q, headers=self.auth)
        assert r.status_code == 200, r.text
        return r.json()

    def usage_rec(self, cid, uid):
        return [u for u in self.d.get("/api/v1/credentials/%s/usages" % cid,
                                      headers=self.auth).json() if u["id"] == uid][0]

    def creds(self):
        """One credential of each cloud type."""
        self.put("aws-keys", type="aws", accountID=AKID, secret={"plain": AWS_SECRET})
        self.put("aws-role", type="aws", accountID=AKID, secret={"plain": AWS_SECRET},
                 roleArn=ROLE)
        self.put("az", type="azure", secret={"plain": sdk_auth()})
        self.put("gcp", type="gcp", secret={"plain": json.dumps(self.sa)})
        self.put("ibm", type="ibmCloud", accountGUID="0123456789abcdef",
                 secret={"plain": APIKEY})
        self.put("kube", type="kubeconfig",
                 secret={"plain": kubeconfig(self.kube.url, self.pki.ca_pem, KUBE_TOKEN)})

    def close(self):
        try:
            rc = self.d.stop()
            assert rc == 0, self.d.log()[-3000:]
            log = self.d.log()
            for s in (AWS_SECRET, CLIENT_SECRET, APIKEY, KUBE_TOKEN, self.sa["private_key"][40:90]):
                assert s not in log, "a secret is in the daemon's log"
            for t in self.entra.issued + self.google.issued + self.ibm.issued:
                assert t not in log, "an issued token is in the daemon's log"
            assert "AddressSanitizer" not in log and "runtime error" not in log
        finally:
            self.d.close()
            for s in (self.sts, self.entra, self.google, self.ibm, self.kube):
                s.close()


@pytest.fixture
def env(tmp_path):
    e = Env(str(tmp_path))
    yield e
    e.close()


SECRETS = (AWS_SECRET, CLIENT_SECRET, APIKEY, KUBE_TOKEN)


def no_secret(text, env):
    for s in SECRETS + (env.sa["private_key"][40:90],):
        assert s not in text, "a secret in: " + text[:300]


# ------------------------------------------------------------ Test connection

def test_test_connection_of_every_type_succeeds(env):
    env.creds()
    expect = {"aws-keys": USER_ARN,
              "aws-role": ROLE.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/"),
              "az": CLIENT_ID, "gcp": env.sa["client_email"], "ibm": None,
              "kube": env.kube.git_version}
    for cid, identity in expect.items():
        r = env.test(cid)
        assert r.status_code == 200, (cid, r.text)
        t = r.json()
        assert t["ok"] is True, (cid, t)
        assert isinstance(t["latencyMs"], int) and t["latencyMs"] >= 0 and t["message"]
        assert "code" not in t
        if identity:
            assert t["identity"].startswith(identity), (cid, t)
        no_secret(r.text, env)
    # What each upstream was asked, the way it checks it.
    assert [r["form"]["Action"] for r in env.sts.requests] == \
        ["GetCallerIdentity", "GetCallerIdentity", "AssumeRole"]
    assert all(r["verified"] for r in env.sts.requests)
    assert env.entra.requests[-1]["scope"] == ARM
    assert env.google.requests[-1]["jwt_claims"]["iss"] == env.sa["client_email"]
    assert env.ibm.requests[-1]["form"]["apikey"] == APIKEY
    assert env.kube.requests[-1]["authorization"] == "Bearer " + KUBE_TOKEN
    # A test is never answered from a cache: a second one calls again.
    n = env.entra.calls
    assert env.test("az").json()["ok"] is True and env.entra.calls == n + 1
    # Audited, one entry per test, as a success.
    for cid in expect:
        tests = [a for a in env.audit(cid) if a["action"] == "test"]
        assert [a["result"] for a in tests] == ["success"] * (2 if cid == "az" else 1), (cid, tests)
        assert tests[0]["actor"] == env.d.admin["id"]


def test_test_connection_failures_carry_the_upstream_code_and_no_secret(env):
    env.creds()
    env.put("aws-bad", type="aws", accountID="AKIAI44QH8DHBEXAMPLE",
            secret={"plain": "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"})
    env.put("az", type="azure", secret={"plain": sdk_auth("wrong-secret-0123456789")})
    other, _ = new_service_account()
    env.put("gcp", type="gcp", secret={"plain": json.dumps(other)})
    env.put("ibm", type="ibmCloud", accountGUID="0123456789abcdef",
            secret={"plain": "not-the-api-key-0123456789"})
    env.put("kube", type="kubeconfig",
            secret={"plain": kubeconfig(env.kube.url, env.pki.ca_pem, "wrong-kube-token")})
    env.entra.echo_secret = True  # a careless upstream repeating what it was sent
    expect = {"aws-bad": ("InvalidClientTokenId", "security token"),
              "az": ("invalid_client", "AADSTS7000215"),
              "gcp": ("invalid_grant", ""),
              "ibm": ("BXNIM0415E", "API key could not be found"),
              "kube": ("Unauthorized", "401")}
    for cid, (code, words) in expect.items():
        r = env.test(cid)
        assert r.status_code == 200, (cid, r.text)
        t = r.json()
        assert t["ok"] is False and t["code"] == code, (cid, t)
        assert words in t["message"], (cid, t)
        assert "wrong-secret-0123456789" not in r.text and "not-the-api-key" not in r.text
        assert "je7MtGbClwBF" not in r.text and "wrong-kube-token" not in r.text
        no_secret(r.text, env)
        assert [a["result"] for a in env.audit(cid) if a["action"] == "test"] == ["failure"]
    # A role the credential may not assume: AssumeRole's refusal is the answer.
    env.sts.deny_after = env.sts.calls + 1
    t = env.test("aws-role").json()
    assert t["ok"] is False and t["code"] == "AccessDenied", t
    # An unreachable endpoint is a result too, not a 5xx.
    env.kube.close()
    t = env.test("kube").json()
    assert t["ok"] is False and t["code"], t
    env.kube = KubeDouble(env.pki, token=KUBE_TOKEN)
    audit = json.dumps(env.audit())
    for s in ("wrong-secret-0123456789", "not-the-api-key", "wrong-kube-token") + SECRETS:
        assert s not in audit


def test_test_connection_refusals(env):
    env.creds()
    assert_error(env.test("no-such-cred"), 404, "not_found")
    assert_error(env.test("bad%00id"), 400)
    from test_auth import new_key
    for role in ("auditor", "ci"):
        k = new_key(env.d, env.auth["Authorization"], role)
        assert_error(env.test("az", {"Authorization": basic(k["id"], k["secret"])}), 403,
                     "forbidden")
    op = new_key(env.d, env.auth["Authorization"], "operator")
    assert env.test("az", {"Authorization": basic(op["id"], op["secret"])}).json()["ok"] is True
    scoped = new_key(env.d, env.auth["Authorization"], "operator", scope=["aws-*"])
    h = {"Authorization": basic(scoped["id"], scoped["secret"])}
    assert_error(env.test("az", h), 404)
    assert env.test("aws-keys", h).json()["ok"] is True
    # Refused requests make no call and are not audited.
    assert [a for a in env.audit("az") if a["action"] == "test"][-1]["actor"] == op["id"]


# ------------------------------------------------------------ token formats

def test_azure_token_scope_cache_and_invalidation(env):
    env.creds()
    uid = env.usage("az")
    r = env.resolve("az", uid, format="token")
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["accessToken"] == env.entra.issued[-1] and m["tokenType"] == "Bearer"
    assert m["scope"] == ARM and m["type"] == "azure" and m["version"] == 1
    assert abs(epoch(m["expiresOn"]) - (time.time() + env.entra.expires_in)) < 30
    assert CLIENT_SECRET not in r.text
    req = env.entra.requests[-1]
    assert req["form"]["client_id"] == CLIENT_ID and req["form"]["client_secret"] == CLIENT_SECRET
    # Cache hit: no call.
    for _ in range(3):
        assert env.resolve("az", uid, format="token").json()["accessToken"] == m["accessToken"]
    assert env.entra.calls == 1
    # Another scope is another cache entry.
    r = env.resolve("az", uid, format="token", scope="https://vault.azure.net/.default")
    assert r.status_code == 200 and r.json()["scope"] == "https://vault.azure.net/.default"
    assert env.entra.requests[-1]["scope"] == "https://vault.azure.net/.default"
    assert env.entra.calls == 2 and r.json()["accessToken"] != m["accessToken"]
    # An edit invalidates: the next resolve fetches for version 2.
    env.put("az", type="azure", secret={"plain": sdk_auth()}, description="edited")
    m2 = env.resolve("az", uid, format="token").json()
    assert env.entra.calls == 3 and m2["accessToken"] != m["accessToken"] and m2["version"] == 2
    # Without format: the stored secret, as before.
    assert env.resolve("az", uid).json()["clientSecret"] == CLIENT_SECRET
    # Every resolve is audited.
    assert len([a for a in env.audit("az") if a["action"] == "resolve"]) == 7
    # Entra's refusal of a scope: 502 with its code, audited as a failure.
    err = assert_error(env.resolve("az", uid, format="token", scope="https://x.example/read"),
                       502, "upstream_error")
    assert err["upstreamCode"] == "invalid_scope"
    assert env.audit("az")[-1]["result"] == "failure"


def test_gcp_and_ibm_tokens(env):
    env.creds()
    g = env.usage("gcp")
    m = env.resolve("gcp", g, format="token").json()
    assert m["accessToken"] == env.google.issued[-1] and m["scopes"] == [CLOUD_PLATFORM]
    assert m["tokenType"] == "Bearer" and m["type"] == "gcp" and "expiresAt" in m
    claims = env.google.requests[-1]["jwt_claims"]
    assert claims["scope"] == CLOUD_PLATFORM and claims["aud"] == env.google.token_url
    assert env.google.requests[-1]["jwt_header"]["kid"] == env.sa["private_key_id"]
    scopes = ["https://www.googleapis.com/auth/devstorage.read_only",
              "https://www.googleapis.com/auth/compute.readonly"]
    m2 = env.resolve("gcp", g, format="token", scopes=scopes).json()
    assert m2["scopes"] == scopes and env.google.requests[-1]["scope"] == " ".join(scopes)
    assert env.resolve("gcp", g, format="token", scopes=scopes).json() == m2
    assert env.google.calls == 2
    assert env.sa["private_key"][40:90] not in json.dumps(m2)
    i = env.usage("ibm")
    m = env.resolve("ibm", i, format="token").json()
    assert m == {"type": "ibmCloud", "accessToken": env.ibm.issued[-1], "tokenType": "Bearer",
                 "expiresAt": m["expiresAt"], "version": 1}
    assert env.ibm.requests[-1]["form"] == {
        "grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": APIKEY}
    assert env.resolve("ibm", i, format="token").json() == m and env.ibm.calls == 1


def test_bad_format_scope_and_scopes_are_400_and_record_nothing(env):
    env.creds()
    uids = {c: env.usage(c) for c in ("az", "gcp", "ibm", "kube", "aws-keys", "aws-role")}
    cases = [
        ("az", {"format": "Token"}, "format"), ("az", {"format": 1}, "format"),
        ("az", {"format": "secret"}, "format"), ("az", {"format": "session"}, "format"),
        ("az", {"format": "token", "scope": "has space/.default"}, "scope"),
        ("az", {"format": "token", "scope": ""}, "scope"),
        ("az", {"format": "token", "scope": "x" * 1025}, "scope"),
        ("az", {"format": "token", "scope": ["a"]}, "scope"),
        ("az", {"scope": ARM}, "scope"),
        ("gcp", {"format": "token", "scopes": "https://x"}, "scopes"),
        ("gcp", {"format": "token", "scopes": []}, "scopes"),
        ("gcp", {"format": "token", "scopes": [""]}, "scopes"),
        ("gcp", {"format": "token", "scopes": [1]}, "scopes"),
        ("gcp", {"format": "token", "scopes": ["a b"]}, "scopes"),
        ("gcp", {"format": "token", "scopes": ["s"] * 33}, "scopes"),
        ("gcp", {"format": "token", "scopes": ["x" * 257]}, "scopes"),
        ("gcp", {"scopes": [CLOUD_PLATFORM]}, "scopes"),
        ("kube", {"format": "token"}, "format"), ("ibm", {"format": "session"}, "format"),
        ("aws-keys", {"format": "token"}, "format"),
        ("aws-role", {"format": "session"}, "format"),
    ]
    before = {c: env.audit(c) for c in uids}
    for cid, body, field in cases:
        err = assert_error(env.resolve(cid, uids[cid], **body), 400)
        assert err.get("field") == field, (cid, body, err)
    for cid in uids:
        assert env.audit(cid) == before[cid], cid
        assert env.usage_rec(cid, uids[cid])["resolveCount"] == 0
    assert env.entra.calls == env.google.calls == env.ibm.calls == env.sts.calls == 0


def test_concurrent_cold_token_resolves_make_one_call(env):
    env.creds()
    uid = env.usage("az")
    env.entra.delay = 0.5
    out, errs = [], []

    def one():
        try:
            r = env.resolve("az", uid, format="token")
            out.append(r.json()["accessToken"] if r.status_code == 200 else r.text)
        except Exception as e:  # noqa: BLE001 - reported below
            errs.append(repr(e))

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLOW)
    assert not errs, errs[:3]
    assert len(out) == 50 and set(out) == {env.entra.issued[0]}, set(out)
    assert env.entra.calls == 1
    assert env.usage_rec("az", uid)["resolveCount"] == 50


def test_session_format_is_get_session_token_cached(env):
    env.creds()
    uid = env.usage("aws-keys")
    m = env.resolve("aws-keys", uid, format="session").json()
    issued = env.sts.issued[-1]
    assert m == {"type": "aws", "AccessKeyId": issued["AccessKeyId"],
                 "SecretAccessKey": issued["SecretAccessKey"],
                 "SessionToken": issued["SessionToken"], "Expiration": issued["Expiration"],
                 "version": 1}
    assert env.sts.requests[-1]["form"]["Action"] == "GetSessionToken"
    assert env.sts.requests[-1]["verified"] is True
    assert env.resolve("aws-keys", uid, format="session").json() == m
    assert env.sts.calls == 1


# ------------------------------------------------------------ token-only usages

def test_token_only_usages(env, tmp_path):
    env.creds()
    plain = env.usage("az")
    tok = env.usage("az", material="token")
    listed = env.usage_rec("az", tok)
    assert listed["material"] == "token" and env.usage_rec("az", plain)["material"] == "secret"
    before = env.audit("az")
    for body in ({}, {"format": None}):
        err = assert_error(env.resolve("az", tok, **body), 403, "token_only_usage")
        assert tok in err["err"]
    assert env.audit("az") == before and env.usage_rec("az", tok)["resolveCount"] == 0
    m = env.resolve("az", tok, format="token").json()
    assert m["accessToken"] == env.entra.issued[-1] and "clientSecret" not in m
    assert env.usage_rec("az", tok)["resolveCount"] == 1
    assert env.resolve("az", plain).json()["clientSecret"] == CLIENT_SECRET
    # gcp, ibmCloud, kubeconfig: the same rule.
    for cid, ok in (("gcp", True), ("ibm", True), ("kube", False)):
        u = env.usage(cid, material="token")
        assert_error(env.resolve(cid, u), 403, "token_only_usage")
        if ok:
            assert env.resolve(cid, u, format="token").status_code == 200
    # aws: static keys only through GetSessionToken; a role's STS credentials are fine.
    ak = env.usage("aws-keys", material="token")
    assert_error(env.resolve("aws-keys", ak), 403, "token_only_usage")
    assert env.sts.calls == 0
    s = env.resolve("aws-keys", ak, format="session").json()
    assert s["AccessKeyId"].startswith("ASIA") and s["SecretAccessKey"] != AWS_SECRET
    ar = env.usage("aws-role", material="token")
    assert env.resolve("aws-role", ar).json()["SessionToken"]
    # The container-credentials route and credential-process follow the rule.
    r = env.d.get("/api/v1/aws/container-credentials/aws-keys?usage=" + ak, headers=env.auth)
    assert_error(r, 403, "token_only_usage")
    r = env.d.get("/api/v1/aws/container-credentials/aws-role?usage=" + ar, headers=env.auth)
    assert r.status_code == 200 and r.json()["Token"]
    penv = dict(os.environ, CREDSTORE_ACCESS_KEY_ID=env.d.admin["id"],
                CREDSTORE_ACCESS_KEY_SECRET=env.d.admin["secret"])
    p = subprocess.run([BIN, "credential-process", "--url", env.d.url, "--credential",
                        "aws-keys", "--usage", ak], capture_output=True, text=True, env=penv,
                       timeout=60 * SLOW)
    assert p.returncode == 1 and "403" in p.stderr and AWS_SECRET not in p.stdout + p.stderr
    p = subprocess.run([BIN, "credential-process", "--url", env.d.url, "--credential",
                        "aws-role", "--usage", ar], capture_output=True, text=True, env=penv,
                       timeout=60 * SLOW)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["SessionToken"]
    # Bad material values are 400 naming the field, and register nothing.
    n = len(env.d.get("/api/v1/credentials/az/usages", headers=env.auth).json())
    for bad in ("Token", "", "tokens", 1, True, ["token"], {"x": 1}):
        r = env.d.post("/api/v1/credentials/az/usages", json={"type": "x", "material": bad},
                       headers=env.auth)
        assert assert_error(r, 400)["field"] == "material", bad
    assert len(env.d.get("/api/v1/credentials/az/usages", headers=env.auth).json()) == n


def test_material_survives_a_restart(env):
    env.creds()
    tok = env.usage("ibm", material="token")
    env.d.stop()
    env.d.start()
    assert env.usage_rec("ibm", tok)["material"] == "token"
    assert_error(env.resolve("ibm", tok), 403, "token_only_usage")


# ------------------------------------------------------------ serve options

def test_endpoint_options_refuse_plain_http_off_loopback(tmp_path):
    from harness import run_cli
    data = str(tmp_path / "data")
    assert run_cli("init", "--data", data).returncode == 0
    for opt, url in (("--azure-authority-host", "http://login.example.com"),
                     ("--gcp-token-url", "http://10.0.0.1/token"),
                     ("--ibm-iam-endpoint", "http://[fd00::1]"),
                     ("--sts-endpoint", "http://192.168.1.1/"),
                     ("--azure-authority-host", "ftp://127.0.0.1"),
                     ("--ibm-iam-endpoint", "https://user:pw@iam.example")):
        p = subprocess.run([BIN, "serve", "--data", data, "--listen", "127.0.0.1:0", opt, url],
                           capture_output=True, text=True, timeout=60 * SLOW)
        assert p.returncode != 0 and opt in p.stderr, (opt, url, p.stderr)
    env = dict(os.environ, CREDSTORE_GCP_TOKEN_URL="http://gcp.example/token")
    p = subprocess.run([BIN, "serve", "--data", data, "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, env=env, timeout=60 * SLOW)
    assert p.returncode != 0 and "--gcp-token-url" in p.stderr
    p = subprocess.run([BIN, "serve", "--data", data, "--listen", "127.0.0.1:0",
                        "--outbound-ca-file", str(tmp_path / "missing.pem")],
                       capture_output=True, text=True, timeout=60 * SLOW)
    assert p.returncode != 0 and "--outbound-ca-file" in p.stderr, p.stderr


def test_endpoints_from_the_environment_and_the_outbound_ca_file(tmp_path):
    """CREDSTORE_* variables set the endpoints; --outbound-ca-file trusts a
    private CA for an https Entra (and nothing else does)."""
    pki = Pki(str(tmp_path))
    entra = EntraDouble(TENANT, CLIENT_ID, CLIENT_SECRET, tls=pki.server_tls())
    ibm = IBMDouble(APIKEY)
    d = None
    try:
        for ca in (None, pki.ca_file):
            env = {"CREDSTORE_AZURE_AUTHORITY_HOST": entra.url,
                   "CREDSTORE_IBM_IAM_ENDPOINT": ibm.url}
            if ca:
                env["CREDSTORE_OUTBOUND_CA_FILE"] = ca
            d = Daemon(env=env).start()
            auth = {"Authorization": basic(d.admin["id"], d.admin["secret"])}
            d.post("/api/v1/credentials", headers=auth,
                   json={"_id": "az", "type": "azure", "secret": {"plain": sdk_auth()}})
            d.post("/api/v1/credentials", headers=auth,
                   json={"_id": "ibm", "type": "ibmCloud", "accountGUID": "0123456789abcdef",
                         "secret": {"plain": APIKEY}})
            t = d.post("/api/v1/credentials/az/test", headers=auth).json()
            if ca:
                assert t["ok"] is True, t
            else:
                assert t["ok"] is False and t["code"] == "TLSVerificationFailed", t
            assert d.post("/api/v1/credentials/ibm/test", headers=auth).json()["ok"] is True
            assert d.stop() == 0
            d.close()
            d = None
        assert entra.calls == 1 and ibm.calls == 2
    finally:
        if d:
            d.close()
        entra.close()
        ibm.close()


# ------------------------------------------------------------ metrics

def metric(text, name, kind):
    for line in text.splitlines():
        if line.startswith('%s{kind="%s"} ' % (name, kind)):
            return int(float(line.split()[-1]))
    raise AssertionError("no %s{kind=%s} in /metrics" % (name, kind))


def test_metrics_per_kind(env):
    env.creds()
    uid = env.usage("az")
    for _ in range(3):
        assert env.resolve("az", uid, format="token").status_code == 200
    env.put("ibm", type="ibmCloud", accountGUID="0123456789abcdef",
            secret={"plain": "not-the-api-key-0123456789"})
    assert env.resolve("ibm", env.usage("ibm"), format="token").status_code == 502
    assert env.test("kube").json()["ok"] is True
    assert env.test("aws-keys").json()["ok"] is True
    text = env.d.get("/metrics", headers=env.auth).text
    assert metric(text, "credstore_broker_calls_total", "azure") == 1
    assert metric(text, "credstore_broker_cache_misses_total", "azure") == 1
    assert metric(text, "credstore_broker_cache_hits_total", "azure") == 2
    assert metric(text, "credstore_broker_errors_total", "azure") == 0
    assert metric(text, "credstore_broker_calls_total", "ibm") == 1
    assert metric(text, "credstore_broker_errors_total", "ibm") == 1
    assert metric(text, "credstore_broker_calls_total", "kube") == 1
    assert metric(text, "credstore_broker_calls_total", "sts") == 1
    assert metric(text, "credstore_broker_calls_total", "gcp") == 0
    for kind in ("sts", "imds", "azure", "gcp", "ibm", "kube"):
        assert metric(text, "credstore_broker_fallbacks_total", kind) == 0
    # The old names stay.
    assert "credstore_sts_calls_total 1" in text


# ------------------------------------------------------------ refresh window

@pytest.mark.parametrize("lifetime,calls", [(14 * 60, 2), (50 * 60, 1)])
def test_refresh_window_through_resolve_and_container_route(env, lifetime, calls):
    """STS credentials with under 15 minutes left are renewed before they
    are handed out; with 50 minutes left the cache answers. Through resolve,
    the container-credentials route and credential-process alike."""
    env.creds()
    env.sts.expires_in = lifetime
    uid = env.usage("aws-role")
    first = env.resolve("aws-role", uid).json()
    assert env.sts.calls == 1
    second = env.resolve("aws-role", uid).json()
    assert env.sts.calls == calls
    assert (second["AccessKeyId"] != first["AccessKeyId"]) == (calls == 2)
    r = env.d.get("/api/v1/aws/container-credentials/aws-role?usage=" + uid, headers=env.auth)
    assert r.status_code == 200 and env.sts.calls == calls + (calls - 1)
    penv = dict(os.environ, CREDSTORE_ACCESS_KEY_ID=env.d.admin["id"],
                CREDSTORE_ACCESS_KEY_SECRET=env.d.admin["secret"])
    p = subprocess.run([BIN, "credential-process", "--url", env.d.url, "--credential",
                        "aws-role", "--usage", uid], capture_output=True, text=True, env=penv,
                       timeout=60 * SLOW)
    assert p.returncode == 0, p.stderr
    assert env.sts.calls == calls + 2 * (calls - 1)
    assert json.loads(p.stdout)["AccessKeyId"] == env.sts.issued[-1]["AccessKeyId"]


def test_test_connection_of_stored_secret_types(tmp_path):
    """basic, apiToken, certificate: "stored; nothing to test" without a url;
    with one, the daemon GETs it with the stored secret (a TLS double with a
    private CA trusted through --outbound-ca-file)."""
    tmp = str(tmp_path)
    pki, client_ca = Pki(tmp), Pki(tmp, "client CA")
    cert, key, _, _ = client_ca.issue("svc-client", server=False)
    k = KubeDouble(pki, token="api-t0ken-s3cret", basic="svc:pa55-s3cret", client_cn="svc-client",
                   client_ca=client_ca.ca_file)
    d = Daemon(serve_args=["--outbound-ca-file", pki.ca_file]).start()
    auth = {"Authorization": basic(d.admin["id"], d.admin["secret"])}
    url = k.url + "/version"
    try:
        bodies = {"b": {"type": "basic", "accountID": "svc", "secret": {"plain": "pa55-s3cret"}},
                  "t": {"type": "apiToken", "secret": {"plain": "api-t0ken-s3cret"}},
                  "c": {"type": "certificate", "secret": {"plain": (cert + key).decode()}}}
        for cid, body in bodies.items():
            r = d.post("/api/v1/credentials", json=dict(body, _id=cid), headers=auth)
            assert r.status_code == 201, r.text
            t = d.post("/api/v1/credentials/%s/test" % cid, headers=auth).json()
            assert t == {"ok": True, "message": "stored; nothing to test",
                         "latencyMs": t["latencyMs"]}, t
        assert k.calls == 0
        for cid, body in bodies.items():
            d.post("/api/v1/credentials", json=dict(body, _id=cid, url=url), headers=auth)
            r = d.post("/api/v1/credentials/%s/test" % cid, headers=auth)
            t = r.json()
            assert t["ok"] is True and t["message"] == "GET %s answered HTTP 200" % k.url, (cid, t)
            assert "s3cret" not in r.text
        assert [r["authorization"] for r in k.requests] == [
            "Basic " + base64.b64encode(b"svc:pa55-s3cret").decode(),
            "Bearer api-t0ken-s3cret", ""]
        assert k.requests[-1]["client_cn"] == "svc-client"
        d.post("/api/v1/credentials", json=dict(bodies["t"], _id="t", url=url,
               secret={"plain": "wrong-t0ken"}), headers=auth)
        t = d.post("/api/v1/credentials/t/test", headers=auth).json()
        assert t["ok"] is False and t["code"] == "Unauthorized", t
        entries = d.get("/api/v1/audit?limit=1000", headers=auth).json()
        assert [e["result"] for e in entries if e["action"] == "test"] == \
            ["success"] * 6 + ["failure"]
        assert "s3cret" not in d.log()
    finally:
        assert d.stop() == 0
        d.close()
        k.close()
