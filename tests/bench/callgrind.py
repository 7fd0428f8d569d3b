"""Instructions per request, counted by callgrind: deterministic, so unlike
wrk's req/s it does not move with other load on the machine.

Runs the server under `valgrind --tool=callgrind --instr-atstart=no`, warms
it up, switches instrumentation on for exactly --requests keep-alive
requests, and prints the instructions per request (user space only, every
thread of the process, the writer's included; the kernel's TCP and fsync
work is not counted) and the top functions.

  /usr/bin/python3 tests/bench/callgrind.py --bin build-bench/credstore [--auth bearer|basic]
  /usr/bin/python3 tests/bench/callgrind.py --bin build-bench/credstore --scenario resolve
  /usr/bin/python3 tests/bench/callgrind.py --bin build-bench/credstore --scenario create \
      --clients 16
  /usr/bin/python3 tests/bench/callgrind.py --baseline /path/to/baseline
  ... --save cg.out; callgrind_annotate --inclusive=yes --tree=calling cg.out | less

Scenarios: get (GET /api/v1/credentials/bench-aws), resolve (POST
.../resolve of an AWS role credential whose STS result is cached, against
the STS double), create (POST /api/v1/credentials, a new _id each time).
--clients N sends from N connections at once, so the writer's group commit
can batch (valgrind runs one thread at a time, so how much it batches is
not the same as natively; the number of commits is printed).

libmicrohttpd memsets its per-connection memory pool (64 KiB here) with
`rep stosb`, which valgrind counts one instruction per byte; those
instructions are reported apart ("memset") and left out of the comparison.
"""
import argparse
import base64
import glob
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import KEYS, ROLE, Client  # noqa: E402
from stsd import BenchSTS  # noqa: E402


def wait_port(logpath, proc, regex, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(logpath, "rb") as f:
            m = re.search(regex, f.read())
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("no port; see " + logpath)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("credstore did not listen on port %d" % port)


class Load:
    """The requests of one scenario, sent from keep-alive connections."""

    def __init__(self, port, auth, method, path, body=None):
        self.port, self.auth, self.method, self.path, self.body = port, auth, method, path, body
        self.seq = 0
        self.lock = threading.Lock()

    def one(self, c):
        headers = {"Authorization": self.auth} if self.auth else {}
        body = None
        if self.body:
            with self.lock:
                self.seq += 1
                n = self.seq
            body = json.dumps(self.body(n)).encode()
            headers["Content-Type"] = "application/json"
        c.request(self.method, self.path, body=body, headers=headers)
        r = c.getresponse()
        r.read()
        if r.status not in (200, 201):
            raise RuntimeError("%s %s: %d" % (self.method, self.path, r.status))

    def run(self, n, clients=1):
        errors = []

        def worker(k):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                for _ in range(k):
                    self.one(c)
                c.close()
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(e)

        ts = [threading.Thread(target=worker, args=(n // clients + (i < n % clients),))
              for i in range(clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise errors[0]


def annotate(outfile):
    txt = subprocess.run(["callgrind_annotate", "--inclusive=yes", outfile],
                         capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", txt).group(1).replace(",", ""))
    rows = []
    for line in txt.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*?)\s+\[(.*)\]$", line)
        if m:
            fn = m.group(2).split(":", 1)[-1]
            rows.append((int(m.group(1).replace(",", "")), fn, os.path.basename(m.group(3))))
    memset = sum(ir for ir, fn, lib in rows if fn.startswith("__memset") and "'" not in fn)
    return total, memset, rows


def callees(outfile, names, n):
    """Print the direct callees of each function in @p names, inclusive
    instructions per request (callgrind_annotate --tree=calling)."""
    txt = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--tree=calling", outfile],
                         capture_output=True, text=True).stdout
    for block in txt.split("\n\n"):
        lines = block.strip("\n").splitlines()
        head = [i for i, ln in enumerate(lines) if re.match(r"\s*[\d,]+ \(.*\)\s+\*\s", ln)]
        if not head:
            continue
        m = re.match(r"\s*([\d,]+) .*\*\s+(?:\S*:)?(\S+) \[", lines[head[0]])
        if not m or m.group(2) not in names:
            continue
        print("  callees of %s (%.0f instructions/request inclusive):"
              % (m.group(2), int(m.group(1).replace(",", "")) / n))
        for ln in lines[head[0] + 1:]:
            c = re.match(r"\s*([\d,]+) \(.*\)\s+>\s+(?:\S*:)?(\S+) \((\d[\d,]*)x\)", ln)
            if c:
                print("    %9.0f  %-45s %6.2f calls/request"
                      % (int(c.group(1).replace(",", "")) / n, c.group(2),
                         int(c.group(3).replace(",", "")) / n))


def calls_to(outfile, names):
    """How many times the functions @p names were called (from the raw
    callgrind profile: "cfn=(id) name" then "calls=N target")."""
    ids, counts, cfn = {}, dict.fromkeys(names, 0), None
    with open(outfile, errors="replace") as f:
        for line in f:
            m = re.match(r"c?fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                if m.group(2):
                    ids[m.group(1)] = m.group(2)
                if line.startswith("cfn="):
                    cfn = ids.get(m.group(1))
                continue
            if line.startswith("calls=") and cfn in counts:
                counts[cfn] += int(line.split("=", 1)[1].split()[0])
    return counts


def start_credstore(args, vg, work, logf, sts_url):
    data = os.path.join(work, "data")
    r = subprocess.run([args.bin, "init", "--data", data], capture_output=True, text=True)
    admin = json.loads(r.stdout)
    port = free_port()  # the "listening" line is not logged below info
    cmd = [args.bin, "serve", "--data", data, "--listen", "127.0.0.1:%d" % port, "--threads",
           str(args.threads), "--token-ttl", "86400", "--log-level", args.log_level]
    if sts_url:
        cmd += ["--sts-endpoint", sts_url]
    proc = subprocess.Popen(vg + cmd, stdout=subprocess.DEVNULL, stderr=logf)
    wait_listening(port, proc)
    tok = Client(port).json("POST", "/api/v1/login",
                            {"username": admin["id"], "password": admin["secret"]})["token"]
    auth = "Bearer " + tok if args.auth == "bearer" else "Basic " + base64.b64encode(
        ("%s:%s" % (admin["id"], admin["secret"])).encode()).decode()
    return proc, port, auth


def scenario_load(args, port, auth):
    """The Load of args.scenario, its fixtures created."""
    c = Client(port, auth)
    if args.scenario == "get":
        c.json("POST", "/api/v1/credentials",
               dict(KEYS, _id="bench-aws", type="aws", description="bench"))
        return Load(port, auth, "GET", "/api/v1/credentials/bench-aws")
    if args.scenario == "resolve":
        c.json("POST", "/api/v1/credentials", dict(KEYS, _id="bench-role", type="aws",
                                                   roleArn=ROLE))
        usage = c.json("POST", "/api/v1/credentials/bench-role/usages",
                       {"type": "Cloud Scan", "description": "bench"})["id"]
        return Load(port, auth, "POST", "/api/v1/credentials/bench-role/resolve",
                    lambda n: {"usageId": usage})
    return Load(port, auth, "POST", "/api/v1/credentials",
                lambda n: dict(KEYS, _id="cg-%d" % n, type="aws", description="bench create"))


def report(what, files, n, top):
    total, memset, rows = annotate(files[0])
    counts = calls_to(files[0], ("cs_store_write_batch", "mdb_txn_commit", "cJSON_Parse",
                                 "cJSON_ParseWithLengthOpts", "malloc", "free"))
    print("%s: %d requests" % (what, n))
    print("  instructions/request: %.0f, of which MHD pool memset %.0f; without it %.0f"
          % (total / n, memset / n, (total - memset) / n))
    if counts["cs_store_write_batch"]:
        print("  group commits: %d (%.1f requests per commit)"
              % (counts["cs_store_write_batch"], n / counts["cs_store_write_batch"]))
    print("  calls/request: malloc %.1f, free %.1f, cJSON parses %.1f"
          % (counts["malloc"] / n, counts["free"] / n,
             (counts["cJSON_Parse"] + counts["cJSON_ParseWithLengthOpts"]) / n))
    print("  top inclusive (instructions/request, excluding nothing):")
    shown = 0
    for ir, fn, lib in rows:
        if fn.startswith("0x") or "'" in fn:
            continue
        print("    %9.0f  %-45s %s" % (ir / n, fn, lib))
        shown += 1
        if shown >= top:
            break


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", help="credstore binary")
    ap.add_argument("--baseline", help="baseline binary (tests/bench/baseline.c)")
    ap.add_argument("--scenario", choices=("get", "resolve", "create"), default="get")
    ap.add_argument("--auth", choices=("bearer", "basic"), default="bearer")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=1, help="concurrent connections")
    ap.add_argument("--threads", type=int, default=2, help="credstore serve --threads")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--callees", metavar="FN,FN", default="",
                    help="also print the direct callees of these functions")
    ap.add_argument("--save", metavar="FILE",
                    help="keep the callgrind profile (for callgrind_annotate --tree=calling)")
    args = ap.parse_args()
    if not (args.bin or args.baseline):
        ap.error("give --bin or --baseline")

    work = tempfile.mkdtemp(prefix="credstore-cg-")
    logpath = os.path.join(work, "serve.log")
    out = os.path.join(work, "callgrind.out")
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + out]
    proc = sts = None
    try:
        logf = open(logpath, "ab")
        if args.bin:
            if args.scenario == "resolve":
                sts = BenchSTS()
            proc, port, auth = start_credstore(args, vg, work, logf, sts.url if sts else None)
            load = scenario_load(args, port, auth)
            what = "credstore %s %s (%s, --log-level %s, --threads %d, %d clients)" % (
                load.method, load.path, args.auth, args.log_level, args.threads, args.clients)
        else:
            proc = subprocess.Popen(vg + [args.baseline, "--listen-port", "0", "--threads",
                                          str(args.threads)],
                                    stdout=subprocess.DEVNULL, stderr=logf)
            port = wait_port(logpath, proc, rb"listening on port (\d+)")
            load = Load(port, None, "GET", "/api/v1/credentials/bench-aws")
            what = "baseline GET (%d clients)" % args.clients
        load.run(50, args.clients)  # warm: token cache, STS cache, pages
        if sts and sts.calls != 1:
            raise RuntimeError("STS calls after warm-up: %d, expected 1" % sts.calls)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True)
        load.run(args.requests, args.clients)
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True)
        proc.terminate()
        proc.wait(timeout=120)
        proc = None
        files = sorted(glob.glob(out + "*"))
        report(what, files, args.requests, args.top)
        if args.callees:
            callees(files[0], set(args.callees.split(",")), args.requests)
        if args.save:
            shutil.copyfile(files[0], args.save)
    finally:
        if proc:
            proc.kill()
            proc.wait()
        if sts:
            sts.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
