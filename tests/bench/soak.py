"""A long run of audited resolves (tests/bench/README.md "Soak"): how the
store, the process and the resolve rate grow over --total resolves.

One `credstore serve` (a Release build) on a fresh data dir, the STS double
of stsd.py, one AWS role credential (its STS result cached after the first
resolve) and one static AWS credential, one usage each; then --total
resolves alternating between the two, sent by wrk (soak.lua) in chunks of
--chunk, with after each chunk: data.mdb on disk, LMDB's pages in use
(/metrics and mdb_stat), the server's RSS, the chunk's resolves/s, p99 and
server CPU per resolve, and the audit entries and events in the store.
Prints a markdown table on stdout, progress on stderr.

Bounded: a chunk stops after --chunk-limit seconds (noted in the table),
and no chunk starts after --max-seconds. Not part of the test suite.

  /usr/bin/python3 tests/bench/soak.py [--bin build-bench/credstore] [--total 1000000]
      [--chunk 100000] [--connections 64] [--threads 32] [--chunk-limit 300]
      [--max-seconds 3600] [--verify] [--keep]

Run with Debian's /usr/bin/python3 (botocore, for the STS double).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import KEYS, ROLE, Client, Server, login  # noqa: E402
from stsd import BenchSTS  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def log(msg):
    print("[soak] " + msg, file=sys.stderr, flush=True)


def metrics(port, auth):
    """The gauges of /metrics this script reports."""
    c = Client(port, auth)
    st, raw, _ = c.call("GET", "/metrics")
    if st != 200:
        raise RuntimeError("GET /metrics: %d" % st)
    out = {}
    for line in raw.decode().splitlines():
        m = re.match(r'credstore_store_(used_bytes|map_bytes) (\d+)$', line)
        if m:
            out[m.group(1)] = int(m.group(2))
        m = re.match(r'credstore_store_records\{table="(\w+)"\} (\d+)$', line)
        if m:
            out[m.group(1)] = int(m.group(2))
        m = re.match(r'credstore_sts_calls_total (\d+)$', line)
        if m:
            out["sts_calls"] = int(m.group(1))
    return out


def mdb_stat(data):
    """Pages used, last page and free pages of data.mdb (mdb_stat -ef), or {}."""
    if not shutil.which("mdb_stat"):
        return {}
    r = subprocess.run(["mdb_stat", "-e", "-f", data], capture_output=True, text=True)
    out = {}
    for key, pat in (("last_page", r"Number of pages used: (\d+)"),
                     ("free_pages", r"Free pages: (\d+)"),
                     ("page_size", r"Page size: (\d+)")):
        m = re.search(pat, r.stdout)
        if m:
            out[key] = int(m.group(1))
    return out


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_chunk(args, port, env, count):
    """One chunk: wrk until every thread has its share of @p count answers
    or --chunk-limit seconds passed. Returns (answered, seconds, p99 ms,
    non-2xx, socket errors, hit the limit)."""
    marks = tempfile.mkdtemp(prefix="soak-done-", dir=args.work_dir)
    e = dict(os.environ, BENCH_COUNT=str(count), BENCH_THREADS=str(args.wrk_threads),
             BENCH_DONE_DIR=marks, **env)
    t0 = time.monotonic()
    p = subprocess.Popen(["wrk", "-t%d" % args.wrk_threads, "-c%d" % args.connections,
                          "-d%ds" % args.chunk_limit, "--latency", "--timeout", "10s",
                          "-s", os.path.join(HERE, "soak.lua"), "http://127.0.0.1:%d/" % port],
                         env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while p.poll() is None and len(os.listdir(marks)) < args.wrk_threads:
            time.sleep(0.02)
        if p.poll() is None:
            p.send_signal(signal.SIGINT)  # every thread has its share: wrk reports and exits
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(marks, ignore_errors=True)
    secs = time.monotonic() - t0
    if p.returncode:
        raise RuntimeError("wrk failed (%d): %s" % (p.returncode, err))
    n = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    serr = sum(int(x) for x in m.groups()) if m else 0
    return n, secs, p99, bad, serr, n < count and secs >= args.chunk_limit


def setup(port, auth):
    """The two credentials and their usages; one resolve each (caches the
    role's STS result). Returns the wrk environment."""
    c = Client(port, auth)
    c.json("POST", "/api/v1/credentials",
           dict(KEYS, _id="soak-role", type="aws", roleArn=ROLE, description="soak: role"))
    c.json("POST", "/api/v1/credentials",
           dict(KEYS, _id="soak-static", type="aws", description="soak: static keys"))
    env = {"BENCH_AUTH": auth}
    for tag, cred in (("A", "soak-role"), ("B", "soak-static")):
        u = c.json("POST", "/api/v1/credentials/%s/usages" % cred,
                   {"type": "Cloud Scan", "description": "soak"})["id"]
        path = "/api/v1/credentials/%s/resolve" % cred
        c.json("POST", path, {"usageId": u}, want=(200,))
        env["BENCH_PATH_" + tag] = path
        env["BENCH_USAGE_" + tag] = u
    return env


def resolve_counts(port, auth):
    """resolveCount of the two usages (the usage stats the resolves bump)."""
    c = Client(port, auth)
    total = 0
    for cred in ("soak-role", "soak-static"):
        page = c.json("GET", "/api/v1/credentials/%s/usages" % cred, want=(200,))
        items = page if isinstance(page, list) else page.get("items", page.get("usages", []))
        total += sum(int(u.get("resolveCount", 0)) for u in items)
    return total


def mib(n):
    return "%.1f" % (n / 1048576.0)


def row(label, srv, data, m, ms, chunk=None):
    st = os.stat(os.path.join(data, "data.mdb"))
    r = srv.rss()
    pages = "%d / %d" % (ms["last_page"], ms["free_pages"]) if ms else "-"
    cells = [label, mib(st.st_size), mib(st.st_blocks * 512), mib(m["used_bytes"]), pages,
             "%.1f (%.1f + %.1f)" % (r["VmRSS"], r["RssAnon"], r["RssFile"]),
             str(m.get("audit", 0)), str(m.get("events", 0))]
    if chunk:
        n, secs, p99, bad, serr, cpu_us, hit = chunk
        cells += ["%.0f" % (n / secs), "%.1f" % p99, "%.1f" % cpu_us,
                  ("%d" % (bad + serr)) + (" (limit hit)" if hit else "")]
    else:
        cells += ["-", "-", "-", "-"]
    return "| " + " | ".join(cells) + " |"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build-bench", "credstore"))
    ap.add_argument("--total", type=int, default=1000000)
    ap.add_argument("--chunk", type=int, default=100000)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--threads", type=int, default=32, help="credstore serve --threads")
    ap.add_argument("--chunk-limit", type=int, default=300, help="seconds per chunk at most")
    ap.add_argument("--max-seconds", type=int, default=3600,
                    help="no chunk starts after this many seconds")
    ap.add_argument("--verify", action="store_true",
                    help="time `credstore audit-verify` over the trail at the end")
    ap.add_argument("--work", help="work dir (default: a new temp dir, removed at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit("soak.py: no credstore binary at %s (cmake -S . -B build-bench "
                 "-DCMAKE_BUILD_TYPE=Release -DCS_TESTS=OFF && cmake --build build-bench "
                 "--target credstore, or tests/bench/run.sh)" % args.bin)
    if not shutil.which("wrk"):
        sys.exit("soak.py: wrk is required")

    work = args.work or tempfile.mkdtemp(prefix="credstore-soak-")
    os.makedirs(work, exist_ok=True)
    args.work_dir = work
    data = os.path.join(work, "data")
    sts = BenchSTS()
    srv = None
    t_start = time.monotonic()
    try:
        r = subprocess.run([args.bin, "init", "--data", data], capture_output=True, text=True,
                           check=True)
        admin = json.loads(r.stdout)
        srv = Server(args.bin, data, args.threads, sts.url, os.path.join(work, "serve.log"))
        auth = login(srv.port, admin)
        env = setup(srv.port, auth)
        ver = subprocess.run([args.bin, "version"], capture_output=True, text=True).stdout
        load0 = open("/proc/loadavg").read().split()[:3]
        log("credstore pid %d port %d, %d resolves in chunks of %d, load average %s"
            % (srv.proc.pid, srv.port, args.total, args.chunk, " ".join(load0)))
        print("%s, %d cores; serve --threads %d --log-level info; wrk -t%d -c%d, %d resolves "
              "alternating a cached AWS role and static AWS keys (one usage each), in chunks "
              "of %d; load average before %s.\n"
              % (ver.splitlines()[0] if ver else "credstore", os.cpu_count(), args.threads,
                 args.wrk_threads, args.connections, args.total, args.chunk, " ".join(load0)))
        print("| resolves | data.mdb MiB (size) | data.mdb MiB (on disk) | LMDB used MiB "
              "(/metrics) | last page / free pages (mdb_stat) | VmRSS MiB (anon + file) | "
              "audit entries | events | chunk resolves/s | chunk p99 ms | server CPU µs/resolve "
              "| non-2xx + socket errors |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        m0 = metrics(srv.port, auth)
        print(row("0", srv, data, m0, mdb_stat(data)), flush=True)
        done = sent = 0
        notes = []
        while done < args.total:
            if time.monotonic() - t_start > args.max_seconds:
                notes.append("stopped after %d s (--max-seconds): %d of %d resolves"
                             % (time.monotonic() - t_start, done, args.total))
                break
            want = min(args.chunk, args.total - done)
            c0 = cpu_seconds(srv.proc.pid)
            a0 = metrics(srv.port, auth).get("audit", 0)
            n, secs, p99, bad, serr, hit = wrk_chunk(args, srv.port, env, want)
            m = metrics(srv.port, auth)
            served = m.get("audit", 0) - a0  # resolves the server audited in this chunk
            cpu_us = (cpu_seconds(srv.proc.pid) - c0) * 1e6 / max(served, 1)
            done += n
            sent += served
            if hit:
                notes.append("chunk ending at %d took the whole --chunk-limit of %d s "
                             "(%d of %d answered)" % (done, args.chunk_limit, n, want))
            print(row(str(done), srv, data, m, mdb_stat(data),
                      (n, secs, p99, bad, serr, cpu_us, hit)), flush=True)
            log("%d resolves, %.0f/s, audit %d" % (done, n / secs, m.get("audit", 0)))
        m = metrics(srv.port, auth)
        counts = resolve_counts(srv.port, auth)
        print()
        print("wrk answered %d resolves; the server audited %d in the chunks (the difference: "
              "requests in flight when wrk's threads stopped); usage resolveCount total %d "
              "(+2 set-up resolves); STS calls %d; %.0f s in all."
              % (done, sent, counts, m.get("sts_calls", 0), time.monotonic() - t_start))
        for n in notes:
            print("Note: " + n + ".")
        if args.verify:
            t0 = time.monotonic()
            r = subprocess.run([args.bin, "audit-verify", "--data", data], capture_output=True,
                               text=True)
            print("`credstore audit-verify` over %d entries: %.1f s, %s"
                  % (m.get("audit", 0), time.monotonic() - t0,
                     (r.stdout or r.stderr).strip()))
    finally:
        if srv:
            srv.stop()
        sts.close()
        if args.keep or args.work:
            log("work dir kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
