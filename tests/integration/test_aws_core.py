"""providers/aws/ against loopback doubles: static keys, AssumeRole over
stored keys or the instance role (IMDSv2), SigV4 verified independently by
botocore in the STS double, endpoint/region rules, STS errors, throttling
retries, the cache and single-flight.

Driven through tests/provider_probe (path in CS_PROVIDER_PROBE, set by ctest);
CREDSTORE_TEST_WRAPPER (e.g. valgrind) prefixes it when set.
"""
import datetime
import json
import os
import re
import shlex
import subprocess
import time

import pytest

from aws_doubles import IMDSDouble, STSDouble

PROBE = os.environ.get("CS_PROVIDER_PROBE") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "tests", "provider_probe")
WRAPPER = shlex.split(os.environ.get("CREDSTORE_TEST_WRAPPER", "") or "")
SLOW = 10 if WRAPPER else 1

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ROLE = "arn:aws:iam::123456789012:role/credstore-scanner"


class Probe:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stderr = proc.stderr
        bad = re.findall(r"^(==\d+==.*|.*(?:AddressSanitizer|LeakSanitizer|runtime error).*)$",
                         proc.stderr, re.M)
        assert not bad and proc.returncode != 99, "\n".join(bad[:20])  # sanitizers, valgrind
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("probe printed no JSON (rc %d): %s %s"
                                 % (proc.returncode, proc.stdout, proc.stderr))
        self.results = doc["results"]
        self.stats = doc["stats"]

    @property
    def first(self):
        return self.results[0]


def probe(*args, secret=SECRET, timeout=60):
    env = dict(os.environ)
    env.pop("AWS_PROBE_SECRET", None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"  # the doubles are local
    if secret is not None:
        env["AWS_PROBE_SECRET"] = secret  # not on the command line
    if "--timeout-ms" not in args:
        # Per upstream call: a call that outlasts it is retried, which would
        # count twice at the double; under valgrind the probe is ~10x slower.
        args = (*args, "--timeout-ms", 5000 * SLOW)
    p = subprocess.run(WRAPPER + [PROBE, *map(str, args)], capture_output=True, text=True,
                       env=env, timeout=timeout * SLOW)
    return Probe(p)


def keys_args(sts):
    return ["--sts", sts.url, "--akid", AKID]


def epoch(iso):
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def assert_issued(result, issued):
    assert result["ok"], result
    assert result["AccessKeyId"] == issued["AccessKeyId"]
    assert result["SecretAccessKey"] == issued["SecretAccessKey"]
    assert result["SessionToken"] == issued["SessionToken"]
    assert result["Expiration"] == issued["Expiration"]


@pytest.fixture
def sts():
    d = STSDouble({AKID: SECRET})
    yield d
    d.close()


@pytest.fixture
def imds():
    d = IMDSDouble()
    yield d
    d.close()


# ------------------------------------------------------------- static keys

def test_static_keys_make_no_upstream_call(sts):
    p = probe(*keys_args(sts), "--repeat", 2)
    assert p.rc == 0, p.stderr
    for r in p.results:
        assert r["ok"] and r["AccessKeyId"] == AKID and r["SecretAccessKey"] == SECRET
        assert "SessionToken" not in r and "Expiration" not in r
    assert sts.calls == 0
    assert p.stats["sts_calls"] == 0 and p.stats["imds_calls"] == 0


# -------------------------------------------------- AssumeRole, stored keys

def test_assume_role_with_stored_keys_global_endpoint(sts):
    p = probe(*keys_args(sts), "--role", ROLE)
    assert p.rc == 0, p.stderr
    assert sts.calls == 1 and p.stats["sts_calls"] == 1
    assert_issued(p.first, sts.issued[0])
    req = sts.requests[0]
    assert req["verified"] is True           # botocore recomputed the same signature
    assert req["scope_region"] == "us-east-1"  # the global endpoint signs for us-east-1
    assert {"host", "x-amz-date", "content-type"} <= set(req["signed_headers"])
    assert req["security_token"] is None
    assert req["form"] == {"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": ROLE,
                           "RoleSessionName": "credstore", "DurationSeconds": "3600"}
    assert abs(epoch(p.first["Expiration"]) - (time.time() + 3600)) < 60


def test_wrong_secret_fails_signature_check(sts):
    # The double knows the real secret; signing with another must be refused.
    p = probe(*keys_args(sts), "--role", ROLE, secret=SECRET[:-1] + "x")
    assert p.rc != 0
    assert p.first["code"] == "SignatureDoesNotMatch"
    assert p.first["http_status"] == 502
    assert sts.requests[0]["verified"] is False
    assert sts.calls == 1  # an STS verdict, not retried


def test_duration_and_session_name(sts):
    p = probe(*keys_args(sts), "--role", ROLE, "--duration", 900, "--session-name",
              "usage-42@scan.example")
    assert p.rc == 0, p.stderr
    form = sts.requests[0]["form"]
    assert form["DurationSeconds"] == "900"
    assert form["RoleSessionName"] == "usage-42@scan.example"
    assert abs(epoch(p.first["Expiration"]) - (time.time() + 900)) < 60


def test_bad_session_name_is_refused_locally(sts):
    p = probe(*keys_args(sts), "--role", ROLE, "--session-name", "no spaces allowed")
    assert p.first["rc"] == "invalid_field" and p.first["http_status"] == 400
    assert sts.calls == 0


def test_external_id(sts):
    ext = "tenant-7/ext:id+x=y,z.w@v_-"
    sts.external_id = ext
    p = probe(*keys_args(sts), "--role", ROLE, "--external-id", ext)
    assert p.rc == 0, p.stderr
    assert sts.requests[0]["form"]["ExternalId"] == ext  # survived form encoding
    assert_issued(p.first, sts.issued[0])

    # The double does check it: a wrong one is denied.
    p = probe(*keys_args(sts), "--role", ROLE, "--external-id", "another-id")
    assert p.first["code"] == "AccessDenied"


def test_regional_endpoint_signs_for_region():
    sts = STSDouble({AKID: SECRET}, region="eu-west-1")
    try:
        # --sts-endpoint replaced the URL (the request reached the double),
        # the signature is still scoped to the credential's region.
        p = probe(*keys_args(sts), "--role", ROLE, "--regional", "--region", "eu-west-1")
        assert p.rc == 0, p.stderr
        assert sts.requests[0]["scope_region"] == "eu-west-1"
        assert sts.requests[0]["verified"] is True
        assert_issued(p.first, sts.issued[0])

        # Without useSTSRegionalEndpoint the region is not used for signing:
        # us-east-1, which this double (playing eu-west-1) refuses.
        p = probe(*keys_args(sts), "--role", ROLE, "--region", "eu-west-1")
        assert p.first["code"] == "SignatureDoesNotMatch"
        assert sts.requests[-1]["scope_region"] == "us-east-1"
    finally:
        sts.close()


# ----------------------------------------------------------- instance role

def test_instance_role_via_imdsv2(imds):
    p = probe("--imds", imds.url, "--instance-role", "--repeat", 3, secret=None)
    assert p.rc == 0, p.stderr
    for r in p.results:
        assert r["ok"]
        assert r["AccessKeyId"] == imds.akid and r["SecretAccessKey"] == imds.secret
        assert r["SessionToken"] == imds.token
        assert abs(epoch(r["Expiration"]) - imds.expiration) < 2
    # One token, one role list, one credentials read; then the cache.
    assert imds.calls == {"put": 1, "list": 1, "creds": 1, "unauthorized": 0}
    assert p.stats["imds_calls"] == 3
    assert p.stats["cache_misses"] == 1 and p.stats["cache_hits"] == 2


def test_imds_token_renewed_once_on_401(imds):
    imds.revoke_after_list = True  # the token dies between the two GETs
    p = probe("--imds", imds.url, "--instance-role", secret=None)
    assert p.rc == 0, p.stderr
    assert p.first["AccessKeyId"] == imds.akid
    assert imds.calls == {"put": 2, "list": 1, "creds": 1, "unauthorized": 1}
    assert p.stats["imds_calls"] == imds.total_calls()


def test_instance_role_then_assume_role(imds):
    # STS accepts the instance identity only with its session token.
    sts = STSDouble({imds.akid: imds.secret}, tokens={imds.akid: imds.token})
    try:
        p = probe("--sts", sts.url, "--imds", imds.url, "--instance-role", "--role", ROLE,
                  "--repeat", 2, secret=None)
        assert p.rc == 0, p.stderr
        assert sts.calls == 1
        req = sts.requests[0]
        assert req["verified"] is True
        assert req["security_token"] == imds.token
        assert "x-amz-security-token" in req["signed_headers"]
        assert_issued(p.first, sts.issued[0])
        assert p.results[1] == p.results[0]
        assert p.first["AccessKeyId"] != imds.akid
        assert imds.calls["creds"] == 1
    finally:
        sts.close()


# -------------------------------------------------------------- STS errors

def test_access_denied_is_upstream_error_with_sts_message(sts):
    msg = ("User: arn:aws:iam::123456789012:user/scanner is not authorized to perform: "
           "sts:AssumeRole on resource: " + ROLE)
    sts.deny = ("AccessDenied", msg)
    p = probe(*keys_args(sts), "--role", ROLE)
    r = p.first
    assert not r["ok"]
    assert r["rc"] == "upstream_error" and r["http_status"] == 502
    assert p.rc == r["errno"] != 0  # exit status is CS_ERR_UPSTREAM
    assert r["code"] == "AccessDenied"
    assert r["message"] == msg
    assert sts.calls == 1  # not retried
    assert "AccessDenied" in p.stderr and SECRET not in p.stderr


def test_throttling_is_retried(sts):
    sts.throttle = 2
    t0 = time.time()
    p = probe(*keys_args(sts), "--role", ROLE)
    assert p.rc == 0, p.stderr
    assert sts.calls == 3 and p.stats["sts_calls"] == 3
    assert_issued(p.first, sts.issued[0])
    assert time.time() - t0 >= 0.3  # 100 ms + 200 ms of backoff at least


def test_throttling_gives_up_after_three_attempts(sts):
    sts.throttle = 10
    p = probe(*keys_args(sts), "--role", ROLE)
    assert p.first["code"] == "Throttling" and p.first["http_status"] == 502
    assert sts.calls == 3


def test_5xx_is_retried(sts):
    sts.fail_5xx = 1
    p = probe(*keys_args(sts), "--role", ROLE)
    assert p.rc == 0, p.stderr
    assert sts.calls == 2


# ------------------------------------------------------ cache, single-flight

def test_cache_hit_makes_no_second_call(sts):
    p = probe(*keys_args(sts), "--role", ROLE, "--repeat", 3)
    assert p.rc == 0, p.stderr
    assert sts.calls == 1
    assert p.results[0] == p.results[1] == p.results[2]
    assert p.stats["cache_hits"] == 2 and p.stats["cache_misses"] == 1


def test_concurrent_cold_resolves_make_one_call(sts):
    sts.delay = 0.5  # every thread arrives while the one call is in flight
    p = probe(*keys_args(sts), "--role", ROLE, "--parallel", 50)
    assert p.rc == 0, p.stderr
    assert len(p.results) == 50
    assert sts.calls == 1 and p.stats["sts_calls"] == 1
    assert all(r == p.results[0] for r in p.results)
    assert_issued(p.first, sts.issued[0])
    assert p.stats["cache_misses"] == 1 and p.stats["cache_hits"] == 49


def test_concurrent_waiters_share_an_error(sts):
    sts.delay = 0.5
    sts.deny = ("AccessDenied", "nope")
    p = probe(*keys_args(sts), "--role", ROLE, "--parallel", 20)
    assert sts.calls == 1
    assert all(r["code"] == "AccessDenied" and r["message"] == "nope" for r in p.results)


def test_invalidate_and_new_version_make_new_calls(sts):
    p = probe(*keys_args(sts), "--role", ROLE, "--repeat", 2, "--invalidate",
              "--then-version", 8)
    assert p.rc == 0, p.stderr
    assert sts.calls == 3
    a, a2, b, c = p.results
    assert a == a2
    assert_issued(a, sts.issued[0])
    assert_issued(b, sts.issued[1])
    assert_issued(c, sts.issued[2])
    assert len({a["AccessKeyId"], b["AccessKeyId"], c["AccessKeyId"]}) == 3


def test_short_duration_is_cached_too(sts):
    # 900 s is the shortest STS grants, too short to stay out of the SDKs'
    # 15-minute window: such credentials are served until 11 minutes are
    # left (out of botocore's mandatory 10), so they are reused at first.
    # Different durations are different keys.
    p = probe(*keys_args(sts), "--role", ROLE, "--duration", 900, "--repeat", 2)
    assert sts.calls == 1 and p.results[0] == p.results[1]
    p = probe(*keys_args(sts), "--role", ROLE, "--duration", 1800, "--then-version", 0)
    assert sts.calls == 2  # a new process: its own cache; same key again → hit
    assert p.results[0] == p.results[1]


def test_concurrent_cold_resolves_over_the_instance_role(imds):
    # Nested single-flight: 30 threads, one IMDS fetch and one STS call.
    sts = STSDouble({imds.akid: imds.secret}, tokens={imds.akid: imds.token})
    sts.delay = 0.3
    try:
        p = probe("--sts", sts.url, "--imds", imds.url, "--instance-role", "--role", ROLE,
                  "--parallel", 30, secret=None)
        assert p.rc == 0, p.stderr
        assert sts.calls == 1
        assert imds.calls == {"put": 1, "list": 1, "creds": 1, "unauthorized": 0}
        assert all(r == p.results[0] for r in p.results)
        assert_issued(p.first, sts.issued[0])
    finally:
        sts.close()


# ------------------------------------------------------- refresh windows

def test_credentials_inside_the_window_are_renewed(sts):
    # An hour was asked, but what STS gave has 14 minutes left (as a cached
    # entry would after 46 minutes): the next resolve renews before handing
    # anything out, so an SDK never gets credentials under 15 minutes.
    sts.expires_in = 14 * 60
    p = probe(*keys_args(sts), "--role", ROLE, "--repeat", 3)
    assert p.rc == 0, p.stderr
    assert sts.calls == 3
    for r, issued in zip(p.results, sts.issued):
        assert_issued(r, issued)
    assert p.stats["cache_misses"] == 3


def test_credentials_outside_the_window_are_served(sts):
    sts.expires_in = 50 * 60
    p = probe(*keys_args(sts), "--role", ROLE, "--repeat", 3)
    assert p.rc == 0, p.stderr
    assert sts.calls == 1
    assert all(r == p.results[0] for r in p.results)
    assert p.stats["cache_hits"] == 2
    # Just outside (16 min + a margin): still served.
    sts.expires_in = 17 * 60
    p = probe(*keys_args(sts), "--role", ROLE, "--repeat", 2)
    assert sts.calls == 2 and p.results[0] == p.results[1]


def test_renewal_is_single_flight(sts):
    # One resolve caches credentials already inside the window; 50 resolves
    # then arrive together: one renewal for all of them.
    sts.expires_in = 14 * 60
    sts.delay = 0.5
    p = probe(*keys_args(sts), "--role", ROLE, "--warm", 1, "--parallel", 50)
    assert p.rc == 0, p.stderr
    assert sts.calls == 2 and len(p.results) == 51
    assert_issued(p.results[0], sts.issued[0])
    for r in p.results[1:]:
        assert_issued(r, sts.issued[1])


def test_short_durations_are_renewed_under_eleven_minutes(sts):
    # Durations of 16 minutes or less cannot leave the 15-minute window:
    # they are served while more than 11 minutes remain...
    p = probe(*keys_args(sts), "--role", ROLE, "--duration", 900, "--repeat", 3)
    assert sts.calls == 1 and p.results[0] == p.results[2]
    # ...and renewed below that.
    sts.expires_in = 10 * 60 + 50
    p = probe(*keys_args(sts), "--role", ROLE, "--duration", 900, "--repeat", 3)
    assert sts.calls == 4
    assert len({r["AccessKeyId"] for r in p.results}) == 3


def test_failed_renewal_serves_the_cached_credentials(sts):
    # STS refuses the renewal while the cached credentials still have 14
    # minutes: they are served rather than a 502 (as the SDKs keep theirs
    # when an advisory refresh fails), and STS is not asked again at once.
    sts.expires_in = 14 * 60
    sts.deny_after = 1
    p = probe(*keys_args(sts), "--role", ROLE, "--repeat", 3)
    assert p.rc == 0, p.stderr
    assert sts.calls == 2
    for r in p.results:
        assert_issued(r, sts.issued[0])
    assert "AccessDenied" in p.stderr and SECRET not in p.stderr
    # Credentials about to expire are not a fallback: the error comes through.
    sts2 = STSDouble({AKID: SECRET})
    try:
        sts2.expires_in = 4 * 60
        sts2.deny_after = 1
        p = probe(*keys_args(sts2), "--role", ROLE, "--repeat", 2)
        assert p.results[0]["ok"] and not p.results[1]["ok"]
        assert p.results[1]["code"] == "AccessDenied"
    finally:
        sts2.close()


def test_instance_role_near_expiry_is_refetched(imds):
    # IMDS credentials with 12 minutes left: renewed on the next resolve
    # (IMDS hands out new ones well before expiry).
    imds.expiration = time.time() + 12 * 60
    p = probe("--imds", imds.url, "--instance-role", "--repeat", 2, secret=None)
    assert p.rc == 0, p.stderr
    assert imds.calls["creds"] == 1  # 12 min > 11: served once more
    imds.expiration = time.time() + 10 * 60
    p = probe("--imds", imds.url, "--instance-role", "--repeat", 2, secret=None)
    assert imds.calls["creds"] == 3


# ----------------------------------------------------------- GetSessionToken

def test_session_token_for_static_keys(sts):
    p = probe(*keys_args(sts), "--session", "--duration", 7200, "--repeat", 2)
    assert p.rc == 0, p.stderr
    assert sts.calls == 1
    req = sts.requests[0]
    assert req["verified"] is True and req["security_token"] is None
    assert req["form"] == {"Action": "GetSessionToken", "Version": "2011-06-15",
                           "DurationSeconds": "7200"}
    assert_issued(p.first, sts.issued[0])
    assert p.results[1] == p.first
    assert abs(epoch(p.first["Expiration"]) - (time.time() + 7200)) < 60
    # Not with a role, nor with the instance identity.
    p = probe(*keys_args(sts), "--session", "--role", ROLE)
    assert p.first["rc"] == "invalid_field"
    assert sts.calls == 1
