"""Prisma fields round-tripping (API.md §3 v2), the empty-secret spellings,
and the v2 types basic, apiToken and certificate, plus azure's plain
`az ad sp create-for-rbac` format, against the real daemon."""
import json
import os
import subprocess
from urllib.parse import quote

import pytest

from harness import Daemon, assert_error, basic

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures")


@pytest.fixture(scope="module")
def d():
    dd = Daemon().start()
    dd.auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
    yield dd
    assert dd.stop() == 0
    dd.close()


def p(name):
    return quote(name, safe="")


def get(d, name):
    r = d.get("/api/v1/credentials/" + p(name), headers=d.auth)
    assert r.status_code == 200, r.text
    return r.json()


def usage(d, name):
    r = d.post("/api/v1/credentials/%s/usages" % p(name), headers=d.auth, json={"type": "t"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def resolve(d, name, uid):
    r = d.post("/api/v1/credentials/%s/resolve" % p(name), headers=d.auth, json={"usageId": uid})
    assert r.status_code == 200, r.text
    return r.json()


CA = "-----BEGIN CERTIFICATE-----\nMIIB<not parsed: stored as given>\n-----END CERTIFICATE-----\n"

# A Prisma export of one credential, every field the Prisma schema has.
PRISMA_EXPORT = {
    "_id": "Registry \u00fc <prod> & co",
    "type": "basic",
    "description": "exported from Prisma 34.03 \"as is\"",
    "accountID": "robot$scanner",
    "accountName": "Harbor prod",
    "secret": {"plain": "s3cr3t pass"},
    "caCert": CA,
    "url": "https://harbor.example:8443/v2/",
    "skipVerify": True,
    "global": False,
    "external": True,
    "stsEndpoints": ["https://sts.us-east-1.amazonaws.com", "https://sts.eu-west-1.amazonaws.com"],
    "cloudProviderAccountID": "123456789012",
    "created": "2024-01-02T03:04:05.678Z",
    "lastModified": "2024-01-02T03:04:05.678Z",
    "owner": "someone@example.com",
    "tokens": {"awsAccessKeyId": "", "duration": 0},
    "prismaLastModified": 1704164645678,
    "ociCred": {"fingerprint": "", "tenancyId": ""},
    "serviceAccount": {},
}
ROUND_TRIP = ["_id", "type", "description", "accountID", "accountName", "caCert", "url",
              "skipVerify", "global", "external", "stsEndpoints", "cloudProviderAccountID"]


@pytest.mark.parametrize("mount", [False, True])
def test_prisma_export_round_trips(d, mount):
    body = dict(PRISMA_EXPORT, _id=PRISMA_EXPORT["_id"] + (" m" if mount else ""))
    raw = json.dumps(body).encode()  # \\u escapes, as Python sends them
    url = "/prisma/api/v1/credentials" if mount else "/api/v1/credentials"
    r = d.post(url, data=raw, headers=d.auth)
    assert r.status_code == (200 if mount else 201), r.text
    got = get(d, body["_id"])
    for k in ROUND_TRIP:
        assert got[k] == body[k] and type(got[k]) is type(body[k]), k
    # Read-only fields are ours, not the client's; tokens is never an object.
    assert got["owner"] == d.admin["id"] and got["created"] != body["created"]
    assert "tokens" not in got and "prismaLastModified" not in got and "ociCred" not in got
    assert "plain" not in json.dumps(got) and "s3cr3t" not in json.dumps(got)
    # And through the mount's list, byte for byte the same field values.
    listed = {c["_id"]: c for c in d.get("/prisma/api/v1/credentials", headers=d.auth).json()}
    assert all(listed[body["_id"]][k] == body[k] for k in ROUND_TRIP)
    # GET, edit, POST back: the encrypted echo keeps the secret.
    got["description"] = "edited"
    r = d.post("/api/v1/credentials", json=got, headers=d.auth)
    assert r.status_code == 200, r.text
    uid = usage(d, body["_id"])
    assert resolve(d, body["_id"], uid)["password"] == "s3cr3t pass"


def test_prisma_fields_are_validated_and_bounded(d):
    base = {"_id": "pf", "type": "basic", "accountID": "u", "secret": {"plain": "p"}}
    for field, bad in [("skipVerify", "true"), ("global", 1), ("external", "yes"),
                       ("url", 5), ("caCert", ["x"]), ("accountName", {}),
                       ("cloudProviderAccountID", 12), ("stsEndpoints", "https://sts"),
                       ("stsEndpoints", [1]), ("stsEndpoints", ["x"] * 65),
                       ("caCert", "x" * (64 * 1024 + 1)), ("accountName", "n" * 257),
                       ("url", "u" * 2049), ("stsEndpoints", ["s" * 257])]:
        r = d.post("/api/v1/credentials", json=dict(base, **{field: bad}), headers=d.auth)
        body = assert_error(r, 400, "invalid_field")
        assert body["field"] == field, (field, body)
    assert d.get("/api/v1/credentials/pf", headers=d.auth).status_code == 404
    # null is "not given".
    r = d.post("/api/v1/credentials", json=dict(base, url=None, stsEndpoints=None), headers=d.auth)
    assert r.status_code == 201 and "url" not in r.json()


EMPTY_SPELLINGS = [{}, {"encrypted": ""}, {"plain": "", "encrypted": ""}]


def test_empty_secret_spellings_keep_the_secret(d):
    n = "keep me"
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": n, "type": "basic", "accountID": "u", "secret": {"plain": "pw-1"}})
    assert r.status_code == 201
    enc = r.json()["secret"]["encrypted"]
    uid = usage(d, n)
    for holder in ("secret", "apiToken"):
        for empty in EMPTY_SPELLINGS:
            for url in ("/api/v1/credentials", "/prisma/api/v1/credentials"):
                body = {"_id": n, "type": "basic", "accountID": "u", holder: empty}
                if holder == "apiToken":
                    body["secret"] = {}
                r = d.post(url, json=body, headers=d.auth)
                assert r.status_code == 200, (holder, empty, r.text)
                assert resolve(d, n, uid)["password"] == "pw-1", (holder, empty)
                assert get(d, n)["secret"]["encrypted"] == enc  # same secret, same value
            r = d.put("/api/v1/credentials/" + p(n), headers=d.auth,
                      json={"type": "basic", "accountID": "u", holder: empty})
            assert r.status_code == 200, r.text
            assert resolve(d, n, uid)["password"] == "pw-1"
    # A non-empty plain wins over an echo beside it, even a stale one.
    for echo in (enc, "v1.0000000000000000000000000000000000000000"):
        r = d.post("/prisma/api/v1/credentials", headers=d.auth,
                   json={"_id": n, "type": "basic", "accountID": "u",
                         "secret": {"encrypted": echo, "plain": "pw-2"}, "apiToken": {}})
        assert r.status_code == 200, r.text
        assert resolve(d, n, uid)["password"] == "pw-2"
    # A foreign blob (another record's, or made up) stays refused, and changes nothing.
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": "other", "type": "basic", "accountID": "u", "secret": {"plain": "x"}})
    other = r.json()["secret"]["encrypted"]
    before = get(d, n)
    for blob in (other, "v1.deadbeef", enc):
        for url in ("/api/v1/credentials", "/prisma/api/v1/credentials"):
            r = d.post(url, headers=d.auth, json={"_id": n, "type": "basic", "accountID": "u",
                                                 "secret": {"encrypted": blob}})
            assert r.status_code == 400, (blob, r.text)
            assert "secret.encrypted" in r.text
    assert get(d, n) == before and resolve(d, n, uid)["password"] == "pw-2"
    # {"plain": ""} alone is an empty password, which basic refuses.
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": n, "type": "basic", "accountID": "u", "secret": {"plain": ""}})
    assert_error(r, 400, "missing_field")


def test_basic_and_api_token(d):
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": "harbor robot", "type": "basic", "accountID": "robot$ci",
                     "secret": {"plain": "p w"}})
    assert r.status_code == 201 and r.json()["accountID"] == "robot$ci"
    assert resolve(d, "harbor robot", usage(d, "harbor robot")) == {
        "type": "basic", "username": "robot$ci", "password": "p w", "version": 1}
    for body, field in [({"secret": {"plain": "x"}}, "accountID"),
                        ({"accountID": "u"}, "secret.plain"),
                        ({"accountID": ["u"], "secret": {"plain": "x"}}, "accountID")]:
        r = d.post("/api/v1/credentials", headers=d.auth,
                   json=dict(body, _id="bad basic", type="basic"))
        assert assert_error(r, 400)["field"] == field
    # apiToken: either field, returned under the field it came in.
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": "slack", "type": "apiToken", "apiToken": {"plain": "xoxb-1-2"}})
    assert r.status_code == 201 and "encrypted" in r.json()["apiToken"]
    assert "secret" not in r.json()
    assert resolve(d, "slack", usage(d, "slack"))["token"] == "xoxb-1-2"
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": "gitlab", "type": "apiToken", "secret": {"plain": "glpat-x"}})
    assert r.status_code == 201 and "encrypted" in r.json()["secret"]
    # Terraform echoes apiToken.encrypted and sends a new secret.plain: plain wins.
    enc = get(d, "slack")["apiToken"]["encrypted"]
    r = d.post("/prisma/api/v1/credentials", headers=d.auth,
               json={"_id": "slack", "type": "apiToken", "apiToken": {"encrypted": enc},
                     "secret": {"plain": "xoxb-3-4"}})
    assert r.status_code == 200, r.text
    assert resolve(d, "slack", usage(d, "slack"))["token"] == "xoxb-3-4"
    for body, field in [({}, "apiToken.plain"),
                        ({"apiToken": {"plain": "a"}, "secret": {"plain": "b"}}, "apiToken.plain"),
                        ({"apiToken": {"plain": "has space"}}, "apiToken.plain")]:
        r = d.post("/api/v1/credentials", headers=d.auth,
                   json=dict(body, _id="bad token", type="apiToken"))
        assert assert_error(r, 400)["field"] == field


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


@pytest.fixture(scope="module")
def pems(tmp_path_factory):
    t = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
            "/CN=scanner client/O=credstore test", "-keyout", "a.key", "-out", "a.crt", cwd=t)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "30", "-subj", "/CN=other", "-keyout", "b.key", "-out", "b.crt",
            cwd=t)
    rd = lambda n: (t / n).read_text()
    der = subprocess.run(["openssl", "x509", "-in", str(t / "a.crt"), "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return {"a.crt": rd("a.crt"), "a.key": rd("a.key"), "b.crt": rd("b.crt"),
            "b.key": rd("b.key"), "der": der}


def test_certificate(d, pems):
    import hashlib
    plain = pems["a.crt"] + pems["a.key"]
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": "mtls client", "type": "certificate", "secret": {"plain": plain}})
    assert r.status_code == 201, r.text
    c = r.json()["certificate"]
    assert set(c) == {"subject", "issuer", "notAfter", "sha256"}
    assert "CN=scanner client" in c["subject"] and c["issuer"] == c["subject"]
    assert c["sha256"] == hashlib.sha256(pems["der"]).hexdigest()
    assert c["notAfter"].endswith("Z") and "PRIVATE" not in r.text
    m = resolve(d, "mtls client", usage(d, "mtls client"))
    assert m["type"] == "certificate" and m["certificate"].strip() == pems["a.crt"].strip()
    assert m["privateKey"].strip() == pems["a.key"].strip()
    # A certificate with another's key, key first, or no key: 400 naming secret.plain.
    for bad, why in [(pems["a.crt"] + pems["b.key"], "not the certificate's"),
                     (pems["a.crt"], "private key"), (pems["a.key"], "certificate"),
                     (pems["a.crt"].replace("M", "Q", 3) + pems["a.key"], "certificate"),
                     ("not pem at all", "certificate")]:
        r = d.post("/api/v1/credentials", headers=d.auth,
                   json={"_id": "bad cert", "type": "certificate", "secret": {"plain": bad}})
        body = assert_error(r, 400, "invalid_field")
        assert body["field"] == "secret.plain" and why in body["err"], (why, body)
        assert "PRIVATE KEY-----\nMI" not in r.text
    assert d.get("/api/v1/credentials/bad%20cert", headers=d.auth).status_code == 404
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": "ec client", "type": "certificate",
                     "secret": {"plain": pems["b.crt"] + pems["b.key"]}})
    assert r.status_code == 201 and "CN=other" in r.json()["certificate"]["subject"]


def test_expired_certificate_is_stored(d, tmp_path):
    """Decided: a certificate whose notAfter has passed is stored, not refused
    (whether to use it is the consumer's call; notAfter says when it ended,
    and refusing would make an old credential impossible to edit)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    k = ec.generate_private_key(ec.SECP256R1())
    key_pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")])
    past = datetime.datetime(2015, 1, 1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(k.public_key()).serial_number(9).not_valid_before(past)
            .not_valid_after(past + datetime.timedelta(days=1)).sign(k, hashes.SHA256()))
    plain = cert.public_bytes(serialization.Encoding.PEM).decode() + key_pem
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": "expired", "type": "certificate", "secret": {"plain": plain}})
    assert r.status_code == 201, r.text
    assert r.json()["certificate"]["notAfter"] == "2015-01-02T00:00:00Z"


def test_azure_plain_format_derives_the_same(d):
    sk = json.load(open(os.path.join(FIX, "azure-sdk-auth.json")))
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": "az sdk", "type": "azure", "secret": {"plain": json.dumps(sk)}})
    assert r.status_code == 201, r.text
    plain = {"appId": sk["clientId"], "displayName": "azure-cli-2026", "password":
             sk["clientSecret"], "tenant": sk["tenantId"]}
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": "az plain", "type": "azure", "secret": {"plain": json.dumps(plain)},
                     "azureSPInfo": {"subscriptionId": sk["subscriptionId"]}})
    assert r.status_code == 201, r.text
    a, b = get(d, "az sdk"), get(d, "az plain")
    assert a["azureSPInfo"] == b["azureSPInfo"] == {
        "clientId": sk["clientId"], "tenantId": sk["tenantId"],
        "subscriptionId": sk["subscriptionId"]}
    assert a["accountID"] == b["accountID"]
    m = resolve(d, "az plain", usage(d, "az plain"))
    assert (m["clientId"], m["clientSecret"], m["tenantId"], m["subscriptionId"]) == (
        sk["clientId"], sk["clientSecret"], sk["tenantId"], sk["subscriptionId"])
    # GET, edit, POST back (azureSPInfo comes back with the read) keeps it.
    b["description"] = "edited"
    assert d.post("/api/v1/credentials", json=b, headers=d.auth).status_code == 200
    r = d.post("/api/v1/credentials", headers=d.auth,
               json={"_id": "az plain 2", "type": "azure", "secret": {"plain": json.dumps(plain)}})
    assert assert_error(r, 400, "missing_field")["field"] == "azureSPInfo.subscriptionId"


def test_get_edit_post_back_with_empty_token_every_type(d, pems):
    """Prisma's GET -> edit -> POST back carries "apiToken": {"encrypted": ""}
    (and the other empty spellings): every type keeps its secret."""
    from test_credentials import valid_bodies
    bodies = valid_bodies()
    del bodies["aws-role"]  # resolves through IMDS; it has no secret to keep anyway
    bodies["basic"] = {"type": "basic", "accountID": "u", "secret": {"plain": "pw"}}
    bodies["api-token"] = {"type": "apiToken", "apiToken": {"plain": "tok-1"}}
    bodies["certificate"] = {"type": "certificate",
                             "secret": {"plain": pems["a.crt"] + pems["a.key"]}}
    for name, body in bodies.items():
        cid = "roundtrip " + name
        r = d.post("/api/v1/credentials", json=dict(body, _id=cid), headers=d.auth)
        assert r.status_code == 201, (name, r.text)
        uid = usage(d, cid)
        before = resolve(d, cid, uid)
        for empty in EMPTY_SPELLINGS:
            got = get(d, cid)
            got["description"] = "edited " + json.dumps(empty)
            for holder in ("secret", "apiToken"):
                got.setdefault(holder, dict(empty))
            for url in ("/api/v1/credentials", "/prisma/api/v1/credentials"):
                r = d.post(url, json=got, headers=d.auth)
                assert r.status_code == 200, (name, empty, r.text)
                after = resolve(d, cid, uid)
                after.pop("version"), before.pop("version", None)
                assert after == before, name
