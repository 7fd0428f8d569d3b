"""The STS double of tests/integration/aws_doubles.py as a standalone
process for tests/bench/run.sh: accepts the benchmark's access key, prints
"port N" on stdout once it listens, serves until SIGTERM/SIGINT.

GET /_calls answers {"calls": N, "ok": M} (STS itself answers GET with 405).
Run with Debian's /usr/bin/python3 (botocore).
"""
import json
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from aws_doubles import STSDouble, _STSHandler  # noqa: E402

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


class _CountingHandler(_STSHandler):
    def do_GET(self):
        if self.path != "/_calls":
            return super().do_GET()
        d = self.double
        with d.lock:
            doc = {"calls": d.calls, "ok": len([r for r in d.requests if r["status"] == 200])}
        self.reply(200, json.dumps(doc), "application/json")


class BenchSTS(STSDouble):
    """STSDouble whose handler also answers GET /_calls."""

    def __init__(self, delay=0.0):
        super().__init__({AKID: SECRET}, handler=_CountingHandler)
        self.delay = delay


def main():
    sts = BenchSTS(delay=float(os.environ.get("BENCH_STS_DELAY", "0")))
    print("port %d" % sts.port, flush=True)
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.set())
    stop.wait()
    sts.close()


if __name__ == "__main__":
    main()
