"""API.md §4 "Refresh windows (v2)" end to end with botocore: a
RefreshableCredentials from botocore's own container-credentials provider
(AWS_CONTAINER_CREDENTIALS_FULL_URI at the daemon) is used for a simulated
hour of API calls, and refetches exactly once after its first load, because
credstore never hands out credentials inside botocore's 15-minute advisory
window.

One simulated clock drives all three parties: botocore (its time fetcher,
botocore.credentials._local_now), the STS double (issued Expirations and its
signature-age check) and the daemon, whose CLOCK_REALTIME is shifted by
libfaketime reading an offset file on every call (monotonic time stays
real, so timeouts behave). Without the daemon's clock the test could not
tell a daemon that renews from one that serves its cached credentials to
the end.
"""
import datetime
import os
import time
from unittest import mock

import pytest
from botocore import credentials as bc
from botocore.utils import ContainerMetadataFetcher
from dateutil.tz import tzlocal

from aws_doubles import STSDouble
from harness import SLOW, Daemon, basic

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ROLE = "arn:aws:iam::123456789012:role/scanner"

pytestmark = pytest.mark.skipif(not os.path.exists(FAKETIME),
                                reason="libfaketime is not installed (deploy/deps.sh)")


class SimClock:
    """Real time plus an offset, shared through a file libfaketime reads."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self._write()

    def _write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%+ds\n" % self.offset)
        os.replace(tmp, self.path)  # libfaketime never reads half a file

    def advance(self, seconds):
        self.offset += seconds
        self._write()

    def time(self):
        return time.time() + self.offset

    def now(self):
        return datetime.datetime.fromtimestamp(self.time(), tzlocal())


class PatientFetcher(ContainerMetadataFetcher):
    """botocore's fetcher, waiting as long as the wrapper slows the daemon
    (it retries after 2 s, which would count as a second fetch here)."""
    TIMEOUT_SECONDS = 2 * SLOW


def daemon_env(clock):
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": clock.path,
            "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            # libfaketime is preloaded ahead of the ASan runtime.
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}


@pytest.fixture
def world(tmp_path):
    clock = SimClock(str(tmp_path / "faketime"))
    sts = STSDouble({AKID: SECRET})
    sts.clock = clock.time
    d = Daemon(serve_args=["--sts-endpoint", sts.url], env=daemon_env(clock)).start()
    auth = basic(d.admin["id"], d.admin["secret"])
    yield clock, sts, d, auth
    rc = d.stop()
    d.close()
    sts.close()
    assert rc == 0


def test_daemon_clock_follows_the_simulated_clock(world):
    """The premise of the test below: the daemon lives on the simulated clock."""
    clock, sts, d, auth = world
    clock.advance(7200)
    r = d.get("/healthz")
    served = datetime.datetime.strptime(r.headers["Date"], "%a, %d %b %Y %H:%M:%S GMT").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert abs(served - clock.time()) < 30, (served, clock.time())


def test_botocore_refetches_once_in_a_simulated_hour(world):
    clock, sts, d, auth = world
    r = d.post("/api/v1/credentials", headers={"Authorization": auth},
               json={"_id": "sdk", "type": "aws", "accountID": AKID, "secret": {"plain": SECRET},
                     "roleArn": ROLE, "durationSeconds": 3600})
    assert r.status_code == 201, r.text
    uid = d.post("/api/v1/credentials/sdk/usages", json={"type": "Cloud Scan"},
                 headers={"Authorization": auth}).json()["id"]
    provider = bc.ContainerProvider(environ={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI":
            d.url + "/api/v1/aws/container-credentials/sdk?usage=" + uid,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": auth}, fetcher=PatientFetcher())
    with mock.patch.object(bc, "_local_now", clock.now):
        creds = provider.load()
        assert isinstance(creds, bc.RefreshableCredentials)
        # The default time_fetcher was bound when botocore was imported.
        creds._time_fetcher = bc._local_now
        fetch = creds._refresh_using
        fetches = []

        def counted():
            fetches.append(clock.time())
            return fetch()

        creds._refresh_using = counted
        seen, left = set(), []
        for _ in range(61):  # one API call a minute for an hour
            seen.add(creds.get_frozen_credentials().access_key)
            left.append(creds._seconds_remaining())
            clock.advance(60)
    # One refresh, once botocore's advisory window (15 minutes) was reached,
    # answered with new credentials from one new STS call.
    start = clock.time() - 61 * 60
    assert len(fetches) == 1, "refetched at minutes %s" % [round((t - start) / 60) for t in fetches]
    assert min(left) >= 900, left
    assert len(seen) == 2 and sts.calls == 2
    assert [r["form"]["Action"] for r in sts.requests] == ["AssumeRole", "AssumeRole"]
    assert all(r["verified"] for r in sts.requests)
    usage = d.get("/api/v1/credentials/sdk/usages", headers={"Authorization": auth}).json()[0]
    assert usage["resolveCount"] == 2
