"""Concurrent updates of one credential (tests/bench/README.md): --clients
keep-alive clients each send --puts PUT /api/v1/credentials/{id} without
If-Match, all to the same credential, at the same time. Every PUT should
succeed (200): without If-Match a writer asks for "last write wins". Counts
the answers by status, the versions the store went through, and how long it
took; a 503 is an update given up after the server's optimistic retries.

  /usr/bin/python3 tests/bench/contend.py [--bin build-bench/credstore] [--clients 4]
      [--puts 500] [--threads 32] [--rounds 1]

Not part of the test suite; prints markdown on stdout.
"""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import KEYS, Client, Server, login  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRED = "contended"


def one_round(port, auth, clients, puts):
    """One burst; returns (status counter, first error bodies, seconds, version after)."""
    statuses = collections.Counter()
    errors = []
    lock = threading.Lock()
    go = threading.Barrier(clients)

    def worker(k):
        c = Client(port, auth)
        c.call("GET", "/api/v1/version")  # connect before the barrier
        go.wait()
        for i in range(puts):
            body = dict(KEYS, type="aws", description="client %d put %d" % (k, i))
            st, raw, _ = c.call("PUT", "/api/v1/credentials/" + CRED, body)
            with lock:
                statuses[st] += 1
                if st != 200 and len(errors) < 3:
                    errors.append("%d %s" % (st, raw[:200].decode(errors="replace")))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.monotonic() - t0
    cred = Client(port, auth).json("GET", "/api/v1/credentials/" + CRED, want=(200,))
    return statuses, errors, secs, cred.get("version")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-bench", "credstore"))
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--puts", type=int, default=500, help="PUTs per client")
    ap.add_argument("--threads", type=int, default=32, help="credstore serve --threads")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit("contend.py: no credstore binary at %s" % args.bin)

    work = tempfile.mkdtemp(prefix="credstore-contend-")
    srv = None
    try:
        data = os.path.join(work, "data")
        r = subprocess.run([args.bin, "init", "--data", data], capture_output=True, text=True,
                           check=True)
        admin = json.loads(r.stdout)
        # No STS double: these credentials are never resolved.
        srv = Server(args.bin, data, args.threads, "http://127.0.0.1:9",
                     os.path.join(work, "serve.log"))
        auth = login(srv.port, admin)
        Client(srv.port, auth).json("POST", "/api/v1/credentials",
                                    dict(KEYS, _id=CRED, type="aws", description="start"))
        print("%d clients × %d PUT /api/v1/credentials/%s without If-Match, at once; serve "
              "--threads %d; load average %s.\n"
              % (args.clients, args.puts, CRED, args.threads,
                 " ".join(open("/proc/loadavg").read().split()[:3])))
        print("| round | PUTs | 200 | 503 | other | PUTs/s | version before → after | "
              "first non-200 answer |")
        print("|---:|---:|---:|---:|---:|---:|---|---|")
        version = 1
        for rnd in range(1, args.rounds + 1):
            st, errs, secs, after = one_round(srv.port, auth, args.clients, args.puts)
            n = sum(st.values())
            other = {k: v for k, v in st.items() if k not in (200, 503)}
            print("| %d | %d | %d | %d | %s | %.0f | %s → %s | %s |"
                  % (rnd, n, st[200], st[503],
                     ", ".join("%d: %d" % kv for kv in sorted(other.items())) or "0",
                     n / secs, version, after, errs[0].replace("|", "\\|") if errs else "-"),
                  flush=True)
            version = after
    finally:
        if srv:
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
