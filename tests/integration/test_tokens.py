"""providers/ network resolves and tests against loopback doubles that check
what they receive (token_doubles.py, aws_doubles.py): Entra, Google and
IBM IAM tokens (format "token"), "Test connection" for every cloud and for
kubeconfigs, the token cache (hits, invalidation, single-flight), upstream
errors as code + message without secrets, the reach rules and the extra CA
file. Driven through tests/provider_probe's --type mode, which calls the
provider vtable entries (resolve, test) exactly as the core does.
"""
import base64
import datetime
import json
import os
import re
import shlex
import subprocess
import tempfile
import time

import pytest

from token_doubles import (EntraDouble, GoogleDouble, HookDouble, IBMDouble, KubeDouble, Pki,
                           new_service_account)
from aws_doubles import STSDouble

PROBE = os.environ.get("CS_PROVIDER_PROBE") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "tests", "provider_probe")
WRAPPER = shlex.split(os.environ.get("CREDSTORE_TEST_WRAPPER", "") or "")
SLOW = 10 if WRAPPER else 1

TENANT = "8f2c1d3e-6a7b-4c5d-9e0f-123456789abc"
CLIENT_ID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
CLIENT_SECRET = "Zx9~Q2w.E3r-T4y_U5i6O7p8A9s0D1f2G3h4J5k"
APIKEY = "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z-_ApiKeyExample0"
AKID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ROLE = "arn:aws:iam::123456789012:role/credstore-scanner"


def assert_clean(proc):
    """No sanitizer or valgrind report, whatever the exit status."""
    bad = re.findall(r"^(==\d+==.*|.*(?:AddressSanitizer|LeakSanitizer|runtime error).*)$",
                     proc.stderr, re.M)
    assert not bad and proc.returncode != 99, "\n".join(bad[:20])


class Result:
    def __init__(self, proc, secrets_):
        self.rc = proc.returncode
        self.stdout, self.stderr = proc.stdout, proc.stderr
        assert_clean(proc)
        for s in secrets_:  # never in what the probe printed or logged
            assert s not in proc.stdout and s not in proc.stderr, "a secret leaked"
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("probe printed no JSON (rc %d): %s %s"
                                 % (proc.returncode, proc.stdout, proc.stderr))
        self.doc = doc
        self.results = doc["results"]
        self.stats = doc.get("stats", {})

    @property
    def first(self):
        return self.results[0]

    def kind(self, k):
        return self.stats["kinds"][k]


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory() as d:
        yield d


def probe(tmp, *args, secret=None, hidden=(), timeout=60):
    """Run the probe; @p secret is the opened payload (a file, not argv).
    @p hidden: strings that must not appear in its output."""
    env = dict(os.environ)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    for k in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "PROBE_SECRET"):
        env.pop(k, None)
    argv = list(map(str, args))
    if secret is not None:
        path = os.path.join(tmp, "payload-%d" % time.monotonic_ns())
        with open(path, "w") as f:
            f.write(secret)
        argv += ["--secret-file", path]
    p = subprocess.run(WRAPPER + [PROBE, *argv], capture_output=True, text=True, env=env,
                       timeout=timeout * SLOW)
    return Result(p, hidden)


def epoch(iso):
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


# ------------------------------------------------------------------- Entra

SDK_AUTH = json.dumps({
    "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "subscriptionId":
    "11111111-2222-3333-4444-555555555555", "tenantId": TENANT,
    "activeDirectoryEndpointUrl": "https://login.evil.example.com",  # must not be used
    "resourceManagerEndpointUrl": "https://management.azure.com/"})
AZ_META = json.dumps({"accountID": CLIENT_ID, "azureSPInfo": {
    "clientId": CLIENT_ID, "tenantId": TENANT, "subscriptionId": "1"}})


@pytest.fixture
def entra():
    d = EntraDouble(TENANT, CLIENT_ID, CLIENT_SECRET)
    yield d
    d.close()


def azure(tmp, entra, *extra, secret=SDK_AUTH, test=False):
    args = ["--azure-authority", entra.url, "--type", "azure", "--cred", "az-prod", "--meta",
            AZ_META, *extra]
    args += ["--test"] if test else ["--format", "token"]
    return probe(tmp, *args, secret=secret, hidden=(CLIENT_SECRET,))


def test_azure_token_is_what_entra_issued(tmp, entra):
    p = azure(tmp, entra)
    assert p.rc == 0, p.stdout + p.stderr
    m = p.first["material"]
    assert entra.calls == 1
    req = entra.requests[0]
    assert req["path"] == "/%s/oauth2/v2.0/token" % TENANT  # configured authority, not the key's
    assert req["form"] == {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                           "scope": "https://management.azure.com/.default",
                           "grant_type": "client_credentials"}
    assert m == {"type": "azure", "accessToken": entra.issued[0], "tokenType": "Bearer",
                 "expiresOn": m["expiresOn"], "scope": "https://management.azure.com/.default"}
    assert abs(epoch(m["expiresOn"]) - (time.time() + 3599)) < 60


def test_azure_scope_is_sent_and_part_of_the_cache_key(tmp, entra):
    p = azure(tmp, entra, "--scope", "https://vault.azure.net/.default", "--repeat", 3)
    assert p.rc == 0
    assert entra.calls == 1 and entra.requests[0]["scope"] == "https://vault.azure.net/.default"
    assert all(r["material"]["accessToken"] == entra.issued[0] for r in p.results)
    assert p.kind("azure") == {"calls": 1, "hits": 2, "misses": 1, "errors": 0, "fallbacks": 0}


def test_azure_cache_invalidation_and_version(tmp, entra):
    p = azure(tmp, entra, "--repeat", 2, "--invalidate", "--then-version", 9)
    assert p.rc == 0
    toks = [r["material"]["accessToken"] for r in p.results]
    assert entra.calls == 3
    assert toks == [entra.issued[0], entra.issued[0], entra.issued[1], entra.issued[2]]


def test_azure_concurrent_cold_requests_make_one_call(tmp, entra):
    entra.delay = 0.5
    p = azure(tmp, entra, "--parallel", 50)
    assert p.rc == 0, p.stderr
    assert entra.calls == 1 and len(p.results) == 50
    assert {r["material"]["accessToken"] for r in p.results} == {entra.issued[0]}
    assert p.kind("azure")["misses"] == 1 and p.kind("azure")["hits"] == 49


def test_azure_errors_come_back_as_code_and_message(tmp, entra):
    bad = json.loads(SDK_AUTH)
    bad["clientSecret"] = "wrong-" + CLIENT_SECRET
    p = probe(tmp, "--azure-authority", entra.url, "--type", "azure", "--meta", AZ_META,
              "--format", "token", secret=json.dumps(bad), hidden=(CLIENT_SECRET, bad["clientSecret"]))
    r = p.first
    assert not r["ok"] and r["rc"] == "upstream_error" and r["http_status"] == 502
    assert r["code"] == "invalid_client"
    assert r["message"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert p.kind("azure")["errors"] == 1
    # Errors are not cached: the next call goes upstream again.
    p = probe(tmp, "--azure-authority", entra.url, "--type", "azure", "--meta", AZ_META,
              "--format", "token", "--repeat", 2, secret=json.dumps(bad))
    assert entra.calls == 3

    # A wrong tenant and a bad scope: Entra's own codes.
    other = dict(json.loads(SDK_AUTH), tenantId="contoso.onmicrosoft.com")
    p = probe(tmp, "--azure-authority", entra.url, "--type", "azure", "--meta", AZ_META,
              "--format", "token", secret=json.dumps(other), hidden=(CLIENT_SECRET,))
    assert p.first["code"] == "invalid_request" and "AADSTS90002" in p.first["message"]
    p = azure(tmp, entra, "--scope", "https://graph.microsoft.com/User.Read")
    assert p.first["code"] == "invalid_scope" and "AADSTS1002012" in p.first["message"]


def test_upstream_that_echoes_the_secret_is_scrubbed(tmp, entra):
    entra.echo_secret = True
    bad = dict(json.loads(SDK_AUTH), clientSecret="Sup3r-Secret-Value-That-Must-Not-Leak")
    p = probe(tmp, "--azure-authority", entra.url, "--type", "azure", "--meta", AZ_META,
              "--format", "token", secret=json.dumps(bad),
              hidden=("Sup3r-Secret-Value-That-Must-Not-Leak",))
    assert p.first["code"] == "invalid_client"
    assert "You sent: ****" in p.first["message"]


def test_azure_test_connection(tmp, entra):
    p = azure(tmp, entra, test=True)
    t = p.first["test"]
    assert t["ok"] is True and t["identity"] == CLIENT_ID and t["latencyMs"] >= 0
    assert "Entra issued a token" in t["message"]
    # A test is never answered from the cache.
    p = azure(tmp, entra, "--repeat", 2, test=True)
    assert entra.calls == 3
    bad = dict(json.loads(SDK_AUTH), clientSecret="nope-nope")
    p = azure(tmp, entra, secret=json.dumps(bad), test=True)
    t = p.first["test"]
    assert t["ok"] is False and t["code"] == "invalid_client" and "AADSTS7000215" in t["message"]


def test_azure_plain_sp_output_and_bad_tenant(tmp, entra):
    # The v2 shape (az ad sp create-for-rbac without --sdk-auth).
    plain = json.dumps({"appId": CLIENT_ID, "displayName": "x", "password": CLIENT_SECRET,
                        "tenant": TENANT})
    p = azure(tmp, entra, secret=plain)
    assert p.rc == 0 and p.first["material"]["accessToken"] == entra.issued[0]
    # A tenant that would change the URL path is refused before any call.
    for t in ("../../evil", "a/b", "x?y=1", "x#frag", ".."):
        bad = dict(json.loads(SDK_AUTH), tenantId=t)
        p = azure(tmp, entra, secret=json.dumps(bad))
        assert p.first["rc"] == "invalid_field", t
    assert entra.calls == 1


# ------------------------------------------------------------------ Google

@pytest.fixture
def google():
    sa, key = new_service_account()
    d = GoogleDouble(sa, key.public_key())
    yield d
    d.close()


def gcp(tmp, google, *extra, sa=None, test=False, url=True):
    sa = sa or google.sa
    args = (["--gcp-token-url", google.token_url] if url else []) + [
        "--type", "gcp", "--cred", "gcp-sa", "--meta",
        json.dumps({"authType": "serviceAccount", "accountID": sa["client_email"],
                    "projectID": sa["project_id"]}), *extra]
    args += ["--test"] if test else ["--format", "token"]
    return probe(tmp, *args, secret=json.dumps(sa), hidden=(sa["private_key"].split("\n")[1],))


def test_gcp_token_from_a_verified_assertion(tmp, google):
    p = gcp(tmp, google)
    assert p.rc == 0, p.stdout + p.stderr
    req = google.requests[0]
    assert req["status"] == 200, req.get("why")
    assert req["jwt_header"] == {"alg": "RS256", "typ": "JWT", "kid": google.sa["private_key_id"]}
    c = req["jwt_claims"]
    assert c["iss"] == google.sa["client_email"] and c["aud"] == google.token_url
    assert c["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert c["exp"] - c["iat"] == 3600 and abs(c["iat"] - time.time()) < 60
    m = p.first["material"]
    assert m["accessToken"] == google.issued[0] and m["tokenType"] == "Bearer"
    assert m["scopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert abs(epoch(m["expiresAt"]) - (time.time() + 3599)) < 60


def test_gcp_scopes_and_cache(tmp, google):
    scopes = "https://www.googleapis.com/auth/devstorage.read_only " \
             "https://www.googleapis.com/auth/compute.readonly"
    p = gcp(tmp, google, "--scopes", scopes, "--repeat", 3, "--invalidate")
    assert p.rc == 0
    assert google.calls == 2
    assert google.requests[0]["scope"] == scopes  # space-separated, in order
    assert p.results[0]["material"]["scopes"] == scopes.split()
    toks = [r["material"]["accessToken"] for r in p.results]
    assert toks == [google.issued[0]] * 3 + [google.issued[1]]


def test_gcp_wrong_key_is_invalid_grant(tmp, google):
    other, _ = new_service_account()
    sa = dict(google.sa, private_key=other["private_key"])  # same names, another key
    p = gcp(tmp, google, sa=sa)
    r = p.first
    assert not r["ok"] and r["code"] == "invalid_grant"
    assert r["message"] == "Invalid JWT Signature."
    assert google.requests[0]["status"] == 400
    p = gcp(tmp, google, sa=sa, test=True)
    assert p.first["test"]["ok"] is False and p.first["test"]["code"] == "invalid_grant"
    # Another key id is refused by the double too (kid is checked).
    p = gcp(tmp, google, sa=dict(google.sa, private_key_id="0" * 40))
    assert p.first["code"] == "invalid_grant"


def test_gcp_test_connection(tmp, google):
    p = gcp(tmp, google, test=True)
    t = p.first["test"]
    assert t["ok"] is True and t["identity"] == google.sa["client_email"]
    assert google.calls == 1


def test_gcp_key_token_uri_is_only_used_under_googleapis(tmp, google):
    # Without --gcp-token-url the key's token_uri counts only under
    # googleapis.com: a key naming another host still goes to Google's
    # default (unreachable here), never to the double the key names.
    for uri in (google.token_url, "https://oauth2.googleapis.com.evil.example/token",
                "http://oauth2.googleapis.com/token"):
        sa = dict(google.sa, token_uri=uri)
        p = gcp(tmp, google, "--timeout-ms", 2000, sa=sa, url=False)
        assert not p.first["ok"]
        assert "oauth2.googleapis.com" in p.first["message"] or \
            p.first["code"] in ("Unreachable", "Timeout"), p.first
    assert google.calls == 0


def test_gcp_api_key_has_no_token(tmp, google):
    p = probe(tmp, "--gcp-token-url", google.token_url, "--type", "gcp", "--meta",
              json.dumps({"authType": "apiToken"}), "--format", "token", secret="AIzaSyExample")
    assert p.first["rc"] == "invalid_field" and p.first["field"] == "format"
    p = probe(tmp, "--type", "gcp", "--meta", json.dumps({"authType": "apiToken"}), "--test",
              secret="AIzaSyExample")
    assert p.first["test"]["ok"] is True and "nothing to test" in p.first["test"]["message"]
    assert google.calls == 0


# --------------------------------------------------------------------- IBM

@pytest.fixture
def ibm():
    d = IBMDouble(APIKEY)
    yield d
    d.close()


def ibmcloud(tmp, ibm, *extra, key=APIKEY, test=False):
    args = ["--ibm-iam", ibm.url, "--type", "ibmCloud", "--cred", "ibm", "--meta",
            json.dumps({"accountGUID": "0123456789abcdef0123456789abcdef"}), *extra]
    args += ["--test"] if test else ["--format", "token"]
    return probe(tmp, *args, secret=key, hidden=(APIKEY,))


def test_ibm_token_and_errors(tmp, ibm):
    p = ibmcloud(tmp, ibm, "--repeat", 2)
    assert p.rc == 0, p.stdout + p.stderr
    assert ibm.calls == 1
    assert ibm.requests[0]["form"] == {"grant_type": "urn:ibm:params:oauth:grant-type:apikey",
                                       "apikey": APIKEY}
    m = p.first["material"]
    assert m == {"type": "ibmCloud", "accessToken": ibm.issued[0], "tokenType": "Bearer",
                 "expiresAt": m["expiresAt"]}
    assert abs(epoch(m["expiresAt"]) - (time.time() + 3599)) < 60
    p = ibmcloud(tmp, ibm, key="not-" + APIKEY)
    assert p.first["code"] == "BXNIM0415E"
    assert p.first["message"] == "Provided API key could not be found."
    p = ibmcloud(tmp, ibm, test=True)
    assert p.first["test"]["ok"] and p.first["test"]["identity"] == "0123456789abcdef0123456789abcdef"


def test_short_lived_token_is_not_cached(tmp, ibm):
    # A token that expires within the 5-minute margin is handed out but
    # never served again.
    ibm.expires_in = 200
    p = ibmcloud(tmp, ibm, "--repeat", 3)
    assert p.rc == 0 and ibm.calls == 3
    ibm.expires_in = 301 + 60
    p = ibmcloud(tmp, ibm, "--repeat", 3)
    assert ibm.calls == 4


# ------------------------------------------------------ reach, TLS, CA file

def test_plain_http_only_to_loopback(tmp):
    for opt, url in (("--azure-authority", "http://10.1.2.3"), ("--ibm-iam", "http://iam.example"),
                     ("--gcp-token-url", "http://[fd00::1]/token"),
                     ("--sts", "http://192.168.0.10/"), ("--ibm-iam", "http://0x7f.1")):
        p = probe(tmp, opt, url, "--type", "ibmCloud", "--meta", "{}", "--format", "token",
                  secret=APIKEY)
        if url == "http://0x7f.1":  # 127.0.0.1 spelled otherwise is loopback: accepted
            assert "create_error" not in p.doc
            continue
        assert p.rc == 78 and opt in p.doc["create_error"], (opt, url, p.doc)
        assert "loopback" in p.doc["create_error"]


def test_extra_ca_file_trusts_a_private_ca(tmp):
    pki = Pki(tmp)
    ibm = IBMDouble(APIKEY, tls=pki.server_tls())
    hook = HookDouble(tls=pki.server_tls())
    try:
        # Without the CA: verification fails, reported as such, and not retried.
        p = ibmcloud(tmp, ibm)
        assert p.first["code"] == "TLSVerificationFailed", p.first
        assert ibm.calls == 0
        # With it, the same endpoint is trusted...
        p = ibmcloud(tmp, ibm, "--ca-file", pki.ca_file)
        assert p.rc == 0, p.first
        assert p.first["material"]["accessToken"] == ibm.issued[0]
        # Webhooks use the same client and trust.
        p = probe(tmp, "--post", hook.url + "/hook")
        assert p.first["ok"] is False and hook.received == []
        p = probe(tmp, "--ca-file", pki.ca_file, "--post", hook.url + "/hook")
        assert p.first["ok"] is True and p.first["status"] == 204, p.first
        assert hook.received == [b"{}"]
        # An unrelated CA does not help.
        p = ibmcloud(tmp, ibm, "--ca-file", Pki(tmp, "other CA").ca_file)
        assert p.first["code"] == "TLSVerificationFailed"
    finally:
        ibm.close()
        hook.close()
    # A CA file that is not PEM certificates stops the start.
    bad = os.path.join(tmp, "bad.pem")
    with open(bad, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    p = probe(tmp, "--ca-file", bad, "--type", "ibmCloud", "--meta", "{}", secret=APIKEY)
    assert p.rc == 78 and "--outbound-ca-file" in p.doc["create_error"]


def test_sts_tls_failure_is_not_retried(tmp):
    pki = Pki(tmp)
    sts = STSDouble({AKID: AWS_SECRET}, tls=pki.server_tls())
    try:
        p = probe(tmp, "--sts", sts.url + "/", "--akid", AKID, "--secret", AWS_SECRET,
                  "--role", ROLE)
        assert p.first["code"] == "TLSVerificationFailed"
        assert p.stats["sts_calls"] == 1  # retrying cannot fix a certificate
        p = probe(tmp, "--ca-file", pki.ca_file, "--sts", sts.url + "/", "--akid", AKID,
                  "--secret", AWS_SECRET, "--role", ROLE)
        assert p.rc == 0 and p.first["AccessKeyId"] == sts.issued[0]["AccessKeyId"]
        assert sts.requests[0]["verified"] is True
    finally:
        sts.close()


# -------------------------------------------------------------- kubeconfig

def kubeconfig(server, ca_pem=None, user=None, tls_name=None):
    cluster = {"server": server}
    if tls_name:
        cluster["tls-server-name"] = tls_name
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "test",
           "clusters": [{"name": "other", "cluster": {"server": "https://10.9.9.9:6443"}},
                        {"name": "c", "cluster": cluster}],
           "users": [{"name": "u", "user": user or {}}],
           "contexts": [{"name": "first", "context": {"cluster": "other", "user": "u"}},
                        {"name": "test", "context": {"cluster": "c", "user": "u"}}]}
    return json.dumps(doc)  # JSON is YAML


def kube(tmp, yaml, *extra):
    return probe(tmp, "--type", "kubeconfig", "--test", *extra, secret=yaml,
                 hidden=("kube-token-s3cret",))


def test_kube_bearer_token(tmp):
    pki = Pki(tmp)
    k = KubeDouble(pki, token="kube-token-s3cret")
    try:
        p = kube(tmp, kubeconfig(k.url, pki.ca_pem, {"token": "kube-token-s3cret"}))
        t = p.first["test"]
        assert t["ok"] is True, t
        assert t["identity"] == k.git_version and k.url in t["message"]
        assert k.requests[-1]["authorization"] == "Bearer kube-token-s3cret"
        # A wrong token: the server's 401, as a result.
        p = kube(tmp, kubeconfig(k.url, pki.ca_pem, {"token": "wrong"}))
        t = p.first["test"]
        assert t["ok"] is False and t["code"] == "Unauthorized" and "401" in t["message"]
        # The cluster's CA is the only one trusted: another CA's data fails,
        # and so does none (the system store does not know this CA).
        p = kube(tmp, kubeconfig(k.url, Pki(tmp, "other").ca_pem, {"token": "kube-token-s3cret"}))
        assert p.first["test"]["code"] == "TLSVerificationFailed"
        p = kube(tmp, kubeconfig(k.url, None, {"token": "kube-token-s3cret"}))
        assert p.first["test"]["code"] == "TLSVerificationFailed"
        assert k.calls == 2
        p = kube(tmp, kubeconfig(k.url, None, {"token": "kube-token-s3cret"}), "--ca-file",
                 pki.ca_file)
        assert p.first["test"]["ok"] is True
    finally:
        k.close()


def test_kube_client_certificate_and_basic(tmp):
    pki = Pki(tmp)
    client_ca = Pki(tmp, "client CA")
    cert, key, _, _ = client_ca.issue("system:scanner", server=False)
    k = KubeDouble(pki, client_cn="system:scanner", basic="admin:pa55word",
                   client_ca=client_ca.ca_file)
    try:
        user = {"client-certificate-data": base64.b64encode(cert).decode(),
                "client-key-data": base64.b64encode(key).decode()}
        p = kube(tmp, kubeconfig(k.url, pki.ca_pem, user))
        assert p.first["test"]["ok"] is True, p.first
        assert k.requests[-1]["client_cn"] == "system:scanner"
        assert k.requests[-1]["authorization"] == ""
        p = kube(tmp, kubeconfig(k.url, pki.ca_pem, {"username": "admin", "password": "pa55word"}))
        assert p.first["test"]["ok"] is True
        p = kube(tmp, kubeconfig(k.url, pki.ca_pem, {"username": "admin", "password": "nope"}))
        assert p.first["test"]["code"] == "Unauthorized"
        p = kube(tmp, kubeconfig(k.url, pki.ca_pem))  # anonymous
        assert p.first["test"]["ok"] is False
    finally:
        k.close()


def test_kube_tls_server_name(tmp):
    # The certificate names only kube.internal: the server URL's 127.0.0.1
    # fails verification, tls-server-name makes TLS check that name while
    # the connection still goes to the server's address.
    pki = Pki(tmp)
    k = KubeDouble(pki, token="kube-token-s3cret", names=["kube.internal"])
    try:
        user = {"token": "kube-token-s3cret"}
        p = kube(tmp, kubeconfig(k.url, pki.ca_pem, user))
        assert p.first["test"]["code"] == "TLSVerificationFailed"
        p = kube(tmp, kubeconfig(k.url + "/", pki.ca_pem, user, tls_name="kube.internal"))
        assert p.first["test"]["ok"] is True, p.first
        p = kube(tmp, kubeconfig(k.url, pki.ca_pem, user, tls_name="other.internal"))
        assert p.first["test"]["code"] == "TLSVerificationFailed"
        p = kube(tmp, kubeconfig(k.url, pki.ca_pem, user, tls_name="bad name:1"))
        assert p.first["test"]["code"] == "InvalidKubeconfig"
        assert k.calls == 1
    finally:
        k.close()


def test_kube_link_local_server_is_refused(tmp):
    # Validation lets https servers anywhere; the test still never connects
    # to metadata or link-local addresses.
    p = kube(tmp, kubeconfig("https://169.254.169.254:443", None, {"token": "t"}))
    assert p.first["test"]["ok"] is False
    assert p.first["test"]["code"] == "EndpointRefused", p.first


# --------------------------------------------------------------------- AWS

def test_aws_test_connection_and_session(tmp):
    sts = STSDouble({AKID: AWS_SECRET}, arns={AKID: "arn:aws:iam::123456789012:user/scanner"})
    try:
        meta = {"accountID": AKID}
        p = probe(tmp, "--sts", sts.url + "/", "--type", "aws", "--meta", json.dumps(meta),
                  "--test", secret=AWS_SECRET, hidden=(AWS_SECRET,))
        t = p.first["test"]
        assert t["ok"] is True and t["identity"] == "arn:aws:iam::123456789012:user/scanner"
        assert [r["action"] for r in sts.requests] == ["GetCallerIdentity"]
        assert sts.requests[0]["verified"] is True

        meta["roleArn"] = ROLE
        p = probe(tmp, "--sts", sts.url + "/", "--type", "aws", "--meta", json.dumps(meta),
                  "--test", secret=AWS_SECRET)
        t = p.first["test"]
        assert t["ok"] is True
        assert t["identity"] == ROLE.replace(":iam::", ":sts::").replace(
            ":role/", ":assumed-role/") + "/credstore-test"
        assert "arn:aws:iam::123456789012:user/scanner" in t["message"]
        assert [r["action"] for r in sts.requests[1:]] == ["GetCallerIdentity", "AssumeRole"]

        sts.deny = ("AccessDenied", "not allowed")
        p = probe(tmp, "--sts", sts.url + "/", "--type", "aws", "--meta", json.dumps(meta),
                  "--test", secret=AWS_SECRET)
        assert p.first["test"] == dict(p.first["test"], ok=False, code="AccessDenied",
                                       message="not allowed")
        sts.deny = None

        # format "session": GetSessionToken with the static keys, cached.
        del meta["roleArn"]
        p = probe(tmp, "--sts", sts.url + "/", "--type", "aws", "--meta", json.dumps(meta),
                  "--format", "session", "--repeat", 2, secret=AWS_SECRET, hidden=(AWS_SECRET,))
        assert p.rc == 0, p.first
        gst = [r for r in sts.requests if r.get("action") == "GetSessionToken"]
        assert len(gst) == 1 and gst[0]["verified"] is True
        assert gst[0]["form"] == {"Action": "GetSessionToken", "Version": "2011-06-15",
                                  "DurationSeconds": "3600"}
        issued = sts.issued[-1]
        for r in p.results:
            m = r["material"]
            assert m == {"type": "aws", "AccessKeyId": issued["AccessKeyId"],
                         "SecretAccessKey": issued["SecretAccessKey"],
                         "SessionToken": issued["SessionToken"],
                         "Expiration": issued["Expiration"]}
        # Without "session", static keys come back as stored, no call.
        n = sts.calls
        p = probe(tmp, "--sts", sts.url + "/", "--type", "aws", "--meta", json.dumps(meta),
                  secret=AWS_SECRET)
        assert p.first["material"]["SecretAccessKey"] == AWS_SECRET and sts.calls == n
        # "session" with a role is refused, naming the field.
        meta["roleArn"] = ROLE
        p = probe(tmp, "--sts", sts.url + "/", "--type", "aws", "--meta", json.dumps(meta),
                  "--format", "session", secret=AWS_SECRET)
        assert p.first["rc"] == "invalid_field" and p.first["field"] == "format"
        assert sts.calls == n
    finally:
        sts.close()


# ------------------------------------- stored-secret types: cs_prov_test_url

def url_test(tmp, meta, secret, *extra):
    return probe(tmp, "--url-test", "--meta", json.dumps(meta), *extra, secret=secret,
                 hidden=("url-s3cret-token", "pa55word", "q-s3cret"))


def test_url_test_of_stored_secret_types(tmp):
    """What basic, apiToken and certificate tests run (API.md §8): nothing
    without a url; with one, an authenticated GET, 2xx ok."""
    pki = Pki(tmp)
    client_ca = Pki(tmp, "client CA")
    cert, key, cert_file, key_file = client_ca.issue("svc-client", server=False)
    k = KubeDouble(pki, token="url-s3cret-token", basic="admin:pa55word", client_cn="svc-client",
                   client_ca=client_ca.ca_file)
    try:
        p = url_test(tmp, {}, "url-s3cret-token", "--bearer")
        assert p.first["test"] == dict(p.first["test"], ok=True, message="stored; nothing to test")
        assert k.calls == 0
        k_path = k.url + "/version"
        meta = {"url": k_path}
        ca = ("--ca-file", pki.ca_file)
        t = url_test(tmp, meta, "url-s3cret-token", "--bearer", *ca).first["test"]
        assert t["ok"] is True and t["message"] == "GET %s answered HTTP 200" % k.url, t
        assert k.requests[-1]["authorization"] == "Bearer url-s3cret-token"
        # Messages name scheme://host:port only: a query may hold a secret.
        t = url_test(tmp, {"url": k_path + "?token=q-s3cret"}, "url-s3cret-token", "--bearer",
                     *ca).first["test"]
        assert t["code"] == "NotFound" and k.requests[-1]["path"] == "/version?token=q-s3cret"
        t = url_test(tmp, meta, "wrong", "--bearer", *ca).first["test"]
        assert t["ok"] is False and t["code"] == "Unauthorized" and "401" in t["message"]
        t = url_test(tmp, {"url": k_path}, "pa55word", "--basic-user", "admin", *ca).first["test"]
        assert t["ok"] is True, t
        assert k.requests[-1]["authorization"] == "Basic " + base64.b64encode(
            b"admin:pa55word").decode()
        t = url_test(tmp, {"url": k_path}, "nope", "--basic-user", "admin", *ca).first["test"]
        assert t["code"] == "Unauthorized"
        t = url_test(tmp, {"url": k_path}, "", "--cert-file", cert_file, "--key-file", key_file,
                     *ca).first["test"]
        assert t["ok"] is True and k.requests[-1]["client_cn"] == "svc-client", t
        t = url_test(tmp, {"url": k.url + "/nowhere"}, "url-s3cret-token", "--bearer",
                     *ca).first["test"]
        assert t["code"] == "NotFound"
        # Only the client's trust: a private CA needs --outbound-ca-file.
        t = url_test(tmp, meta, "url-s3cret-token", "--bearer").first["test"]
        assert t["ok"] is False and t["code"] == "TLSVerificationFailed", t
        n = k.calls
        # Reach rules of URLs a credential names.
        for bad in ("http://10.1.2.3/x", "https://169.254.169.254/latest", "ftp://127.0.0.1/",
                    "https://user:pw@127.0.0.1/", "http://[fe80::1]/"):
            t = url_test(tmp, {"url": bad}, "url-s3cret-token", "--bearer", *ca).first["test"]
            assert t["ok"] is False and t["code"], (bad, t)
        assert k.calls == n
    finally:
        k.close()
