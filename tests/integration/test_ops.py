"""Issue 8: TLS and Prometheus metrics."""
import re
import socket
import ssl
import subprocess
import warnings

import pytest
import requests

from harness import Daemon, assert_error, run_cli
from test_auth import basic
from test_credentials import valid_bodies


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "server.crt", d / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return str(crt), str(key)


def handshake(port, cafile, version):
    ctx = ssl.create_default_context(cafile=cafile)
    # Security level 0 lets this client offer old versions, so a refusal
    # comes from the server.
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.version()


def test_client_can_offer_tls_1_1(cert):
    """Control: against a server that allows it, this client speaks TLS 1.1."""
    crt, key = cert
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", crt,
                          "-key", key, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-quiet"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time
        for _ in range(100):
            try:
                assert handshake(port, crt, ssl.TLSVersion.TLSv1_1) == "TLSv1.1"
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        else:
            raise AssertionError("openssl s_server did not start")
    finally:
        p.kill()
        p.wait()


def test_tls_serves_https_with_modern_versions_only(cert):
    crt, key = cert
    d = Daemon(serve_args=["--tls-cert", crt, "--tls-key", key])
    d.scheme = "https"
    d.start()
    try:
        r = requests.get(d.url + "/healthz", verify=crt, timeout=10)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        auth = {"Authorization": basic(d.admin["id"], d.admin["secret"])}
        r = requests.post(d.url + "/api/v1/login", verify=crt, timeout=10,
                          json={"username": d.admin["id"], "password": d.admin["secret"]})
        assert r.status_code == 200 and r.json()["token"]
        assert handshake(d.port, crt, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
        assert handshake(d.port, crt, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            handshake(d.port, crt, ssl.TLSVersion.TLSv1_1)
        # Plain HTTP on the TLS port gets no HTTP answer.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get("http://127.0.0.1:%d/healthz" % d.port, timeout=5)
        assert requests.get(d.url + "/api/v1/version", headers=auth, verify=crt,
                            timeout=10).status_code == 200
        assert d.stop() == 0
        assert '(TLS)' in d.log()
    finally:
        d.close()


def test_tls_allows_non_loopback_and_checks_files(cert, tmp_path):
    crt, key = cert
    d = Daemon()
    try:
        r = run_cli("serve", "--data", d.data, "--listen", "127.0.0.1:0", "--tls-cert", crt,
                    timeout=20)
        assert r.returncode != 0 and "go together" in r.stderr
        bogus = tmp_path / "bogus.pem"
        bogus.write_text("not a certificate")
        r = run_cli("serve", "--data", d.data, "--listen", "127.0.0.1:0", "--tls-cert",
                    str(bogus), "--tls-key", key, timeout=20)
        assert r.returncode != 0 and "PEM" in r.stderr
        # With TLS a non-loopback address is allowed.
        d.serve_args = ["--tls-cert", crt, "--tls-key", key]
        d.scheme = "https"
        d.start(extra=["--listen", "0.0.0.0:0"])
        assert requests.get(d.url + "/healthz", verify=crt, timeout=10).status_code == 200
        assert d.stop() == 0
    finally:
        d.close()


LINE = re.compile(r'^(#.*|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+)$')


def parse_metrics(text):
    samples = {}
    for line in text.splitlines():
        assert LINE.match(line), line
        if line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def test_metrics_in_prometheus_format():
    d = Daemon().start()
    try:
        auth = {"Authorization": basic(d.admin["id"], d.admin["secret"])}
        for _ in range(5):
            d.get("/healthz")
        d.get("/nope")
        d.post("/api/v1/credentials", json=dict(valid_bodies()["ibm-1"], _id="m1"), headers=auth)
        assert_error(d.get("/metrics"), 401)
        r = d.get("/metrics", headers=auth)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
        m = parse_metrics(r.text)
        assert m['credstore_http_requests_total{route="healthz",status="200"}'] >= 5
        assert m['credstore_http_requests_total{route="none",status="404"}'] >= 1
        assert m['credstore_http_requests_total{route="credentials_upsert",status="201"}'] == 1
        buckets = [(k, v) for k, v in m.items()
                   if k.startswith('credstore_http_request_duration_seconds_bucket{route="healthz"')]
        assert len(buckets) >= 10
        values = [v for _, v in buckets]
        assert values == sorted(values) and values[-1] == m[
            'credstore_http_request_duration_seconds_count{route="healthz"}']
        assert m['credstore_store_records{table="credentials"}'] == 1
        assert m["credstore_store_used_bytes"] > 0 and m["credstore_store_map_bytes"] > 0
        for name in ["credstore_sts_calls_total", "credstore_aws_cache_hits_total",
                     "credstore_aws_cache_misses_total", "credstore_webhook_outbox_depth",
                     "credstore_webhook_failures_total"]:
            assert name in m, name
        assert m["credstore_webhook_outbox_depth"] == 0
        assert d.admin["secret"] not in r.text
        # The counters move.
        d.get("/healthz")
        m2 = parse_metrics(d.get("/metrics", headers=auth).text)
        assert m2['credstore_http_requests_total{route="healthz",status="200"}'] > \
            m['credstore_http_requests_total{route="healthz",status="200"}']
        assert d.stop() == 0
    finally:
        d.close()
