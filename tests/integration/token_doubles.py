"""Loopback doubles of the token endpoints credstore brokers (API.md §8),
each checking what it receives the way the real service does:

- EntraDouble: Microsoft Entra ID's client-credentials grant,
  POST /{tenant}/oauth2/v2.0/token (client_id, client_secret, scope,
  grant_type), answering Entra's error documents (error, error_description,
  error_codes) for a wrong secret, tenant or scope.
- GoogleDouble: Google's JWT-bearer grant, POST /token with an RS256
  assertion it verifies with the service-account key's public key
  (python3-cryptography): header alg/typ/kid, iss, aud (its own URL), scope,
  iat/exp; anything wrong answers 400 invalid_grant.
- IBMDouble: IBM Cloud IAM's API-key grant, POST /identity/token.
- KubeDouble: a Kubernetes API server over TLS with its own CA, GET
  /version for a bearer token, a client certificate or basic auth.
- HookDouble: a webhook receiver (for the CA-file test over TLS).

Pki makes CAs, server and client certificates at test time. Run with
Debian's /usr/bin/python3 (cryptography, botocore).
"""
import base64
import datetime
import hmac
import ipaddress
import json
import os
import secrets
import time
import urllib.parse

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from aws_doubles import _Handler, _Server

# ------------------------------------------------------------------- PKI


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Pki:
    """A private CA in @p directory, issuing server and client certificates."""

    def __init__(self, directory, cn="credstore test CA"):
        self.dir = directory
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=2))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .sign(self.key, hashes.SHA256()))
        self.ca_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.ca_file = self._write("ca-%s.pem" % secrets.token_hex(4), self.ca_pem)

    def _write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def issue(self, cn, server=True, names=None):
        """@return (cert_pem, key_pem, cert_file, key_file); a server
        certificate names 127.0.0.1 and localhost, or only @p names."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1)))
        if server:
            sans = [x509.DNSName(n) for n in names] if names else [
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            b = b.add_extension(x509.SubjectAlternativeName(sans), False)
        cert = b.sign(self.key, hashes.SHA256())
        cert_pem, key_pem = cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)
        tag = secrets.token_hex(4)
        return (cert_pem, key_pem, self._write("%s-%s.crt" % (cn, tag), cert_pem),
                self._write("%s-%s.key" % (cn, tag), key_pem))

    def server_tls(self, client_ca=None, names=None):
        _, _, crt, key = self.issue("server", names=names)
        return (crt, key, client_ca)


# -------------------------------------------------------------- common parts

class _FormHandler(_Handler):
    """POST with a form body; the double's answer(rec, form) decides."""

    def do_GET(self):
        self.reply(405, json.dumps({"error": "invalid_request"}), "application/json")

    def do_POST(self):
        d = self.double
        body = self.read_body()
        rec = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": body.decode("latin-1")}
        with d.lock:
            d.calls += 1
        try:
            form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True,
                                         strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            form = None
        if form is not None and any(len(v) != 1 for v in form.values()):
            form = None
        rec["form"] = {k: v[0] for k, v in form.items()} if form is not None else None
        if not rec["headers"].get("content-type", "").startswith(
                "application/x-www-form-urlencoded") or rec["form"] is None:
            status, doc = 400, d.error_doc("invalid_request", "form body expected")
        else:
            status, doc = d.answer(rec, rec["form"])
        rec["status"] = status
        with d.lock:
            d.requests.append(rec)
        if d.delay:
            time.sleep(d.delay)
        self.reply(status, json.dumps(doc), "application/json")


class _TokenDouble(_Server):
    def __init__(self, tls=None):
        self.calls = 0
        self.requests = []
        self.issued = []
        self.delay = 0.0
        self.expires_in = 3599
        super().__init__(_FormHandler, tls)

    def new_token(self):
        tok = "%s.%s.%s" % tuple(base64.urlsafe_b64encode(os.urandom(n)).decode().rstrip("=")
                                 for n in (30, 300, 64))
        with self.lock:
            self.issued.append(tok)
        return tok

    @staticmethod
    def error_doc(code, desc):
        return {"error": code, "error_description": desc}


# ------------------------------------------------------------------- Entra

class EntraDouble(_TokenDouble):
    """Entra ID v2.0 token endpoint for one tenant and app registration."""

    def __init__(self, tenant, client_id, client_secret, tls=None):
        self.tenant, self.client_id, self.client_secret = tenant, client_id, client_secret
        self.echo_secret = False  # a careless upstream that repeats the secret
        super().__init__(tls)

    def answer(self, rec, form):
        parts = rec["path"].split("/")
        if len(parts) != 5 or parts[2:] != ["oauth2", "v2.0", "token"]:
            return 404, self.error_doc("invalid_request", "unexpected path")
        if parts[1] != self.tenant:
            return 400, {"error": "invalid_request", "error_codes": [90002],
                         "error_description": "AADSTS90002: Tenant '%s' not found." % parts[1]}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_codes": [70003],
                         "error_description": "AADSTS70003: The app requested an unsupported "
                                              "grant type."}
        if form.get("client_id") != self.client_id:
            return 400, {"error": "unauthorized_client", "error_codes": [700016],
                         "error_description": "AADSTS700016: Application with identifier '%s' "
                                              "was not found." % form.get("client_id")}
        if not hmac.compare_digest(form.get("client_secret", ""), self.client_secret):
            desc = "AADSTS7000215: Invalid client secret provided."
            if self.echo_secret:
                desc += " You sent: " + form.get("client_secret", "")
            return 401, {"error": "invalid_client", "error_codes": [7000215],
                         "error_description": desc, "trace_id": secrets.token_hex(8)}
        scope = form.get("scope", "")
        if not scope.endswith("/.default") or " " in scope:
            return 400, {"error": "invalid_scope", "error_codes": [1002012],
                         "error_description": "AADSTS1002012: The provided value for scope %s "
                                              "is not valid." % scope}
        rec["scope"] = scope
        return 200, {"token_type": "Bearer", "expires_in": self.expires_in,
                     "ext_expires_in": self.expires_in, "access_token": self.new_token()}


# ------------------------------------------------------------------ Google

def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def new_service_account(project="credstore-test-417203"):
    """A service-account key JSON (dict) with a fresh RSA key, and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "scanner@%s.iam.gserviceaccount.com" % project
    return {"type": "service_account", "project_id": project,
            "private_key_id": secrets.token_hex(20), "private_key": _pem_key(key).decode(),
            "client_email": email, "client_id": str(secrets.randbelow(10 ** 21)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/x"}, key


class GoogleDouble(_TokenDouble):
    """oauth2.googleapis.com/token for one service account (its public key)."""

    GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    def __init__(self, sa, public_key, tls=None):
        self.sa, self.public_key = sa, public_key
        super().__init__(tls)
        self.token_url = self.url + "/token"

    def invalid_grant(self, rec, why):
        rec["why"] = why
        return 400, self.error_doc("invalid_grant", why)

    def answer(self, rec, form):
        if rec["path"] != "/token":
            return 404, self.error_doc("invalid_request", "unexpected path")
        if form.get("grant_type") != self.GRANT or set(form) != {"grant_type", "assertion"}:
            return 400, self.error_doc("unsupported_grant_type", "Invalid grant_type.")
        parts = form["assertion"].split(".")
        if len(parts) != 3:
            return self.invalid_grant(rec, "Invalid JWT: Token must be a short-lived token")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except ValueError:
            return self.invalid_grant(rec, "Invalid JWT: unparseable")
        rec["jwt_header"], rec["jwt_claims"] = header, claims
        if header != {"alg": "RS256", "typ": "JWT", "kid": self.sa["private_key_id"]}:
            return self.invalid_grant(rec, "Invalid JWT header.")
        try:
            self.public_key.verify(sig, ("%s.%s" % (parts[0], parts[1])).encode(),
                                   padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return self.invalid_grant(rec, "Invalid JWT Signature.")
        now = time.time()
        if claims.get("iss") != self.sa["client_email"]:
            return self.invalid_grant(rec, "Invalid issuer.")
        if claims.get("aud") != self.token_url:
            return self.invalid_grant(rec, "Invalid JWT: audience is not the token URL.")
        if not isinstance(claims.get("iat"), int) or not isinstance(claims.get("exp"), int) or \
                abs(claims["iat"] - now) > 300 or not 0 < claims["exp"] - claims["iat"] <= 3600:
            return self.invalid_grant(rec, "Invalid JWT: Token must be a short-lived token "
                                           "(60 minutes) and in a reasonable timeframe.")
        if not claims.get("scope"):
            return self.invalid_grant(rec, "Invalid JWT: no scope.")
        rec["scope"] = claims["scope"]
        return 200, {"access_token": "ya29.c." + self.new_token(), "expires_in": self.expires_in,
                     "token_type": "Bearer"}

    def new_token(self):
        tok = base64.urlsafe_b64encode(os.urandom(120)).decode().rstrip("=")
        with self.lock:
            self.issued.append("ya29.c." + tok)
        return tok


# --------------------------------------------------------------------- IBM

class IBMDouble(_TokenDouble):
    """iam.cloud.ibm.com /identity/token for one API key."""

    GRANT = "urn:ibm:params:oauth:grant-type:apikey"

    def __init__(self, apikey, tls=None):
        self.apikey = apikey
        super().__init__(tls)

    @staticmethod
    def error_doc(code, desc):
        return {"errorCode": code, "errorMessage": desc,
                "context": {"requestId": secrets.token_hex(8)}}

    def answer(self, rec, form):
        if rec["path"] != "/identity/token":
            return 404, self.error_doc("BXNIM0400E", "unexpected path")
        if rec["headers"].get("accept") != "application/json":
            return 400, self.error_doc("BXNIM0109E", "Accept must be application/json")
        if form.get("grant_type") != self.GRANT or set(form) != {"grant_type", "apikey"}:
            return 400, self.error_doc("BXNIM0103E", "Unsupported grant type.")
        if not hmac.compare_digest(form["apikey"], self.apikey):
            return 400, self.error_doc("BXNIM0415E", "Provided API key could not be found.")
        now = int(time.time())
        return 200, {"access_token": self.new_token(), "refresh_token": "not_supported",
                     "ims_user_id": 1234567, "token_type": "Bearer",
                     "expires_in": self.expires_in, "expiration": now + self.expires_in,
                     "scope": "ibm openid"}


# -------------------------------------------------------------- Kubernetes

class _KubeHandler(_Handler):
    def do_GET(self):
        d = self.double
        auth = self.headers.get("Authorization", "")
        peer = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        cn = None
        if peer:
            cn = dict(x[0] for x in peer.get("subject", ()))["commonName"]
        rec = {"path": self.path, "authorization": auth, "client_cn": cn}
        with d.lock:
            d.calls += 1
            d.requests.append(rec)
        if self.path != "/version":
            return self.reply(404, json.dumps({"kind": "Status", "code": 404}), "application/json")
        ok = (d.token and auth == "Bearer " + d.token) or (d.client_cn and cn == d.client_cn) or \
            (d.basic and auth == "Basic " + base64.b64encode(d.basic.encode()).decode())
        if not ok:
            return self.reply(401, json.dumps({"kind": "Status", "apiVersion": "v1",
                                               "metadata": {}, "status": "Failure",
                                               "message": "Unauthorized", "reason":
                                               "Unauthorized", "code": 401}), "application/json")
        self.reply(200, json.dumps({"major": "1", "minor": "29", "gitVersion": d.git_version,
                                    "gitCommit": "0" * 40, "platform": "linux/amd64"}),
                   "application/json")


class KubeDouble(_Server):
    """An API server on https://127.0.0.1 with a certificate from @p pki."""

    def __init__(self, pki, token=None, client_cn=None, basic=None, client_ca=None, names=None):
        self.token, self.client_cn, self.basic = token, client_cn, basic
        self.git_version = "v1.29.3+credstore-double"
        self.calls = 0
        self.requests = []
        super().__init__(_KubeHandler, pki.server_tls(client_ca, names))


# -------------------------------------------------------------------- hooks

class _HookHandler(_Handler):
    def do_POST(self):
        body = self.read_body()
        with self.double.lock:
            self.double.received.append(body)
        self.reply(204, b"", "text/plain")


class HookDouble(_Server):
    def __init__(self, tls=None):
        self.received = []
        super().__init__(_HookHandler, tls)
