#!/usr/bin/python3
"""Cluster-mode benchmark (tests/bench/README.md "Cluster"): the same GET and cached
resolve against one LMDB node and against one node of a 3-node cluster over a real
3-member etcd on loopback (tests/cluster/etcd_cluster.py), in one run, under wrk.

Per scenario it prints requests/s, CPU per request of every credstore process (the node
under load and, for the cluster, the two idle nodes, which apply the same changes from
their watch), and the etcd round trips per request and per group commit from the node's
/metrics (credstore_etcd_requests_total, _txns_total, credstore_store_write_batches_total).
Reads served from the watch cache must make no round trip; a group commit at most one Txn.

  tests/bench/cluster.py [--duration S] [--connections C] [--threads T]

CREDSTORE_BIN picks the binary (default build-bench/credstore, else build/credstore).
Every process it starts is stopped by PID; every run is bounded by --duration.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from etcd_cluster import EtcdCluster  # noqa: E402
from aws_doubles import STSDouble  # noqa: E402

import requests  # noqa: E402

AKID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TICK = os.sysconf("SC_CLK_TCK")


def binary():
    b = os.environ.get("CREDSTORE_BIN")
    for c in ([b] if b else []) + [os.path.join(ROOT, "build-bench", "credstore"),
                                   os.path.join(ROOT, "build", "credstore")]:
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    sys.exit("cluster.py: no credstore binary (build Release or set CREDSTORE_BIN)")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


class Node:
    def __init__(self, bin_, store_args, key_args, port, name, log, sts):
        self.url = "http://127.0.0.1:%d" % port
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            [bin_, "serve", *store_args, *key_args, "--listen", "127.0.0.1:%d" % port,
             "--node-id", name, "--log-level", "warn", "--sts-endpoint", sts],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("node %s did not start; see %s" % (name, log))

    def metric(self, auth, name):
        text = requests.get(self.url + "/metrics", headers=auth, timeout=10).text
        m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
        return int(m.group(1)) if m else 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def setup(node, auth):
    keys = {"accountID": AKID, "secret": {"plain": SECRET}}
    post = lambda p, b: requests.post(node.url + p, json=b, headers=auth, timeout=30)  # noqa
    assert post("/api/v1/credentials", dict(keys, _id="bench-aws", type="aws")).ok
    assert post("/api/v1/credentials", dict(keys, _id="bench-role", type="aws",
                roleArn="arn:aws:iam::123456789012:role/bench")).ok
    usage = post("/api/v1/credentials/bench-role/usages", {"type": "bench"}).json()["id"]
    assert post("/api/v1/credentials/bench-role/resolve", {"usageId": usage}).ok  # warm
    return usage


def wrk(url, script, env, args):
    out = subprocess.run(
        ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d",
         "%ds" % args.duration, "-s", os.path.join(HERE, script), url],
        capture_output=True, text=True, env=dict(os.environ, **env),
        timeout=args.duration + 60).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return reqs, int(non2xx.group(1)) if non2xx else 0


METRICS = ["credstore_etcd_requests_total", "credstore_etcd_txns_total",
           "credstore_store_write_batches_total", "credstore_etcd_conflicts_total"]


def scenario(name, target, others, auth, path, script, env, args):
    pids = [target.proc.pid] + [o.proc.pid for o in others]
    c0 = [cpu_s(p) for p in pids]
    m0 = [target.metric(auth, m) for m in METRICS]
    t0 = time.time()
    reqs, bad = wrk(target.url + path, script, env, args)
    wall = time.time() - t0
    m1 = [target.metric(auth, m) for m in METRICS]
    c1 = [cpu_s(p) for p in pids]
    d = dict(zip(METRICS, (b - a for a, b in zip(m0, m1))))
    cpu = [(b - a) * 1e6 / max(reqs, 1) for a, b in zip(c0, c1)]
    batches = d["credstore_store_write_batches_total"]
    row = {
        "scenario": name, "requests": reqs, "non2xx": bad, "req_per_s": round(reqs / wall),
        "cpu_us_per_req_node": round(cpu[0], 1),
        "cpu_us_per_req_other_nodes": [round(x, 1) for x in cpu[1:]],
        "etcd_round_trips_per_req": round(d["credstore_etcd_requests_total"] / max(reqs, 1), 4),
        "group_commits": batches,
        "txns_per_group_commit": round(d["credstore_etcd_txns_total"] / batches, 3)
        if batches else 0,
        "conflicts": d["credstore_etcd_conflicts_total"],
    }
    print(json.dumps(row), flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    bin_ = binary()
    tmp = tempfile.mkdtemp(prefix="credstore-bench-cluster-")
    etcd = EtcdCluster(os.path.join(tmp, "etcd"), max_lifetime=900)
    sts = STSDouble({AKID: SECRET})
    nodes = []
    try:
        etcd.start()
        key = os.path.join(tmp, "master.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o600)
        kargs = ["--master-key-file", key]
        lmdb = os.path.join(tmp, "lmdb")
        url = etcd.url("/bench/")
        admins = {}
        for label, sargs in (("lmdb", ["--data", lmdb]), ("cluster", ["--store", url])):
            r = subprocess.run([bin_, "init", *sargs, *kargs], capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 0, r.stderr
            admins[label] = json.loads(r.stdout)
        single = Node(bin_, ["--data", lmdb], kargs, free_port(), "lmdb",
                      os.path.join(tmp, "lmdb.log"), sts.url)
        nodes.append(single)
        for i in range(3):
            nodes.append(Node(bin_, ["--store", url], kargs, free_port(), "n%d" % i,
                              os.path.join(tmp, "n%d.log" % i), sts.url))
        rows = []
        for label, target, others in (("lmdb", single, []), ("cluster", nodes[1], nodes[2:])):
            a = admins[label]
            tok = requests.post(target.url + "/api/v1/login", json={
                "username": a["id"], "password": a["secret"]}, timeout=30).json()["token"]
            auth = {"Authorization": "Bearer " + tok}
            usage = setup(target, auth)
            env = {"BENCH_AUTH": auth["Authorization"], "BENCH_USAGE": usage}
            rows.append(scenario("GET %s" % label, target, others, auth,
                                 "/api/v1/credentials/bench-aws", "get.lua", env, args))
            rows.append(scenario("resolve %s" % label, target, others, auth,
                                 "/api/v1/credentials/bench-role/resolve", "resolve.lua", env,
                                 args))
        print("STS calls in all: %d (one per store: the caches were warm)" % sts.calls)
    finally:
        for n in nodes:
            n.stop()
        sts.close()
        etcd.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
