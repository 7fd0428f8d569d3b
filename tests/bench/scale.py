"""credstore at scale, for tests/bench/run.sh (prints markdown on stdout):

1. N concurrent cold resolves of one AWS role credential: N connections
   opened first, then every request sent at once (asyncio, raw sockets);
   counts the AssumeRole calls the STS double receives (single-flight: must
   be 1). The double answers after --sts-delay seconds so the requests
   overlap the call. Run at the benchmark's --threads and at --load-threads.
2. --records credentials created through the API (parallel keep-alive
   clients), with the server's RSS and list-page latency at 1k, 10k, 100k:
   first page, a deep offset page (offset walks are O(offset)), and a
   filtered/sorted page (a full scan). Then the same store served again at
   the benchmark's --threads: RSS and latency after a restart.

Run with Debian's /usr/bin/python3 (botocore, for the STS double).
"""
import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stsd import AKID, SECRET, BenchSTS  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/bench"
KEYS = {"accountID": AKID, "secret": {"plain": SECRET}}


def log(msg):
    print("[scale] " + msg, file=sys.stderr, flush=True)


class Server:
    """One `credstore serve` on a free loopback port."""

    def __init__(self, binary, data, threads, sts_url, logpath):
        self.binary, self.data, self.threads = binary, data, threads
        self.logf = open(logpath, "ab")
        start = os.path.getsize(logpath)
        self.proc = subprocess.Popen(
            [binary, "serve", "--data", data, "--listen", "127.0.0.1:0", "--threads",
             str(threads), "--token-ttl", "86400", "--log-level", "info",
             "--sts-endpoint", sts_url], stdout=subprocess.DEVNULL, stderr=self.logf)
        deadline = time.time() + 30
        while True:
            with open(logpath, "rb") as f:
                f.seek(start)
                m = re.search(rb"listening on \S+ port (\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("credstore serve did not start; see " + logpath)
            time.sleep(0.02)

    def rss(self):
        """VmRSS, RssAnon, RssFile, VmHWM in MiB."""
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    out[k] = int(v.split()[0]) / 1024.0
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()


class Client:
    """A keep-alive HTTP/1.1 connection with an Authorization header."""

    def __init__(self, port, auth=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.auth = auth

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.auth:
            headers["Authorization"] = self.auth
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        raw = r.read()
        return r.status, raw, r

    def json(self, method, path, body=None, want=(200, 201)):
        st, raw, _ = self.call(method, path, body)
        if st not in want:
            raise RuntimeError("%s %s: %d %s" % (method, path, st, raw[:300]))
        return json.loads(raw) if raw else None


def login(port, admin):
    c = Client(port)
    tok = c.json("POST", "/api/v1/login", {"username": admin["id"], "password": admin["secret"]})
    return "Bearer " + tok["token"]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


# ------------------------------------------------------------ cold resolves

async def burst(port, auth, cred, usage, n):
    body = json.dumps({"usageId": usage}).encode()
    req = ("POST /api/v1/credentials/%s/resolve HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Authorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
           "\r\n" % (cred, auth, len(body))).encode() + body
    go = asyncio.Event()
    results = []

    async def one():
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError as e:
            results.append(("connect: %s" % e, None, 0.0))
            return
        await go.wait()
        t0 = time.monotonic()
        try:
            w.write(req)
            await w.drain()
            head = await r.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            m = re.search(rb"(?i)content-length: *(\d+)", head)
            payload = await r.readexactly(int(m.group(1))) if m else await r.read()
            akid = json.loads(payload).get("AccessKeyId") if status == 200 else None
            results.append((status, akid, time.monotonic() - t0))
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            results.append(("%s" % type(e).__name__, None, time.monotonic() - t0))
        finally:
            w.close()

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    await asyncio.sleep(0)
    # Let every connection be accepted before the requests go out.
    for _ in range(200):
        await asyncio.sleep(0.01)
        if all(t.done() for t in tasks):
            break
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    go.set()
    await asyncio.gather(*tasks)
    return results, time.monotonic() - t0


def cold_resolves(srv, auth, sts, n, cred):
    c = Client(srv.port, auth)
    c.json("POST", "/api/v1/credentials", dict(KEYS, _id=cred, type="aws", roleArn=ROLE))
    usage = c.json("POST", "/api/v1/credentials/%s/usages" % cred, {"type": "Cloud Scan"})["id"]
    before = sts.calls
    results, elapsed = asyncio.run(burst(srv.port, auth, cred, usage, n))
    calls = sts.calls - before
    ok = [r for r in results if r[0] == 200]
    bad = {}
    for r in results:
        if r[0] != 200:
            bad[str(r[0])] = bad.get(str(r[0]), 0) + 1
    lat = [r[2] for r in ok] or [0.0]
    return {"threads": srv.threads, "n": n, "ok": len(ok), "bad": bad,
            "akids": len({r[1] for r in ok}), "sts_calls": calls, "elapsed": elapsed,
            "p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat)}


# --------------------------------------------------------------- bulk load

def load(port, auth, start, end, conns):
    """Create credentials s-<start>..s-<end-1> over `conns` keep-alive
    connections; returns (seconds, failures)."""
    lock = threading.Lock()
    nxt = [start]
    fails = []

    def worker():
        c = Client(port, auth)
        while True:
            with lock:
                i = nxt[0]
                if i >= end:
                    return
                nxt[0] += 1
            body = dict(KEYS, _id="s-%07d" % i, type="aws", description="scale %d" % i)
            try:
                st, raw, _ = c.call("POST", "/api/v1/credentials", body)
            except (OSError, http.client.HTTPException) as e:
                st, raw = str(e), b""
                c = Client(port, auth)
            if st != 201:
                with lock:
                    fails.append((i, st, raw[:200]))

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.monotonic() - t0, fails


def list_latency(port, auth, n_records):
    """p50 / max in ms of list pages: the first page, a page at offset
    n-1000, a page sorted by creation time (full scan)."""
    c = Client(port, auth)
    deep = max(0, n_records - 1000)
    queries = [("first page", "/api/v1/credentials?limit=50", 30),
               ("offset %d" % deep, "/api/v1/credentials?offset=%d&limit=50" % deep, 10),
               ("sort=created", "/api/v1/credentials?sort=created&limit=50", 5)]
    out = []
    for label, path, reps in queries:
        c.call("GET", path)  # warm
        ts = []
        total = None
        for _ in range(reps):
            t0 = time.monotonic()
            st, raw, r = c.call("GET", path)
            ts.append((time.monotonic() - t0) * 1000)
            if st != 200 or len(json.loads(raw)) != 50:
                raise RuntimeError("%s: %d %s" % (path, st, raw[:200]))
            total = r.getheader("Total-Count")
        if int(total) != n_records:
            raise RuntimeError("%s: Total-Count %s, expected %d" % (path, total, n_records))
        out.append((label, statistics.median(ts), max(ts)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--load-threads", type=int, default=64,
                    help="server --threads while loading (group-commit batch width)")
    ap.add_argument("--conns", type=int, default=64, help="client connections while loading")
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--cold", type=int, default=1000)
    ap.add_argument("--sts-delay", type=float, default=1.0)
    ap.add_argument("--work")
    args = ap.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="credstore-scale-")
    os.makedirs(work, exist_ok=True)
    sts = BenchSTS(delay=args.sts_delay)
    out = []
    try:
        def init(name):
            data = os.path.join(work, name)
            r = subprocess.run([args.bin, "init", "--data", data], capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError("init: " + r.stderr)
            return data, json.loads(r.stdout)

        # 1. cold resolves, at the benchmark's --threads and at --load-threads
        cold = []
        data_a, admin_a = init("cold")
        logp = os.path.join(work, "serve.log")
        for i, threads in enumerate(sorted({args.threads, args.load_threads})):
            srv = Server(args.bin, data_a, threads, sts.url, logp)
            try:
                auth = login(srv.port, admin_a)
                log("%d concurrent cold resolves, --threads %d" % (args.cold, threads))
                cold.append(cold_resolves(srv, auth, sts, args.cold, "cold-%d" % i))
            finally:
                srv.stop()

        out.append("### Concurrent cold resolves of one AWS role credential\n")
        out.append("STS double answers after %.1f s; all requests sent at once on %d open "
                   "connections.\n" % (args.sts_delay, args.cold))
        out.append("| server --threads | requests | 200 | other | distinct AccessKeyIds | "
                   "STS AssumeRole calls | all answered after | p50 | p99 |")
        out.append("|---:|---:|---:|---|---:|---:|---:|---:|---:|")
        for c in cold:
            out.append("| %d | %d | %d | %s | %d | **%d** | %.2f s | %.2f s | %.2f s |" % (
                c["threads"], c["n"], c["ok"], json.dumps(c["bad"]) if c["bad"] else "-",
                c["akids"], c["sts_calls"], c["elapsed"], c["p50"], c["p99"]))

        # 2. bulk load with checkpoints
        data_b, admin_b = init("store")
        srv = Server(args.bin, data_b, args.load_threads, sts.url, logp)
        rows = []
        try:
            auth = login(srv.port, admin_b)
            rows.append((0, None, 0.0, srv.rss(), None, None))
            done = 0
            for mark in [m for m in (1000, 10000, 100000) if m <= args.records] + \
                    ([args.records] if args.records not in (1000, 10000, 100000) else []):
                log("loading credentials %d..%d" % (done, mark))
                secs, fails = load(srv.port, auth, done, mark, args.conns)
                if fails:
                    raise RuntimeError("%d creates failed, first: %r" % (len(fails), fails[0]))
                rate = (mark - done) / secs
                done = mark
                before = srv.rss()
                lat = list_latency(srv.port, auth, mark)
                rows.append((mark, rate, secs, before, lat, srv.rss()))
        finally:
            srv.stop()
        mdb = os.path.getsize(os.path.join(data_b, "data.mdb")) / 1048576.0 \
            if os.path.exists(os.path.join(data_b, "data.mdb")) else 0.0

        out.append("\n### Store size: RSS and list pages\n")
        out.append("Loaded through POST /api/v1/credentials on %d keep-alive connections, server "
                   "--threads %d (every create is durable; a group commit takes as many creates "
                   "as threads are waiting). Latencies: one client, sequential, keep-alive; "
                   "median / max ms." % (args.conns, args.load_threads))
        out.append("")
        out.append("| records | load rate (creates/s) | VmRSS MiB (anon + file), before → after "
                   "the list calls | first page `?limit=50` | deep page "
                   "`?offset=n-1000&limit=50` | `?sort=created&limit=50` |")
        out.append("|---|---:|---:|---:|---:|---:|")

        def mib(r):
            return "%.1f (%.1f + %.1f)" % (r["VmRSS"], r["RssAnon"], r["RssFile"])

        for n, rate, secs, rss, lat, rss2 in rows:
            cells = ["%.1f / %.1f" % (p50, mx) for _, p50, mx in lat] if lat else ["-"] * 3
            out.append("| %d | %s | %s | %s |" % (
                n, "%.0f (%.0f s)" % (rate, secs) if rate else "-",
                mib(rss) + (" → " + mib(rss2) if rss2 else ""), " | ".join(cells)))

        # 3. the loaded store served at the benchmark's --threads
        srv = Server(args.bin, data_b, args.threads, sts.url, logp)
        try:
            auth = login(srv.port, admin_b)
            idle = srv.rss()
            lat = list_latency(srv.port, auth, done)
            after = srv.rss()
        finally:
            srv.stop()
        out.append("| %d, restarted with --threads %d | - | %s → %s | %s |" % (
            done, args.threads, mib(idle), mib(after),
            " | ".join("%.1f / %.1f" % (p50, mx) for _, p50, mx in lat)))
        out.append("\ndata.mdb: %.0f MiB for %d credentials (plus their audit entries and "
                   "events)." % (mdb, done))
    finally:
        sts.close()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(out))


if __name__ == "__main__":
    main()
