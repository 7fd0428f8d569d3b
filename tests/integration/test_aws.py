"""Issue 6: temporary AWS credentials through the real daemon: STS AssumeRole
and IMDSv2 against loopback doubles that verify what they receive (SigV4 via
botocore), caching and single-flight, and the AWS CLI / botocore as clients
of the container-credentials endpoint and of credential_process."""
import json
import os
import subprocess
import threading

import pytest
import requests

from aws_doubles import IMDSDouble, STSDouble
from harness import BIN, Daemon, assert_error
from test_auth import basic

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ROLE = "arn:aws:iam::123456789012:role/scanner"


class Env:
    def __init__(self, sts_region="us-east-1", external_id=None):
        self.imds = IMDSDouble()
        self.sts = STSDouble({AKID: SECRET, self.imds.akid: self.imds.secret},
                             region=sts_region, tokens={self.imds.akid: self.imds.token},
                             external_id=external_id)
        self.d = Daemon(serve_args=["--sts-endpoint", self.sts.url,
                                    "--imds-endpoint", self.imds.url]).start()
        self.auth = {"Authorization": basic(self.d.admin["id"], self.d.admin["secret"])}

    def cred(self, cid, **fields):
        body = dict(fields, _id=cid, type="aws")
        r = self.d.post("/api/v1/credentials", json=body, headers=self.auth)
        assert r.status_code in (200, 201), r.text
        r = self.d.post("/api/v1/credentials/%s/usages" % cid, json={"type": "Cloud Scan"},
                        headers=self.auth)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def resolve(self, cid, uid, **kw):
        return self.d.post("/api/v1/credentials/%s/resolve" % cid, json=dict(kw, usageId=uid),
                           headers=self.auth)

    def close(self):
        rc = self.d.stop()
        self.d.close()
        self.sts.close()
        self.imds.close()
        assert rc == 0


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def keys(**kw):
    return dict(kw, accountID=AKID, secret={"plain": SECRET})


def test_static_keys_need_no_sts(env):
    uid = env.cred("static", **keys())
    m = env.resolve("static", uid).json()
    assert m == {"type": "aws", "AccessKeyId": AKID, "SecretAccessKey": SECRET, "version": 1}
    assert env.sts.calls == 0 and env.imds.total_calls() == 0


def test_role_from_stored_keys(env):
    uid = env.cred("role", **keys(roleArn=ROLE, durationSeconds=1800))
    r = env.resolve("role", uid)
    assert r.status_code == 200, r.text
    m = r.json()
    issued = env.sts.issued[-1]
    assert m["AccessKeyId"] == issued["AccessKeyId"]
    assert m["SecretAccessKey"] == issued["SecretAccessKey"]
    assert m["SessionToken"] == issued["SessionToken"]
    assert m["Expiration"] == issued["Expiration"] and m["version"] == 1
    assert issued["RoleArn"] == ROLE and issued["DurationSeconds"] == 1800
    assert issued["RoleSessionName"] == "credstore-" + uid
    assert env.sts.ok_requests()[-1]["scope_region"] == "us-east-1"
    # The cache answers the next resolves: no second STS call.
    for _ in range(3):
        assert env.resolve("role", uid).json()["AccessKeyId"] == issued["AccessKeyId"]
    assert env.sts.calls == 1
    # An edit invalidates the cached credentials.
    r = env.d.post("/api/v1/credentials", json=dict(keys(roleArn=ROLE, durationSeconds=1800),
                   _id="role", type="aws", description="edited"), headers=env.auth)
    assert r.status_code == 200
    m2 = env.resolve("role", uid).json()
    assert env.sts.calls == 2 and m2["AccessKeyId"] != m["AccessKeyId"] and m2["version"] == 2


def test_role_with_external_id():
    e = Env(external_id="ext-4242")
    try:
        good = e.cred("ext-good", **keys(roleArn=ROLE, externalID="ext-4242"))
        assert e.resolve("ext-good", good).status_code == 200
        assert e.sts.ok_requests()[-1]["form"]["ExternalId"] in ("ext-4242", ["ext-4242"])
        bad = e.cred("ext-bad", **keys(roleArn=ROLE, externalID="ext-0000"))
        err = assert_error(e.resolve("ext-bad", bad), 502, "upstream_error")
        assert err["upstreamCode"] == "AccessDenied" and "ExternalId" in err["err"]
    finally:
        e.close()


def test_regional_endpoint_signs_for_its_region():
    e = Env(sts_region="eu-west-1")
    try:
        uid = e.cred("regional", **keys(roleArn=ROLE, useSTSRegionalEndpoint=True,
                                         region="eu-west-1"))
        r = e.resolve("regional", uid)
        assert r.status_code == 200, r.text
        assert e.sts.ok_requests()[-1]["scope_region"] == "eu-west-1"
        # Without the regional flag the global endpoint signs for us-east-1,
        # which this double (expecting eu-west-1) refuses.
        uid2 = e.cred("global", **keys(roleArn=ROLE, region="eu-west-1"))
        err = assert_error(e.resolve("global", uid2), 502)
        assert err["upstreamCode"] in ("SignatureDoesNotMatch", "InvalidClientTokenId",
                                       "AuthFailure", "IncompleteSignature"), err
    finally:
        e.close()


def test_instance_role_through_imdsv2(env):
    uid = env.cred("node", useAWSRole=True)
    m = env.resolve("node", uid).json()
    assert m["AccessKeyId"] == env.imds.akid and m["SecretAccessKey"] == env.imds.secret
    assert m["SessionToken"] == env.imds.token
    assert env.imds.calls["put"] >= 1 and env.imds.calls["creds"] >= 1
    assert env.sts.calls == 0


def test_instance_role_then_assume_role(env):
    uid = env.cred("node-role", useAWSRole=True, roleArn=ROLE)
    r = env.resolve("node-role", uid)
    assert r.status_code == 200, r.text
    req = env.sts.ok_requests()[-1]
    assert req["verified"] and req["security_token"] == env.imds.token
    assert env.imds.akid in req["headers"]["authorization"]
    assert r.json()["AccessKeyId"] == env.sts.issued[-1]["AccessKeyId"]


def test_sts_access_denied_is_502_with_sts_code(env):
    env.sts.deny = ("AccessDenied", "User: arn:aws:iam::123456789012:user/x is not authorized "
                                    "to perform: sts:AssumeRole")
    uid = env.cred("denied", **keys(roleArn=ROLE))
    err = assert_error(env.resolve("denied", uid), 502, "upstream_error")
    assert err["upstreamCode"] == "AccessDenied" and "not authorized" in err["err"]
    assert SECRET not in json.dumps(err)
    audit = env.d.get("/api/v1/audit?credential=denied", headers=env.auth).json()
    assert ("resolve", "failure") in [(a["action"], a["result"]) for a in audit]


def test_concurrent_cold_resolves_make_one_sts_call(env):
    env.sts.delay = 0.5
    uid = env.cred("burst", **keys(roleArn=ROLE))
    results = []

    def one():
        r = requests.post(env.d.url + "/api/v1/credentials/burst/resolve",
                          json={"usageId": uid}, headers=env.auth, timeout=60)
        results.append((r.status_code, r.json().get("AccessKeyId")))

    ts = [threading.Thread(target=one) for _ in range(50)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(results) == 50 and all(s == 200 for s, _ in results)
    assert len({a for _, a in results}) == 1
    assert env.sts.calls == 1


def aws_env(extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    e.update({"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
              "AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"})
    e.update(extra)
    return e


def test_aws_cli_and_botocore_via_container_endpoint(env):
    uid = env.cred("sdk", **keys(roleArn=ROLE))
    token = basic(env.d.admin["id"], env.d.admin["secret"])
    ev = aws_env({"AWS_CONTAINER_CREDENTIALS_FULL_URI":
                  env.d.url + "/api/v1/aws/container-credentials/sdk?usage=" + uid,
                  "AWS_CONTAINER_AUTHORIZATION_TOKEN": token})
    r = subprocess.run(["/usr/bin/aws", "configure", "export-credentials", "--format", "process"],
                       env=ev, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    issued = env.sts.issued[-1]
    assert out["AccessKeyId"] == issued["AccessKeyId"]
    assert out["SecretAccessKey"] == issued["SecretAccessKey"]
    assert out["SessionToken"] == issued["SessionToken"]
    code = ("import botocore.session,json;c=botocore.session.Session().get_credentials()"
            ".get_frozen_credentials();print(json.dumps([c.access_key,c.secret_key,c.token]))")
    r = subprocess.run(["/usr/bin/python3", "-c", code], env=ev, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [issued["AccessKeyId"], issued["SecretAccessKey"],
                                    issued["SessionToken"]]
    assert env.sts.calls == 1, "the second client was served from the cache"
    # A wrong token is refused; a missing usage is a clear 400.
    bad = dict(ev, AWS_CONTAINER_AUTHORIZATION_TOKEN=basic(env.d.admin["id"], "0" * 64))
    r = subprocess.run(["/usr/bin/aws", "configure", "export-credentials", "--format", "process"],
                       env=bad, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert_error(env.d.get("/api/v1/aws/container-credentials/sdk", headers=env.auth), 400)


def test_credential_process_with_aws_cli_and_botocore(env, tmp_path):
    uid = env.cred("proc", **keys(roleArn=ROLE))
    cfg = tmp_path / "config"
    cfg.write_text("[profile credstore]\ncredential_process = %s credential-process --url %s "
                   "--credential proc --usage %s\nregion = us-east-1\n" % (BIN, env.d.url, uid))
    ev = aws_env({"AWS_CONFIG_FILE": str(cfg),
                  "CREDSTORE_ACCESS_KEY_ID": env.d.admin["id"],
                  "CREDSTORE_ACCESS_KEY_SECRET": env.d.admin["secret"]})
    r = subprocess.run(["/usr/bin/aws", "configure", "export-credentials", "--profile",
                        "credstore", "--format", "process"], env=ev, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    issued = env.sts.issued[-1]
    assert out["AccessKeyId"] == issued["AccessKeyId"]
    assert out["SessionToken"] == issued["SessionToken"]
    code = ("import botocore.session,json;s=botocore.session.Session(profile='credstore');"
            "c=s.get_credentials().get_frozen_credentials();print(c.access_key)")
    r = subprocess.run(["/usr/bin/python3", "-c", code], env=ev, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == issued["AccessKeyId"], r.stderr
    # The command itself: JSON on stdout, errors on stderr without secrets, exit != 0.
    r = subprocess.run([BIN, "credential-process", "--url", env.d.url, "--credential", "proc",
                        "--usage", uid], env=ev, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["Version"] == 1
    bad = dict(ev, CREDSTORE_ACCESS_KEY_SECRET="f" * 64)
    r = subprocess.run([BIN, "credential-process", "--url", env.d.url, "--credential", "proc",
                        "--usage", uid], env=bad, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and r.stdout == "" and "401" in r.stderr
    assert "f" * 64 not in r.stderr and env.d.admin["secret"] not in r.stderr
    r = subprocess.run([BIN, "credential-process", "--url", "http://127.0.0.1:1",
                        "--credential", "proc", "--usage", uid], env=ev, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "cannot reach" in r.stderr


# ---------------------- review issue 11: resolve options only narrow (finding 11)

BAD_REGIONS = ["us-east-1.evil.example", "evil.example/x", "us-east-1/", "us-east-1/../x",
               "us-east-1#", "us-east-1#frag", "us-east-1?x=1", "a@b", "user@us-east-1",
               "us-east-1:443", "us-east-1%2eevil", "US-EAST-1", "Us-east-1", "us-East-1",
               "us-east-1" + "-x" * 12, "us-" + "e" * 40 + "-1", "", "us-east", "us-east-",
               "-us-east-1", "useast1", "us_east_1", " us-east-1", "us-east-1 ", "us east 1",
               "us-east-1a", "us-east-123", "\u00fcs-east-1", "us-east-1\n"]


def audit_of(env, cid):
    r = env.d.get("/api/v1/audit", params={"credential": cid, "limit": 1000}, headers=env.auth)
    assert r.status_code == 200, r.text
    return r.json()


def usage_of(env, cid, uid):
    r = env.d.get("/api/v1/credentials/%s/usages" % cid, headers=env.auth)
    assert r.status_code == 200, r.text
    return [u for u in r.json() if u["id"] == uid][0]


def refused(resp, field):
    err = assert_error(resp, 400)
    assert err.get("field") == field, err
    return err


def test_ci_key_cannot_widen_sts_parameters(env):
    from test_auth import new_key
    ci = new_key(env.d, env.auth["Authorization"], "ci")
    ci_h = {"Authorization": basic(ci["id"], ci["secret"])}
    uid = env.cred("narrow", **keys(roleArn=ROLE, durationSeconds=1800))
    other = env.cred("narrow-other", **keys(roleArn=ROLE))

    def res(**kw):
        return env.d.post("/api/v1/credentials/narrow/resolve", json=dict(kw, usageId=uid),
                          headers=ci_h)

    before = (env.sts.calls, audit_of(env, "narrow"), usage_of(env, "narrow", uid))
    for dur in [1801, 3600, 43200]:
        assert "1800" in refused(res(durationSeconds=dur), "durationSeconds")["err"]
    for dur in [899, 43201, 0, -1, "900", 1800.5, True, [900]]:
        refused(res(durationSeconds=dur), "durationSeconds")
    for name in ["credstore-" + other, "credstore-u-00000000000000000000", "admin",
                 "AWSReservedSSO_Admin", "xx", "credstore-" + uid + "x", "a" * 64, "a" * 65, 5]:
        refused(res(sessionName=name), "sessionName")
    for region in BAD_REGIONS + [5, ["us-east-1"]]:
        refused(res(region=region), "region")
    # Nothing reached STS, nothing was recorded.
    assert env.sts.calls == before[0]
    assert audit_of(env, "narrow") == before[1]
    assert usage_of(env, "narrow", uid) == before[2]

    # Narrower is fine; the session name is always the usage's.
    r = res(durationSeconds=900, sessionName="credstore-" + uid)
    assert r.status_code == 200, r.text
    assert env.sts.issued[-1]["DurationSeconds"] == 900
    assert env.sts.issued[-1]["RoleSessionName"] == "credstore-" + uid
    r = res()
    assert r.status_code == 200 and env.sts.issued[-1]["DurationSeconds"] == 1800
    assert r.json()["AccessKeyId"] == env.sts.issued[-1]["AccessKeyId"]
    assert all(i["RoleSessionName"] == "credstore-" + uid for i in env.sts.issued)
    assert res(durationSeconds=1800).json()["AccessKeyId"] == r.json()["AccessKeyId"], "cached"
    assert usage_of(env, "narrow", uid)["resolveCount"] == 3

    # No stored duration: the bound is the default, 3600.
    r = env.d.post("/api/v1/credentials/narrow-other/resolve",
                   json={"usageId": other, "durationSeconds": 3601}, headers=ci_h)
    assert "3600" in refused(r, "durationSeconds")["err"]
    r = env.d.post("/api/v1/credentials/narrow-other/resolve",
                   json={"usageId": other, "durationSeconds": 3600}, headers=ci_h)
    assert r.status_code == 200 and env.sts.issued[-1]["DurationSeconds"] == 3600
    assert env.sts.issued[-1]["RoleSessionName"] == "credstore-" + other
    # Static keys (no STS) follow the same rules.
    st = env.cred("narrow-static", **keys())
    r = env.d.post("/api/v1/credentials/narrow-static/resolve",
                   json={"usageId": st, "durationSeconds": 7200}, headers=ci_h)
    refused(r, "durationSeconds")
    r = env.d.post("/api/v1/credentials/narrow-static/resolve",
                   json={"usageId": st, "sessionName": "someone-else"}, headers=ci_h)
    refused(r, "sessionName")


def test_requested_region_is_a_region_name_and_only_signs():
    e = Env(sts_region="eu-west-1")
    try:
        uid = e.cred("reg", **keys(roleArn=ROLE, useSTSRegionalEndpoint=True,
                                   region="eu-central-1"))
        for region in BAD_REGIONS:
            refused(e.resolve("reg", uid, region=region), "region")
        assert e.sts.calls == 0
        assert [a["action"] for a in audit_of(e, "reg")] == ["create", "usage_create"]
        # A real region name picks the regional endpoint and signing region.
        r = e.resolve("reg", uid, region="eu-west-1")
        assert r.status_code == 200, r.text
        assert e.sts.ok_requests()[-1]["scope_region"] == "eu-west-1"
        # The stored region is used otherwise (this double wants eu-west-1: refused upstream).
        err = assert_error(e.resolve("reg", uid), 502)
        assert "eu-central-1" in json.dumps(e.sts.requests[-1]["headers"]), err
        # A stored region with a dot or uppercase is refused on write.
        for region in ["eu-west-1.evil.example", "EU-WEST-1", "eu-west-1/"]:
            r = e.d.post("/api/v1/credentials", json=dict(keys(roleArn=ROLE, region=region),
                                                          _id="reg-bad", type="aws"),
                         headers=e.auth)
            assert assert_error(r, 400)["field"] == "region"
    finally:
        e.close()


# ----------- review issue 11, finding 12: container credentials check the type first

def test_container_credentials_refuse_other_types_before_recording(env):
    from test_auth import new_key
    from test_credentials import valid_bodies
    ci = new_key(env.d, env.auth["Authorization"], "ci")
    ci_h = {"Authorization": basic(ci["id"], ci["secret"])}
    ids = {}
    for cid, src in [("cc-ibm", "ibm-1"), ("cc-azure", "azure-sp"), ("cc-kube", "kube-token")]:
        r = env.d.post("/api/v1/credentials", json=dict(valid_bodies()[src], _id=cid),
                       headers=env.auth)
        assert r.status_code == 201, r.text
        ids[cid] = env.d.post("/api/v1/credentials/%s/usages" % cid, json={"type": "Cloud Scan"},
                              headers=env.auth).json()["id"]

    def trail():
        r = env.d.get("/api/v1/audit", params={"limit": 1000}, headers=env.auth)
        return r.json()

    before = trail()
    for cid, uid in ids.items():
        for h in (env.auth, ci_h):
            for usage in (uid, ids["cc-ibm"] if cid != "cc-ibm" else ids["cc-kube"], "u-nope"):
                r = env.d.get("/api/v1/aws/container-credentials/%s?usage=%s" % (cid, usage),
                              headers=h)
                err = assert_error(r, 400)
                assert "not aws" in err["err"] and cid in err["err"], err
                assert "Secret" not in r.text and "AccessKeyId" not in r.text
    assert trail() == before, "nothing recorded"
    for cid, uid in ids.items():
        u = usage_of(env, cid, uid)
        assert u["resolveCount"] == 0 and u["lastResolvedAt"] is None and u["seenVersion"] == 0
    assert env.sts.calls == 0
    # The same usage resolves through the generic endpoint, and that is recorded.
    r = env.d.post("/api/v1/credentials/cc-ibm/resolve", json={"usageId": ids["cc-ibm"]},
                   headers=ci_h)
    assert r.status_code == 200, r.text
    assert usage_of(env, "cc-ibm", ids["cc-ibm"])["resolveCount"] == 1
    assert [(a["action"], a["target"]) for a in trail()[len(before):]] == [("resolve", "cc-ibm")]
    # An aws credential still answers there.
    uid = env.cred("cc-aws", **keys())
    r = env.d.get("/api/v1/aws/container-credentials/cc-aws?usage=" + uid, headers=ci_h)
    assert r.status_code == 200 and r.json()["AccessKeyId"] == AKID
