"""Instructions per request, counted by callgrind: deterministic, so unlike
wrk's req/s it does not move with other load on the machine.

Runs the server under `valgrind --tool=callgrind --instr-atstart=no`, warms
it up, switches instrumentation on for exactly --requests sequential
keep-alive requests, and prints the instructions per request (user space
only; the kernel's TCP work is not counted) and the top functions.

  /usr/bin/python3 tests/bench/callgrind.py --bin build-bench/credstore [--auth bearer|basic]
  /usr/bin/python3 tests/bench/callgrind.py --baseline /path/to/baseline

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
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale import KEYS, Client  # noqa: E402


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


def loop(port, path, auth, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(n):
        c.request("GET", path, headers={"Authorization": auth} if auth else {})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError("GET %s: %d" % (path, r.status))


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", help="credstore binary")
    ap.add_argument("--baseline", help="baseline binary (tests/bench/baseline.c)")
    ap.add_argument("--auth", choices=("bearer", "basic"), default="bearer")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    if not (args.bin or args.baseline):
        ap.error("give --bin or --baseline")

    work = tempfile.mkdtemp(prefix="credstore-cg-")
    logpath = os.path.join(work, "serve.log")
    out = os.path.join(work, "callgrind.out")
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + out]
    proc = None
    try:
        logf = open(logpath, "ab")
        if args.bin:
            data = os.path.join(work, "data")
            r = subprocess.run([args.bin, "init", "--data", data], capture_output=True, text=True)
            admin = json.loads(r.stdout)
            port = free_port()  # the "listening" line is not logged below info
            proc = subprocess.Popen(vg + [args.bin, "serve", "--data", data, "--listen",
                                          "127.0.0.1:%d" % port, "--threads", "2",
                                          "--token-ttl", "86400", "--log-level", args.log_level],
                                    stdout=subprocess.DEVNULL, stderr=logf)
            wait_listening(port, proc)
            c = Client(port)
            tok = c.json("POST", "/api/v1/login",
                         {"username": admin["id"], "password": admin["secret"]})["token"]
            auth = "Bearer " + tok if args.auth == "bearer" else "Basic " + base64.b64encode(
                ("%s:%s" % (admin["id"], admin["secret"])).encode()).decode()
            Client(port, auth).json("POST", "/api/v1/credentials",
                                    dict(KEYS, _id="bench-aws", type="aws", description="bench"))
            what = "credstore GET /api/v1/credentials/bench-aws (%s, --log-level %s)" % (
                args.auth, args.log_level)
        else:
            proc = subprocess.Popen(vg + [args.baseline, "--listen-port", "0", "--threads", "2"],
                                    stdout=subprocess.DEVNULL, stderr=logf)
            port = wait_port(logpath, proc, rb"listening on port (\d+)")
            auth = None
            what = "baseline GET"
        path = "/api/v1/credentials/bench-aws"
        loop(port, path, auth, 50)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True)
        loop(port, path, auth, args.requests)
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True)
        proc.terminate()
        proc.wait(timeout=120)
        proc = None
        files = sorted(glob.glob(out + "*"))
        total, memset, rows = annotate(files[0])
        n = args.requests
        print("%s: %d requests" % (what, n))
        print("  instructions/request: %.0f, of which MHD pool memset %.0f; without it %.0f"
              % (total / n, memset / n, (total - memset) / n))
        print("  top inclusive (instructions/request, excluding nothing):")
        shown = 0
        for ir, fn, lib in rows:
            if fn.startswith("0x") or "'" in fn:
                continue
            print("    %9.0f  %-45s %s" % (ir / n, fn, lib))
            shown += 1
            if shown >= args.top:
                break
    finally:
        if proc:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
