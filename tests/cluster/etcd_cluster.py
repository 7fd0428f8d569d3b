#!/usr/bin/python3
"""A real etcd cluster on loopback for tests: N members (default 3) with
their own data dirs and free ports, torn down by PID.

As a module (later pytest suites):
    c = EtcdCluster("/tmp/x"); c.start(); c.url("/p/"); c.kill(c.leader()); c.restart(i); c.stop()
As a CLI (shell and ctest fixtures):
    etcd_cluster.py start DIR [--size N] [--tls] [--auth USER:PASSWORD] [--etcd-arg=--flag=value ...]
                                           start, wait healthy, write DIR/cluster.json, DIR/url
                                           (--tls: client URLs over TLS with client certificates;
                                           DIR/tls/{ca,client}.pem and client.key for clients)
    etcd_cluster.py stop DIR               kill every member by PID, wait, remove data dirs
    etcd_cluster.py kill DIR I [--signal TERM|KILL|STOP|CONT]
    etcd_cluster.py restart DIR I          start member I again on its data dir and ports
    etcd_cluster.py leader DIR             print the leader's index
    etcd_cluster.py wait DIR               wait until every running member is healthy
    etcd_cluster.py url DIR                print etcd://127.0.0.1:P1,... (etcds:// with --tls)
    etcd_cluster.py auth DIR USER PASSWORD add USER (role root) and enable etcd authentication

Members use test timings (--heartbeat-interval 50 --election-timeout 500) and
etcd's default --max-txn-ops (128) and --max-request-bytes (1.5 MiB), so code
under test must respect the production limits. Every member runs under
`timeout -s KILL` (--max-lifetime, default 1800 s), so even an aborted test
run leaves nothing running for long. Only the PIDs recorded in cluster.json
are ever signalled, and only after checking /proc that they are our etcd.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

ETCD = os.environ.get("CS_ETCD_BIN", "/usr/bin/etcd")
STATE = "cluster.json"


def _free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _tls_files(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate. The server's is
    also a client certificate: etcd's JSON gateway dials its own gRPC port with it."""
    os.makedirs(d, exist_ok=True)

    def run(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=60)
    ca, srv, cli = (os.path.join(d, n) for n in ("ca", "server", "client"))
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca + ".key", "-out", ca + ".pem", "-days", "2", "-subj", "/CN=cs-test-ca")
    for name, ext in ((srv, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"),
                      (cli, "extendedKeyUsage=clientAuth")):
        with open(name + ".ext", "w") as f:
            f.write(ext + "\n")
        # No CommonName on the client's: with authentication on, etcd 3.4's JSON
        # gateway refuses a client certificate that has one.
        subj = "/CN=127.0.0.1" if name == srv else "/O=credstore-test"
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", subj)
        run("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext")
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o600)


class EtcdCluster:
    def __init__(self, base, size=3, max_lifetime=1800, tls=False, etcd_args=()):
        self.base = os.path.abspath(base)
        self.size = size
        self.max_lifetime = max_lifetime
        self.tls = tls
        self.etcd_args = list(etcd_args)
        self.members = []
        self.tls_dir = os.path.join(self.base, "tls")
        path = os.path.join(self.base, STATE)
        if os.path.exists(path):
            with open(path) as f:
                st = json.load(f)
            self.members = st["members"]
            self.size = len(self.members)
            self.tls = st.get("tls", False)
            self.etcd_args = st.get("etcd_args", [])

    # ------------------------------------------------------------ state
    def _save(self):
        tmp = os.path.join(self.base, STATE + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"members": self.members, "tls": self.tls, "etcd_args": self.etcd_args},
                      f, indent=1)
        os.replace(tmp, os.path.join(self.base, STATE))
        with open(os.path.join(self.base, "url"), "w") as f:
            f.write(self.url() + "\n")

    def endpoints(self):
        return ["127.0.0.1:%d" % m["client_port"] for m in self.members]

    def url(self, prefix=None):
        u = ("etcds://" if self.tls else "etcd://") + ",".join(self.endpoints())
        return u + (prefix or "")

    def _client(self, i):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http",
                                      self.members[i]["client_port"])

    def _ssl(self):
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=os.path.join(self.tls_dir, "ca.pem"))
        ctx.load_cert_chain(os.path.join(self.tls_dir, "client.pem"),
                            os.path.join(self.tls_dir, "client.key"))
        return ctx

    def post(self, i, path, body, timeout=1.0, token=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        req = urllib.request.Request(self._client(i) + path, data=json.dumps(body).encode(),
                                     headers=headers)
        with urllib.request.urlopen(req, timeout=timeout, context=self._ssl()) as r:
            return json.loads(r.read())

    # ------------------------------------------------------------ processes
    def _ours(self, pid):
        """True if pid is an etcd process on one of our data dirs."""
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            return False
        return any(a == self.base.encode() or a.startswith(self.base.encode() + b"/")
                   for a in cmd) and any(a.endswith(b"etcd") for a in cmd)

    def _args(self, i):
        m = self.members[i]
        cluster = ",".join("%s=http://127.0.0.1:%d" % (o["name"], o["peer_port"])
                           for o in self.members)
        tls = []
        if self.tls:
            tls = ["--cert-file", os.path.join(self.tls_dir, "server.pem"),
                   "--key-file", os.path.join(self.tls_dir, "server.key"),
                   "--trusted-ca-file", os.path.join(self.tls_dir, "ca.pem"),
                   "--client-cert-auth"]
        return ["timeout", "-s", "KILL", str(self.max_lifetime), ETCD,
                "--name", m["name"], "--data-dir", m["data_dir"],
                "--listen-client-urls", self._client(i),
                "--advertise-client-urls", self._client(i), *tls, *self.etcd_args,
                "--listen-peer-urls", "http://127.0.0.1:%d" % m["peer_port"],
                "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % m["peer_port"],
                "--initial-cluster", cluster, "--initial-cluster-token", "cs-test",
                "--initial-cluster-state", "new",
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--log-level", "warn"]

    def _spawn(self, i):
        m = self.members[i]
        log = open(m["log"], "ab")
        p = subprocess.Popen(self._args(i), stdin=subprocess.DEVNULL, stdout=log,
                             stderr=log, start_new_session=True)
        log.close()
        m["wpid"] = p.pid
        # The etcd process is timeout's child: record its PID, the one to signal.
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            if kids:
                m["pid"] = int(kids[0])
                return
            if p.poll() is not None:
                raise RuntimeError("etcd %s exited: see %s" % (m["name"], m["log"]))
            time.sleep(0.01)
        raise RuntimeError("etcd %s did not start" % m["name"])

    def start(self, timeout=30):
        os.makedirs(self.base, exist_ok=True)
        self.stop()
        if self.tls:
            _tls_files(self.tls_dir)
        ports = _free_ports(2 * self.size)
        self.members = []
        for i in range(self.size):
            d = os.path.join(self.base, "m%d" % i)
            shutil.rmtree(d, ignore_errors=True)
            self.members.append({"name": "m%d" % i, "client_port": ports[2 * i],
                                 "peer_port": ports[2 * i + 1], "data_dir": d,
                                 "log": os.path.join(self.base, "m%d.log" % i), "pid": 0})
        for i in range(self.size):
            self._spawn(i)
        self._save()
        try:
            self.wait_healthy(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def alive(self, i):
        pid = self.members[i].get("pid", 0)
        return pid > 0 and self._ours(pid)

    def send_signal(self, i, sig):
        m = self.members[i]
        if not self.alive(i):
            return False
        os.kill(m["pid"], sig)
        return True

    def kill(self, i, sig=signal.SIGKILL, timeout=10):
        """Signal member i; for TERM and KILL, wait until it is gone."""
        if not self.send_signal(i, sig):
            return
        if sig in (signal.SIGKILL, signal.SIGTERM):
            deadline = time.time() + timeout
            while self.alive(i) and time.time() < deadline:
                time.sleep(0.02)
            if self.alive(i):
                os.kill(self.members[i]["pid"], signal.SIGKILL)
            self.members[i]["pid"] = 0
            self._save()

    def restart(self, i):
        if self.alive(i):
            return
        self._spawn(i)
        self._save()

    def stop(self):
        for i in range(len(self.members)):
            self.send_signal(i, signal.SIGCONT)
            self.kill(i, signal.SIGTERM, timeout=5)
        for m in self.members:
            shutil.rmtree(m["data_dir"], ignore_errors=True)

    # ------------------------------------------------------------ queries
    def healthy(self, i):
        try:
            with urllib.request.urlopen(self._client(i) + "/health", timeout=1,
                                        context=self._ssl()) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def enable_auth(self, user, password):
        """Add @user with etcd's root role, then turn authentication on."""
        i = next(i for i in range(self.size) if self.alive(i))
        self.post(i, "/v3/auth/role/add", {"name": "root"}, timeout=5)
        self.post(i, "/v3/auth/user/add", {"name": user, "password": password}, timeout=5)
        self.post(i, "/v3/auth/user/grant", {"user": user, "role": "root"}, timeout=5)
        if user != "root":
            self.post(i, "/v3/auth/user/add", {"name": "root", "password": password}, timeout=5)
            self.post(i, "/v3/auth/user/grant", {"user": "root", "role": "root"}, timeout=5)
        self.post(i, "/v3/auth/enable", {}, timeout=5)

    def wait_healthy(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(self.healthy(i) for i in range(self.size) if self.alive(i)):
                return
            time.sleep(0.1)
        raise RuntimeError("etcd cluster in %s is not healthy after %ds" % (self.base, timeout))

    def leader(self, timeout=10):
        """Index of the current leader (waits for one)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, m in enumerate(self.members):
                if not self.alive(i):
                    continue
                try:
                    st = self.post(i, "/v3/maintenance/status", {})
                except (OSError, ValueError, urllib.error.URLError):
                    continue
                if st.get("leader") and st["leader"] == st["header"]["member_id"]:
                    return i
            time.sleep(0.05)
        raise RuntimeError("no etcd leader after %ds" % timeout)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", choices=["start", "stop", "kill", "restart", "leader", "wait", "url",
                                    "auth"])
    ap.add_argument("dir")
    ap.add_argument("index", nargs="?", help="member index (kill, restart) or user (auth)")
    ap.add_argument("password", nargs="?")
    ap.add_argument("--size", type=int, default=3)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--etcd-arg", action="append", default=[])
    ap.add_argument("--auth", help="USER:PASSWORD: start with etcd authentication on")
    ap.add_argument("--signal", default="KILL")
    ap.add_argument("--max-lifetime", type=int, default=1800)
    a = ap.parse_args(argv)
    c = EtcdCluster(a.dir, a.size, a.max_lifetime, a.tls, a.etcd_arg)
    if a.cmd in ("kill", "restart"):
        if a.index is None or not a.index.isdigit() or not 0 <= int(a.index) < c.size:
            ap.error("%s needs a member index in [0, %d)" % (a.cmd, c.size))
        a.index = int(a.index)
    if a.cmd == "auth" and (not a.index or not a.password):
        ap.error("auth needs a user and a password")
    if a.cmd == "start":
        c.start()
        if a.auth:
            try:
                c.enable_auth(*a.auth.split(":", 1))
            except Exception:
                c.stop()
                raise
        print(c.url())
    elif a.cmd == "stop":
        c.stop()
    elif a.cmd == "kill":
        c.kill(a.index, getattr(signal, "SIG" + a.signal.upper()))
    elif a.cmd == "restart":
        c.restart(a.index)
    elif a.cmd == "leader":
        print(c.leader())
    elif a.cmd == "wait":
        c.wait_healthy()
    elif a.cmd == "url":
        print(c.url())
    elif a.cmd == "auth":
        c.enable_auth(a.index, a.password)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
