"""Loopback doubles of AWS STS and of the EC2 instance metadata service
(IMDSv2) for the providers/aws/ integration tests.

STSDouble checks every AssumeRole request the way STS does, independently
of libcurl: it rebuilds the request from what arrived and signs it again
with botocore's SigV4Auth (same credentials, service "sts", the expected
region and the request's own X-Amz-Date), then compares the whole
Authorization header. A mismatch gets STS's 403 SignatureDoesNotMatch.

Both run ThreadingHTTPServer on 127.0.0.1 port 0 in a daemon thread.
Run with Debian's /usr/bin/python3 (botocore).
"""
import base64
import datetime
import hmac
import json
import os
import re
import secrets
import ssl
import string
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<sig>[0-9a-f]{64})$")
SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


def _rand(alphabet, n):
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_access_key_id(prefix="ASIA"):
    return prefix + _rand(string.ascii_uppercase + string.digits, 16)


def new_secret():
    return _rand(string.ascii_letters + string.digits + "/+", 40)


def new_session_token(n=356):
    return base64.b64encode(os.urandom(n * 3 // 4)).decode()


def iso8601(t):
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


class _FixedDateSigV4(SigV4Auth):
    """botocore's SigV4 signer, at a given X-Amz-Date instead of now."""

    def __init__(self, credentials, service, region, amz_date):
        super().__init__(credentials, service, region)
        self._amz_date = amz_date

    def add_auth(self, request):
        request.context["timestamp"] = self._amz_date
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        to_sign = self.string_to_sign(request, canonical)
        self._inject_signature_to_request(request, self.signature(to_sign, request))


def expected_authorization(method, host, path, headers, body, signed, akid, secret, token,
                           region, amz_date):
    """The Authorization header botocore computes for this request, signing
    the headers the client said it signed (as STS does)."""
    hdrs = {}
    for name in signed.split(";"):
        if name not in ("x-amz-date", "x-amz-security-token"):  # botocore sets these
            if name not in headers:
                return None
            hdrs[name] = headers[name]
    req = AWSRequest(method=method, url="http://%s%s" % (host, path), data=body, headers=hdrs)
    _FixedDateSigV4(Credentials(akid, secret, token), "sts", region, amz_date).add_auth(req)
    return req.headers["Authorization"]


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1; with tls=(cert, key[, client_ca])
    it speaks https (asking for, not requiring, a client certificate signed
    by client_ca when one is given)."""

    def __init__(self, handler_cls, tls=None):
        owner = self

        class Handler(handler_cls):
            double = owner
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep pytest output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            if len(tls) > 2 and tls[2]:
                ctx.verify_mode = ssl.CERT_OPTIONAL
                ctx.load_verify_locations(tls[2])
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.url = "https://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    def reply(self, status, body, ctype="text/xml"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""


# --------------------------------------------------------------------- STS

def sts_error(code, message, kind="Sender"):
    return ("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
            "  <Error>\n    <Type>%s</Type>\n    <Code>%s</Code>\n    <Message>%s</Message>\n"
            "  </Error>\n  <RequestId>%s</RequestId>\n</ErrorResponse>\n"
            % (kind, escape(code), escape(message), secrets.token_hex(16)))


class _STSHandler(_Handler):
    def do_GET(self):
        self.reply(405, sts_error("InvalidAction", "use POST"))

    def do_POST(self):
        d = self.double
        body = self.read_body()
        with d.lock:
            d.calls += 1
            n = d.calls
        rec = {"n": n, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": body.decode("latin-1")}
        status, doc = d.handle(self, rec, body, n)
        with d.lock:
            rec["status"] = status
            d.requests.append(rec)
        if d.delay:
            time.sleep(d.delay)
        self.reply(status, doc)


class STSDouble(_Server):
    """STS AssumeRole, GetSessionToken and GetCallerIdentity.

    keys: {access key id: secret} of the identities it accepts.
    arns: {access key id: ARN} GetCallerIdentity answers (default: a user
    named after the key).
    tokens: {access key id: session token} for temporary identities (their
    requests must carry that x-amz-security-token, signed).
    region: the region the credential scope must name.
    external_id: when set, AssumeRole must send exactly this ExternalId.
    deny: (code, message) to answer every call with (403).
    throttle: answer the first N calls with 400 Throttling.
    fail_5xx: answer the first N calls (after throttling) with 503 and no body.
    delay: seconds to wait before answering (for single-flight tests).
    expires_in: when set, issued credentials expire this many seconds from
    now whatever DurationSeconds asked (to play credentials that have aged).
    deny_after: when set, calls after the first N answer 403 AccessDenied.
    clock: the time it lives in (time.time; a test's simulated clock): issued
    Expirations and the signature-age check are relative to it.
    """

    def __init__(self, keys, region="us-east-1", tokens=None, external_id=None, arns=None,
                 tls=None, handler=None):
        self.keys = dict(keys)
        self.arns = dict(arns or {})
        self.expires_in = None
        self.deny_after = None
        self.clock = time.time
        self.tokens = dict(tokens or {})
        self.region = region
        self.external_id = external_id
        self.deny = None
        self.throttle = 0
        self.fail_5xx = 0
        self.delay = 0.0
        self.calls = 0
        self.requests = []
        self.issued = []
        super().__init__(handler or _STSHandler, tls)

    def ok_requests(self):
        return [r for r in self.requests if r["status"] == 200]

    def handle(self, h, rec, body, n):
        """@return (status, xml) for one request; fills rec with what was checked."""
        hdrs = rec["headers"]
        if rec["path"] != "/":
            return 404, sts_error("InvalidAction", "unexpected path %s" % rec["path"])
        if not hdrs.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return 400, sts_error("InvalidParameterValue", "form body expected")
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True,
                                         strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            return 400, sts_error("MalformedQueryString", "unparseable form")
        if any(len(v) != 1 for v in form.values()):
            return 400, sts_error("InvalidParameterValue", "repeated parameter")
        form = {k: v[0] for k, v in form.items()}
        rec["form"] = form

        # --- authentication (what STS checks before anything else)
        m = AUTH_RE.match(hdrs.get("authorization", ""))
        if not m:
            return 403, sts_error("IncompleteSignature", "Authorization header malformed")
        rec["scope_region"] = m["region"]
        rec["signed_headers"] = m["signed"].split(";")
        amz_date = hdrs.get("x-amz-date", "")
        if m["service"] != "sts" or m["date"] != amz_date[:8]:
            return 403, sts_error("SignatureDoesNotMatch", "bad credential scope")
        try:
            skew = abs(self.clock() - datetime.datetime.strptime(
                amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc).timestamp())
        except ValueError:
            return 403, sts_error("IncompleteSignature", "bad X-Amz-Date")
        if skew > 900:
            return 403, sts_error("SignatureDoesNotMatch", "Signature expired")
        akid = m["akid"]
        secret = self.keys.get(akid)
        if secret is None:
            return 403, sts_error("InvalidClientTokenId",
                                  "The security token included in the request is invalid.")
        if m["region"] != self.region:
            return 403, sts_error("SignatureDoesNotMatch",
                                  "Credential should be scoped to a valid region, not '%s'."
                                  % m["region"])
        token = self.tokens.get(akid)
        rec["security_token"] = hdrs.get("x-amz-security-token")
        if token is not None and rec["security_token"] != token:
            return 403, sts_error("InvalidClientTokenId",
                                  "The security token included in the request is invalid.")
        if token is None and rec["security_token"] is not None:
            return 403, sts_error("InvalidClientTokenId", "unexpected security token")
        want = expected_authorization("POST", hdrs.get("host", ""), rec["path"], hdrs, body,
                                      m["signed"], akid, secret, token, self.region, amz_date)
        rec["verified"] = want is not None and hmac.compare_digest(
            want, hdrs["authorization"])
        if not rec["verified"]:
            rec["expected_authorization"] = want
            return 403, sts_error(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method.")

        # --- the action
        if form.get("Version") != "2011-06-15":
            return 400, sts_error("InvalidAction", "Version")
        rec["action"] = form.get("Action")
        if self.deny_after is not None and n > self.deny_after:
            return 403, sts_error("AccessDenied", "the role no longer trusts this user")
        if self.deny:
            return 403, sts_error(*self.deny)
        if n <= self.throttle:
            return 400, sts_error("Throttling", "Rate exceeded")
        if n <= self.throttle + self.fail_5xx:
            return 503, ""
        if form.get("Action") == "GetCallerIdentity":
            if set(form) != {"Action", "Version"}:
                return 400, sts_error("InvalidParameterValue", "unexpected parameters")
            return 200, self._caller_identity(akid, token)
        if form.get("Action") == "GetSessionToken":
            return self._session_token(form, token)
        if form.get("Action") != "AssumeRole":
            return 400, sts_error("InvalidAction", "Action")
        if not ROLE_ARN_RE.match(form.get("RoleArn", "")):
            return 400, sts_error("ValidationError", "RoleArn")
        if not SESSION_NAME_RE.match(form.get("RoleSessionName", "")):
            return 400, sts_error("ValidationError", "RoleSessionName")
        try:
            duration = int(form.get("DurationSeconds", "3600"))
        except ValueError:
            return 400, sts_error("ValidationError", "DurationSeconds")
        if not 900 <= duration <= 43200:
            return 400, sts_error("ValidationError", "DurationSeconds")
        if self.external_id is not None and form.get("ExternalId") != self.external_id:
            return 403, sts_error("AccessDenied", "User is not authorized to perform: "
                                  "sts:AssumeRole (ExternalId mismatch)")

        issued = self._issue(duration, RoleArn=form["RoleArn"],
                             RoleSessionName=form["RoleSessionName"])
        assumed = form["RoleArn"].replace(":iam::", ":sts::").replace(":role/", ":assumed-role/")
        issued["AssumedArn"] = "%s/%s" % (assumed, form["RoleSessionName"])
        xml = ("<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
               "  <AssumeRoleResult>\n    <AssumedRoleUser>\n"
               "      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:%s</AssumedRoleId>\n"
               "      <Arn>%s</Arn>\n    </AssumedRoleUser>\n%s"
               "  </AssumeRoleResult>\n  <ResponseMetadata>\n"
               "    <RequestId>%s</RequestId>\n  </ResponseMetadata>\n"
               "</AssumeRoleResponse>\n"
               % (escape(form["RoleSessionName"]), escape(issued["AssumedArn"]),
                  self._credentials_xml(issued), secrets.token_hex(16)))
        return 200, xml

    def _issue(self, duration, **extra):
        lifetime = self.expires_in if self.expires_in is not None else duration
        issued = {"AccessKeyId": new_access_key_id(), "SecretAccessKey": new_secret(),
                  "SessionToken": new_session_token(),
                  "Expiration": iso8601(self.clock() + lifetime), "DurationSeconds": duration}
        issued.update(extra)
        with self.lock:
            self.issued.append(issued)
        return issued

    @staticmethod
    def _credentials_xml(issued):
        return ("    <Credentials>\n"
                "      <AccessKeyId>%s</AccessKeyId>\n"
                "      <SecretAccessKey>%s</SecretAccessKey>\n"
                "      <SessionToken>%s</SessionToken>\n"
                "      <Expiration>%s</Expiration>\n    </Credentials>\n"
                % (issued["AccessKeyId"], escape(issued["SecretAccessKey"]),
                   issued["SessionToken"], issued["Expiration"]))

    def _caller_identity(self, akid, token):
        arn = self.arns.get(akid) or (
            "arn:aws:sts::123456789012:assumed-role/instance/i-0123" if token
            else "arn:aws:iam::123456789012:user/%s" % akid.lower())
        return ("<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
                "  <GetCallerIdentityResult>\n    <Arn>%s</Arn>\n"
                "    <UserId>%s</UserId>\n    <Account>123456789012</Account>\n"
                "  </GetCallerIdentityResult>\n  <ResponseMetadata>\n"
                "    <RequestId>%s</RequestId>\n  </ResponseMetadata>\n"
                "</GetCallerIdentityResponse>\n" % (escape(arn), akid, secrets.token_hex(16)))

    def _session_token(self, form, token):
        if token is not None:  # as STS: temporary credentials cannot call it
            return 403, sts_error("AccessDenied",
                                  "Cannot call GetSessionToken with session credentials")
        if set(form) - {"Action", "Version", "DurationSeconds"}:
            return 400, sts_error("InvalidParameterValue", "unexpected parameters")
        try:
            duration = int(form.get("DurationSeconds", "43200"))
        except ValueError:
            return 400, sts_error("ValidationError", "DurationSeconds")
        if not 900 <= duration <= 129600:
            return 400, sts_error("ValidationError", "DurationSeconds")
        issued = self._issue(duration, Action="GetSessionToken")
        return 200, ("<GetSessionTokenResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
                     "  <GetSessionTokenResult>\n%s  </GetSessionTokenResult>\n"
                     "  <ResponseMetadata>\n    <RequestId>%s</RequestId>\n"
                     "  </ResponseMetadata>\n</GetSessionTokenResponse>\n"
                     % (self._credentials_xml(issued), secrets.token_hex(16)))


# -------------------------------------------------------------------- IMDS

IMDS_CREDS = "/latest/meta-data/iam/security-credentials/"


class _IMDSHandler(_Handler):
    def do_PUT(self):
        d = self.double
        self.read_body()
        with d.lock:
            d.calls["put"] += 1
        if self.path != "/latest/api/token":
            return self.reply(404, "", "text/plain")
        if self.headers.get("X-Forwarded-For"):
            return self.reply(403, "", "text/plain")
        try:
            ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            return self.reply(400, "", "text/plain")
        if not 1 <= ttl <= 21600:
            return self.reply(400, "", "text/plain")
        tok = base64.b64encode(os.urandom(42)).decode()
        with d.lock:
            d.tokens[tok] = time.time() + ttl
        self.send_response(200)
        self.send_header("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(tok)))
        self.end_headers()
        self.wfile.write(tok.encode())

    def do_GET(self):
        d = self.double
        tok = self.headers.get("X-aws-ec2-metadata-token")
        with d.lock:
            valid = tok is not None and d.tokens.get(tok, 0) > time.time()
            if not valid:
                d.calls["unauthorized"] += 1
        if not valid:  # IMDSv2 only: no token, no answer
            return self.reply(401, "", "text/plain")
        if self.path == IMDS_CREDS:
            with d.lock:
                d.calls["list"] += 1
                if d.revoke_after_list:
                    d.tokens.clear()
            return self.reply(200, d.role, "text/plain")
        if self.path == IMDS_CREDS + d.role:
            with d.lock:
                d.calls["creds"] += 1
            doc = {"Code": "Success", "LastUpdated": iso8601(time.time()), "Type": "AWS-HMAC",
                   "AccessKeyId": d.akid, "SecretAccessKey": d.secret, "Token": d.token,
                   "Expiration": iso8601(d.expiration)}
            return self.reply(200, json.dumps(doc, indent=2), "text/plain")
        return self.reply(404, "", "text/plain")


class IMDSDouble(_Server):
    """EC2 instance metadata, IMDSv2 only, with one instance role."""

    def __init__(self, role="credstore-node-role", lifetime=6 * 3600):
        self.role = role
        self.akid = new_access_key_id()
        self.secret = new_secret()
        self.token = new_session_token()
        self.expiration = time.time() + lifetime
        self.tokens = {}
        self.revoke_after_list = False
        self.calls = {"put": 0, "list": 0, "creds": 0, "unauthorized": 0}
        super().__init__(_IMDSHandler)

    def total_calls(self):
        return self.calls["put"] + self.calls["list"] + self.calls["creds"] + \
            self.calls["unauthorized"]
