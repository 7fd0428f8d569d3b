"""deploy/: the systemd unit, the container image definition, the Kubernetes
manifests and the install script.

The unit is checked with systemd-analyze (verify, offline security score, the
system-call filter against what the binary really calls under strace) and its
commands are run the way systemd would run them (plain and with the documented
TLS drop-in). There is no cluster and no container engine here, so the
Kubernetes manifests and the Containerfile are parsed and checked
structurally, and what can run without them does: the init container's script,
the main container's args with TLS against the probes' paths, the image's CMD
with the documented environment and its HEALTHCHECK command. install.sh is run
into a DESTDIR staging tree.

Tools that deploy/deps.sh does not install (systemd-analyze, strace,
shellcheck) skip their tests when absent.
"""
import glob
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import time

import pytest
import requests
import yaml  # Debian: python3-yaml (deploy/deps.sh CS_TEST_PKGS)

from harness import BIN as _BIN

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
UNIT = os.path.join(DEPLOY, "systemd", "credstore.service")
CONTAINERFILE = os.path.join(DEPLOY, "container", "Containerfile")
K8S = os.path.join(DEPLOY, "k8s")
INSTALL = os.path.join(DEPLOY, "install.sh")
BIN = os.path.abspath(_BIN)
UNIT_BIN = "/usr/local/bin/credstore"
STATE = "/var/lib/credstore"


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.skip("%s is not installed" % name)
    return path


# ----------------------------------------------------------------- unit parsing

def parse_unit(path):
    """systemd unit file -> {section: [(key, value), ...]} keeping repeated keys
    (configparser cannot: LoadCredential=, SystemCallFilter= repeat)."""
    sections, cur, pending = {}, None, ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not pending and line.lstrip().startswith(("#", ";")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line, pending = (pending + line).strip(), ""
            if not line:
                continue
            if line.startswith("["):
                cur = line.strip("[]")
                sections.setdefault(cur, [])
                continue
            key, _, value = line.partition("=")
            assert cur is not None, "directive outside a section: " + line
            sections[cur].append((key.strip(), value.strip()))
    return sections


def unit_values(section, key):
    return [v for k, v in parse_unit(UNIT).get(section, []) if k == key]


def unit_value(section, key):
    vals = unit_values(section, key)
    assert vals, "%s= missing from [%s]" % (key, section)
    return vals[-1]


def unit_copy(tmp_path, text=None):
    """A copy of the unit whose binary path is the built one (verify needs
    ExecStart's executable to exist)."""
    if text is None:
        with open(UNIT) as f:
            text = f.read()
    d = tmp_path / "units"
    d.mkdir(exist_ok=True)
    p = d / "credstore.service"
    p.write_text(text.replace(UNIT_BIN, BIN))
    return p


def verify(path):
    r = subprocess.run([tool("systemd-analyze"), "verify", str(path)], capture_output=True,
                       text=True, timeout=120)
    out = (r.stdout + r.stderr).splitlines()
    # Problems elsewhere on the host are not ours: keep lines naming this unit.
    mine = [l for l in out if "credstore.service" in l or str(path) in l]
    return r.returncode, mine


# ----------------------------------------------------------------- (a) systemd

def test_unit_passes_systemd_analyze_verify(tmp_path):
    rc, problems = verify(unit_copy(tmp_path))
    assert problems == [] and rc == 0, problems


def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt directive and a missing binary are
    reported for the unit itself."""
    with open(UNIT) as f:
        text = f.read()
    broken = text.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes").replace(
        "ExecStart=" + UNIT_BIN, "ExecStart=/nonexistent/credstore")
    rc, problems = verify(unit_copy(tmp_path, broken))
    assert any("NoNewPrivilege" in l for l in problems), problems
    assert any("/nonexistent/credstore" in l for l in problems), problems
    assert rc != 0


def test_unit_security_exposure_is_low(tmp_path):
    path = unit_copy(tmp_path)
    r = subprocess.run([tool("systemd-analyze"), "security", "--offline=yes", "--no-pager",
                        str(path)], capture_output=True, text=True, timeout=120)
    if "--offline" in r.stderr and "unrecognized" in r.stderr:
        pytest.skip("this systemd-analyze has no --offline")
    m = re.search(r"Overall exposure level for credstore\.service: ([0-9.]+)", r.stdout)
    assert m, r.stdout + r.stderr
    score = float(m.group(1))
    print("systemd-analyze security exposure: %.1f" % score)
    assert score < 2.5, r.stdout


HARDENING = {
    "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "NoNewPrivileges": "yes", "MemoryDenyWriteExecute": "yes",
    "LockPersonality": "yes", "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes",
    "RestrictNamespaces": "yes", "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "", "AmbientCapabilities": "",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
    "UMask": "0077", "LimitCORE": "0", "Restart": "on-failure", "KillSignal": "SIGTERM",
    "User": "credstore", "DynamicUser": "no", "StateDirectory": "credstore",
    "StateDirectoryMode": "0700",
}


def test_unit_hardening_directives():
    for key, want in HARDENING.items():
        assert unit_value("Service", key) == want, key
    assert unit_value("Service", "Type") in ("exec", "simple")
    assert set(unit_value("Service", "RestrictAddressFamilies").split()) == {
        "AF_INET", "AF_INET6", "AF_UNIX"}
    filters = unit_values("Service", "SystemCallFilter")
    assert filters and filters[0] == "@system-service", filters
    assert "master.key:/etc/credstore/master.key" in unit_values("Service", "LoadCredential")
    assert unit_value("Install", "WantedBy") == "multi-user.target"


def test_unit_commands_use_the_credential_and_state_dir():
    start = shlex.split(unit_value("Service", "ExecStart"))
    assert start[:2] == [UNIT_BIN, "serve"], start
    assert start[start.index("--data") + 1] == STATE
    assert start[start.index("--master-key-file") + 1] == "${CREDENTIALS_DIRECTORY}/master.key"
    # Loopback by default: no plain-HTTP escape hatch, no public listen address.
    assert "--insecure-http" not in start and "--listen" not in start
    pre = unit_values("Service", "ExecStartPre")
    assert len(pre) == 1, pre
    assert "init --data " + STATE in pre[0]
    assert "--master-key-file ${CREDENTIALS_DIRECTORY}/master.key" in pre[0]
    assert STATE + "/data.mdb" in pre[0], "init must be guarded by the store's existence"
    assert "bootstrap-admin.json" in pre[0], "the admin key must go to a file, not the journal"


# systemd expands these in command lines; the test maps them to temporary paths.
def unit_command(cmd, bin_, state, creds):
    assert cmd[:1] not in "-+!@:", "command prefixes are not emulated: " + cmd
    cmd = cmd.replace(UNIT_BIN, bin_).replace(STATE, state)
    cmd = cmd.replace("${CREDENTIALS_DIRECTORY}", creds).replace("$CREDENTIALS_DIRECTORY", creds)
    assert not re.search(r"(?<!\$)\$(?!\$)|%[a-zA-Z]", cmd), "unhandled expansion in " + cmd
    return shlex.split(cmd.replace("$$", "$"))


def clean_env(**extra):
    """The environment without CREDSTORE_* settings of the caller (every option
    is also an environment variable), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDSTORE_")}
    env.update(extra)
    return env


class Server:
    """A running `serve` command: waits for the "listening on ... port N" line
    (see harness.py), stops with SIGTERM and returns the exit code."""

    def __init__(self, argv, log_path, env, preexec_fn=None, strace=False):
        self.log_path = log_path
        self.strace = strace
        self.log = open(log_path, "ab")
        start_len = os.path.getsize(log_path)
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, env=env,
                                     preexec_fn=preexec_fn)
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(log_path, "rb") as f:
                f.seek(start_len)
                m = re.search(rb"listening on \S+ port (\d+)", f.read())
            if m:
                self.port = int(m.group(1))
                self.tls = b"(TLS)" in m.string[m.end():].split(b"\n", 1)[0]
                self.url = "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        pytest.fail("serve did not come up: " + self.text())

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        """SIGTERM to credstore (not to a strace prefix, which would re-raise
        it on itself); returns credstore's exit code (strace passes it on)."""
        pid = self.proc.pid
        if self.strace:
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                pid = int(f.read().split()[0])
        os.kill(pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def make_tls(d):
    """A self-signed certificate for 127.0.0.1 (as a kubernetes.io/tls Secret
    would hold): returns (cert, key) paths."""
    openssl = tool("openssl")
    crt, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
    r = subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                        "-subj", "/CN=credstore", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", crt], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    os.chmod(key, 0o400)
    return crt, key


class UnitRun:
    """What systemd sets up for the unit, in temporary directories: the state
    dir (0700, empty), the credentials dir with a copy of the master key (0400),
    the unit's UMask=; then ExecStartPre= and ExecStart= as written in the unit."""

    def __init__(self, tmp_path, prefix=()):
        self.prefix = list(prefix)
        self.state = str(tmp_path / "state")
        self.creds = str(tmp_path / "creds")
        os.mkdir(self.state, 0o700)
        os.mkdir(self.creds, 0o700)
        key = os.path.join(self.creds, "master.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o400)
        self.log_path = str(tmp_path / "journal.log")
        open(self.log_path, "wb").close()
        self.env = clean_env(CREDENTIALS_DIRECTORY=self.creds, STATE_DIRECTORY=self.state)
        umask = int(unit_value("Service", "UMask"), 8)
        self.preexec = lambda: os.umask(umask)

    def cmd(self, key):
        return unit_command(unit_value("Service", key), BIN, self.state, self.creds)

    def pre(self):
        return subprocess.run(self.prefix + self.cmd("ExecStartPre"), capture_output=True,
                              text=True, env=self.env, timeout=60,
                              preexec_fn=self.preexec)

    def start(self, env=None):
        """ExecStart=, on a free loopback port instead of 127.0.0.1:8200."""
        e = dict(self.env)
        e.update(env or {})
        return Server(self.prefix + self.cmd("ExecStart") + ["--listen", "127.0.0.1:0"],
                      self.log_path, e, preexec_fn=self.preexec, strace=bool(self.prefix))


def test_unit_commands_run_like_systemd(tmp_path):
    """(e) init into an empty state dir with the key from the credentials dir,
    the admin key into a 0600 file (not the journal), serve, /healthz, /readyz,
    SIGTERM -> exit 0, and a restart does not re-initialise."""
    run = UnitRun(tmp_path)
    r = run.pre()
    assert r.returncode == 0, r.stderr
    boot = os.path.join(run.state, "bootstrap-admin.json")
    assert stat.S_IMODE(os.stat(boot).st_mode) == 0o600
    with open(boot) as f:
        admin = json.loads(f.read())
    assert admin["role"] == "admin" and admin["secret"]
    # Nothing secret reaches what systemd would send to the journal.
    assert admin["secret"] not in r.stdout + r.stderr
    assert os.path.exists(os.path.join(run.state, "data.mdb"))
    assert not os.path.exists(os.path.join(run.state, "master.key")), \
        "the key must come from the credentials dir, not be generated in the state dir"
    assert not os.path.exists(boot + ".tmp")

    srv = run.start()
    try:
        assert not srv.tls
        h = requests.get(srv.url + "/healthz", timeout=10)
        assert h.status_code == 200 and h.json() == {"status": "ok"}
        assert requests.get(srv.url + "/readyz", timeout=10).status_code == 200
        # The bootstrap key works against the store that the unit initialised.
        tok = requests.post(srv.url + "/api/v1/login", timeout=10,
                            json={"username": admin["id"], "password": admin["secret"]})
        assert tok.status_code == 200, tok.text
    finally:
        rc = srv.stop()
    assert rc == 0, "serve must exit 0 on SIGTERM (KillSignal=SIGTERM)"

    # Restart: ExecStartPre again leaves the store and the bootstrap file alone.
    before = open(boot).read()
    r = run.pre()
    assert r.returncode == 0, r.stderr
    assert open(boot).read() == before
    with open(run.log_path, "rb") as f:
        assert admin["secret"].encode() not in f.read()


def test_unit_init_failure_fails_the_start(tmp_path):
    """A wrong master key (not 32 bytes) makes ExecStartPre fail: no store, no
    bootstrap file, so systemd does not go on to ExecStart."""
    run = UnitRun(tmp_path)
    key = os.path.join(run.creds, "master.key")
    os.chmod(key, 0o600)
    with open(key, "wb") as f:
        f.write(b"short")
    r = run.pre()
    assert r.returncode != 0
    assert not os.path.exists(os.path.join(run.state, "bootstrap-admin.json"))


def syscall_groups():
    """systemd-analyze syscall-filter -> {"@group": [member, ...]} (members may
    be groups themselves)."""
    out = subprocess.run([tool("systemd-analyze"), "syscall-filter", "--no-pager"],
                         capture_output=True, text=True, timeout=60).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.split()[0], [])
        elif line.startswith("#"):
            cur = None  # the trailing lists of ungrouped/unlisted calls
        elif line.strip() and not line.strip().startswith("#") and cur is not None:
            cur.append(line.strip())
    return groups


def expand(names, groups, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for n in names:
        if n.startswith("@"):
            if n in seen:
                continue
            seen.add(n)
            assert n in groups, "unknown syscall group " + n
            out |= expand(groups[n], groups, seen)
        else:
            out.add(n)
    return out


def tls_dropin_env(run):
    """The TLS drop-in documented in the unit's header comment, with %d (the
    credentials directory) mapped to the test's one; the pair is generated there
    as LoadCredential= would place it."""
    with open(UNIT) as f:
        header = f.read().split("[Unit]")[0]
    m = re.search(r"Environment=(CREDSTORE_TLS_CERT=%d/(\S+) CREDSTORE_TLS_KEY=%d/(\S+))", header)
    assert m, "the unit's comment documents the TLS drop-in"
    assert "LoadCredential=%s:" % m.group(2) in header
    assert "LoadCredential=%s:" % m.group(3) in header
    crt, key = make_tls(run.creds)
    os.rename(crt, os.path.join(run.creds, m.group(2)))
    os.rename(key, os.path.join(run.creds, m.group(3)))
    env = dict(kv.split("=", 1) for kv in m.group(1).replace("%d", run.creds).split())
    return env, os.path.join(run.creds, m.group(2))


def test_unit_serves_tls_with_the_documented_dropin(tmp_path):
    run = UnitRun(tmp_path)
    assert run.pre().returncode == 0
    env, crt = tls_dropin_env(run)
    srv = run.start(env)
    try:
        assert srv.tls, srv.text()
        r = requests.get(srv.url + "/healthz", timeout=10, verify=crt)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_unit_syscall_filter_allows_what_credstore_calls(tmp_path, tls):
    """Run ExecStartPre= and ExecStart= under strace -f, serve a few requests,
    and check every system call made is allowed by the unit's SystemCallFilter=
    (a denied one would fail at run time under systemd), and that nothing needs
    writable+executable memory (MemoryDenyWriteExecute=)."""
    strace = tool("strace")
    needed = subprocess.run(["readelf", "-d", BIN], capture_output=True, text=True).stdout
    if "libasan" in needed or "libubsan" in needed:
        pytest.skip("sanitizer runtimes make system calls of their own; "
                    "checked on the non-sanitized build")
    groups = syscall_groups()
    allowed = set()
    for f in unit_values("Service", "SystemCallFilter"):
        if f.startswith("~"):
            allowed -= expand(f[1:].split(), groups)
        else:
            allowed |= expand(f.split(), groups)
    assert "read" in allowed and "reboot" not in allowed and "setuid" not in allowed

    trace = str(tmp_path / "trace")
    run = UnitRun(tmp_path, prefix=[strace, "-f", "-qq", "-o", trace + ".pre"])
    assert run.pre().returncode == 0
    env, crt = tls_dropin_env(run) if tls else ({}, None)
    run.prefix = [strace, "-f", "-qq", "-o", trace + ".serve"]
    srv = run.start(env)
    try:
        assert srv.tls == tls
        with open(os.path.join(run.state, "bootstrap-admin.json")) as f:
            admin = json.load(f)
        # verify= per request: a Session's verify loses to REQUESTS_CA_BUNDLE.
        kw = {"timeout": 10, "verify": crt if tls else True}
        for path in ("/healthz", "/readyz"):
            assert requests.get(srv.url + path, **kw).status_code == 200, path
        auth = (admin["id"], admin["secret"])
        for path in ("/metrics", "/api/v1/version"):
            assert requests.get(srv.url + path, auth=auth, **kw).status_code == 200, path
        assert requests.post(srv.url + "/api/v1/access_keys", auth=auth, **kw,
                             json={"name": "ci", "role": "ci"}).status_code == 201
        assert requests.get(srv.url + "/api/v1/access_keys", auth=auth, **kw).status_code == 200
    finally:
        assert srv.stop() == 0

    used, wx = set(), []
    for name in (trace + ".pre", trace + ".serve"):
        with open(name) as f:
            for line in f:
                m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
                if m:
                    used.add(m.group(1))
                if re.match(r"\d+\s+(mmap|mprotect|pkey_mprotect)\(", line) and \
                        "PROT_EXEC" in line and ("PROT_WRITE" in line or "mmap" not in line):
                    wx.append(line.strip())
    assert {"execve", "socket", "bind"} <= used, used
    assert sorted(used - allowed) == [], "denied by SystemCallFilter="
    assert wx == [], "MemoryDenyWriteExecute= would refuse these"


# ----------------------------------------------------------------- (b) Kubernetes

def k8s_docs():
    files = sorted(glob.glob(os.path.join(K8S, "*.yaml")))
    assert files, "no manifests in deploy/k8s"
    docs = []
    for path in files:
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d is not None:
                    docs.append((os.path.basename(path), d))
    return docs


def one(kind):
    found = [d for _, d in k8s_docs() if d.get("kind") == kind]
    assert len(found) == 1, "want one %s, found %d" % (kind, len(found))
    return found[0]


def test_k8s_manifests_parse_and_are_namespace_agnostic():
    docs = k8s_docs()
    kinds = {d["kind"] for _, d in docs}
    assert {"StatefulSet", "Service", "NetworkPolicy"} <= kinds, kinds
    for name, d in docs:
        assert d.get("apiVersion") and d.get("kind"), name
        if d["kind"] == "Kustomization":
            continue
        assert d["metadata"].get("name"), name
        assert "namespace" not in d["metadata"], "%s: namespaced %s" % (name, d["kind"])
    kust = [d for _, d in docs if d["kind"] == "Kustomization"]
    if kust:
        listed = set(kust[0]["resources"])
        on_disk = {n for n, d in docs if d["kind"] != "Kustomization"}
        assert listed == on_disk, (listed, on_disk)


def pod_spec():
    return one("StatefulSet")["spec"]["template"]["spec"]


def main_container():
    cs = pod_spec()["containers"]
    assert len(cs) == 1
    return cs[0]


def arg_after(args, opt):
    assert opt in args, "%s missing from %s" % (opt, args)
    return args[args.index(opt) + 1]


def mount_for(container, path):
    """(volumeMount, volume) whose mountPath contains path."""
    vols = {v["name"]: v for v in pod_spec()["volumes"]}
    for m in container.get("volumeMounts", []):
        if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/"):
            return m, vols.get(m["name"])
    raise AssertionError("%s is not on any volume of %s" % (path, container["name"]))


def test_k8s_statefulset_single_replica_with_volume():
    sts = one("StatefulSet")
    spec = sts["spec"]
    assert spec["replicas"] == 1, "LMDB is single-node"
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    headless = [d for _, d in k8s_docs()
                if d["kind"] == "Service" and d["metadata"]["name"] == spec["serviceName"]]
    assert headless and headless[0]["spec"].get("clusterIP") == "None"
    vct = spec["volumeClaimTemplates"]
    assert len(vct) == 1
    claim = vct[0]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    c = main_container()
    args = c["args"]
    assert args[0] == "serve"
    data = arg_after(args, "--data")
    m, vol = mount_for(c, data)
    assert vol is None and m["name"] == claim["metadata"]["name"], "data must be on the PVC"
    assert not m.get("readOnly")


def test_k8s_master_key_and_tls_come_from_secrets():
    c = main_container()
    args = c["args"]
    key = arg_after(args, "--master-key-file")
    m, vol = mount_for(c, key)
    assert m.get("readOnly") is True
    assert vol and "secret" in vol, vol
    assert vol["secret"]["defaultMode"] == 0o400
    items = {i["path"]: i["key"] for i in vol["secret"].get("items", [])}
    assert items.get(os.path.relpath(key, m["mountPath"])) == "master.key"
    assert "--passphrase-env" not in args and "--insecure-http" not in args
    assert arg_after(args, "--listen").endswith(":8200")
    for opt, k in (("--tls-cert", "tls.crt"), ("--tls-key", "tls.key")):
        p = arg_after(args, opt)
        m, vol = mount_for(c, p)
        assert m.get("readOnly") is True and vol and "secret" in vol
        items = {i["path"]: i["key"] for i in vol["secret"].get("items", [])}
        assert items.get(os.path.relpath(p, m["mountPath"]), os.path.basename(p)) == k
    # No secret value is inlined anywhere in the manifests.
    assert not [d for _, d in k8s_docs() if d["kind"] == "Secret"]
    for c2 in pod_spec()["containers"] + pod_spec().get("initContainers", []):
        for e in c2.get("env", []):
            assert "value" not in e or not re.search("KEY|SECRET|PASS", e["name"]), e


def port_number(container, port):
    if isinstance(port, int):
        return port
    return {p["name"]: p["containerPort"] for p in container["ports"]}[port]


def test_k8s_probes():
    c = main_container()
    live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
    assert live["path"] == "/healthz" and ready["path"] == "/readyz"
    for p in (live, ready):
        assert p["scheme"] == "HTTPS", "the server listens with TLS"
        assert port_number(c, p["port"]) == 8200


def test_k8s_security_context():
    pod = pod_spec()
    psc = pod.get("securityContext", {})
    assert pod.get("automountServiceAccountToken") is False
    assert psc.get("fsGroup") == 10001
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c.get("securityContext", {})

        def get(k):
            return sc.get(k, psc.get(k))
        assert get("runAsNonRoot") is True, c["name"]
        assert get("runAsUser") == 10001, c["name"]
        assert get("seccompProfile") == {"type": "RuntimeDefault"}, c["name"]
        assert sc.get("readOnlyRootFilesystem") is True, c["name"]
        assert sc.get("allowPrivilegeEscalation") is False, c["name"]
        assert sc.get("privileged", False) is False, c["name"]
        assert "ALL" in sc.get("capabilities", {}).get("drop", []), c["name"]
        assert not sc.get("capabilities", {}).get("add"), c["name"]


def init_script():
    pod = pod_spec()
    inits = pod.get("initContainers", [])
    assert len(inits) == 1
    ic = inits[0]
    assert ic["image"] == main_container()["image"], "the init container uses the same image"
    cmd = ic["command"] + ic.get("args", [])
    assert cmd[0] == "/bin/sh" and cmd[1].startswith("-") and "c" in cmd[1], cmd
    return ic, cmd[2]


def test_k8s_init_container_initialises_only_an_empty_volume(tmp_path):
    """Run the init container's script (with the paths mapped to temporary
    ones): first run initialises and stores the admin key in a 0600 file on the
    volume; the second leaves everything alone."""
    ic, script = init_script()
    key_path = arg_after(main_container()["args"], "--master-key-file")
    data_path = arg_after(main_container()["args"], "--data")
    assert "init" in script and key_path in script and data_path + "/data.mdb" in script
    m, _ = mount_for(ic, key_path)
    assert m.get("readOnly") is True
    m, _ = mount_for(ic, data_path)

    data, key = tmp_path / "data", tmp_path / "master.key"
    data.mkdir(mode=0o770)
    key.write_bytes(os.urandom(32))
    key.chmod(0o400)
    local = script.replace(key_path, str(key))
    local = re.sub(r"(?<![\w/.-])%s(?=[/\s]|$)" % re.escape(data_path), str(data), local,
                   flags=re.M)
    local = re.sub(r"(^|[\s;&|])credstore(?=\s)", lambda mm: mm.group(1) + shlex.quote(BIN),
                   local, flags=re.M)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDSTORE_")}
    r = subprocess.run(["/bin/sh", "-ec", local], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    boot = [p for p in data.iterdir() if p.name.startswith("bootstrap")]
    assert len(boot) == 1 and stat.S_IMODE(boot[0].stat().st_mode) == 0o600, boot
    admin = json.loads(boot[0].read_text())
    assert admin["role"] == "admin"
    assert admin["secret"] not in r.stdout + r.stderr, "the admin key must not go to the pod log"
    assert (data / "data.mdb").exists() and not (data / "master.key").exists()
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    r = subprocess.run(["/bin/sh", "-ec", local], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert boot[0].read_bytes() == before[boot[0].name]


def test_k8s_container_args_serve_tls_and_answer_the_probes(tmp_path):
    """The main container's args, run for real with the paths mapped to
    temporary files (a self-signed pair as in the kubernetes.io/tls Secret) and
    0.0.0.0:8200 to a free loopback port: TLS is on, and the probes' paths and
    scheme answer 200; SIGTERM (pod termination) exits 0."""
    c = main_container()
    args = list(c["args"])
    key = tmp_path / "master.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o400)
    data = str(tmp_path / "data")
    r = subprocess.run([BIN, "init", "--data", data, "--master-key-file", str(key)],
                       capture_output=True, text=True, env=clean_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    crt, tkey = make_tls(str(tmp_path))
    mapping = {arg_after(args, "--master-key-file"): str(key), arg_after(args, "--data"): data,
               arg_after(args, "--tls-cert"): crt, arg_after(args, "--tls-key"): tkey}
    listen = arg_after(args, "--listen")
    assert listen == "0.0.0.0:8200"
    args = [mapping.get(a, a) for a in args]
    args[args.index(listen)] = "127.0.0.1:0"
    srv = Server([BIN] + args, str(tmp_path / "pod.log"), clean_env())
    try:
        assert srv.tls, "the container must serve TLS: " + srv.text()
        for probe in ("livenessProbe", "readinessProbe"):
            g = c[probe]["httpGet"]
            url = "%s://127.0.0.1:%d%s" % (g["scheme"].lower(), srv.port, g["path"])
            assert requests.get(url, timeout=10, verify=crt).status_code == 200, probe
    finally:
        assert srv.stop() == 0


def test_k8s_service_targets_the_pod():
    labels = one("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    services = [d for _, d in k8s_docs() if d["kind"] == "Service"]
    assert services
    for svc in services:
        assert svc["spec"]["selector"].items() <= labels.items()
        for p in svc["spec"]["ports"]:
            assert p["port"] == 8200
            assert port_number(main_container(), p.get("targetPort", p["port"])) == 8200


def test_k8s_network_policy():
    np = one("NetworkPolicy")["spec"]
    labels = one("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert np["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(np["policyTypes"]) == {"Ingress", "Egress"}
    assert np["ingress"], "no ingress rule at all would deny the clients too"
    for rule in np["ingress"]:
        assert rule.get("from"), "an ingress rule without 'from' admits everyone"
        for peer in rule["from"]:
            assert peer["podSelector"]["matchLabels"] == {"credstore-client": "true"}, peer
            assert "ipBlock" not in peer
        assert [(p.get("protocol", "TCP"), p["port"]) for p in rule["ports"]] == [("TCP", 8200)]
    egress_ports = set()
    for rule in np["egress"]:
        assert rule.get("ports"), "an egress rule without ports allows everything"
        egress_ports |= {(p.get("protocol", "TCP"), p["port"]) for p in rule["ports"]}
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}, egress_ports
    with open(os.path.join(K8S, "networkpolicy.yaml")) as f:
        text = f.read()
    assert "169.254.169.254" in text and "useAWSRole" in text, "IMDS egress must be documented"


# ----------------------------------------------------------------- (c) Containerfile

def containerfile_stages():
    """[(from_line_args, [(INSTRUCTION, args), ...]), ...] per build stage."""
    with open(CONTAINERFILE) as f:
        lines = f.read().splitlines()
    instrs, pending = [], ""
    for line in lines:
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # comment lines inside a continuation are dropped by the parser
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full, pending = pending + line, ""
        word, _, rest = full.strip().partition(" ")
        instrs.append((word.upper(), rest.strip()))
    stages = []
    for ins, args in instrs:
        if ins == "FROM":
            stages.append((args, []))
        else:
            assert stages or ins == "ARG", "instruction before FROM: " + ins
            if stages:
                stages[-1][1].append((ins, args))
    return stages


def instr(stage, name):
    return [a for i, a in stage[1] if i == name]


def exec_form(args):
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def test_containerfile_multi_stage_on_debian():
    stages = containerfile_stages()
    assert len(stages) == 2
    assert re.fullmatch(r"debian:12 +AS +build", stages[0][0], re.I), stages[0][0]
    assert stages[1][0] == "debian:12-slim"
    build = " ".join(instr(stages[0], "RUN"))
    assert "deploy/deps.sh" in build and "$CS_BUILD_PKGS" in build
    assert "-DCMAKE_BUILD_TYPE=Release" in build and "-DCS_TESTS=OFF" in build
    runtime = " ".join(instr(stages[1], "RUN"))
    for pkg in ("libsodium23", "libmicrohttpd12", "libcjson1", "liblmdb0", "libcurl4",
                "libyaml-0-2", "ca-certificates"):
        assert re.search(r"(^|\s)%s(\s|$)" % re.escape(pkg), runtime), pkg
    assert "--no-install-recommends" in runtime
    assert not re.search(r"\S+-dev\b|\b(gcc|cmake|make|pkg-config)\b", runtime), runtime
    assert "rm -rf /var/lib/apt/lists" in runtime
    copies = instr(stages[1], "COPY")
    assert copies == ["--from=build /out/credstore /usr/local/bin/credstore"], copies


def test_containerfile_runtime_is_non_root_with_data_volume():
    final = containerfile_stages()[-1]
    users = instr(final, "USER")
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and user == "10001", users
    assert "useradd" in " ".join(instr(final, "RUN")) and "--uid 10001" in " ".join(
        instr(final, "RUN"))
    vols = [v for a in instr(final, "VOLUME") for v in exec_form(a)]
    assert "/data" in vols, vols
    assert instr(final, "EXPOSE") == ["8200"]
    hc = " ".join(instr(final, "HEALTHCHECK"))
    assert "CMD" in hc and "/healthz" in hc and "127.0.0.1:8200" in hc
    assert exec_form(instr(final, "ENTRYPOINT")[-1]) == ["credstore"]
    cmd = exec_form(instr(final, "CMD")[-1])
    assert cmd[0] == "serve" and arg_after(cmd, "--data") == "/data"
    assert arg_after(cmd, "--listen") == "0.0.0.0:8200"
    assert "--insecure-http" not in cmd, "plain HTTP must be an explicit, documented choice"


def documented_docker_env():
    """The -e VAR=VALUE settings of the `docker run` example in the
    Containerfile's header comment."""
    with open(CONTAINERFILE) as f:
        header = f.read().split("\nFROM ")[0]
    env = dict(re.findall(r"-e (CREDSTORE_[A-Z_]+)=(\S+)", header))
    assert {"CREDSTORE_MASTER_KEY_FILE", "CREDSTORE_TLS_CERT", "CREDSTORE_TLS_KEY"} <= set(env)
    return env


def test_containerfile_cmd_refuses_plain_http_and_serves_tls_as_documented(tmp_path):
    """ENTRYPOINT+CMD without TLS must refuse to listen on 0.0.0.0; with the
    documented environment (secrets mapped from /run/secrets to temporary
    files) it serves TLS and the HEALTHCHECK command succeeds against it, and
    fails once the server is gone."""
    final = containerfile_stages()[-1]
    cmd = exec_form(instr(final, "CMD")[-1])
    env = documented_docker_env()
    secrets = str(tmp_path / "secrets")
    os.makedirs(os.path.join(secrets, "tls"))
    local = {k: v.replace("/run/secrets", secrets) for k, v in env.items()}
    with open(local["CREDSTORE_MASTER_KEY_FILE"], "wb") as f:
        f.write(os.urandom(32))
    os.chmod(local["CREDSTORE_MASTER_KEY_FILE"], 0o400)
    crt, key = make_tls(os.path.join(secrets, "tls"))
    assert (crt, key) == (local["CREDSTORE_TLS_CERT"], local["CREDSTORE_TLS_KEY"])
    data = str(tmp_path / "data")
    cmd = [data if a == "/data" else a for a in cmd]
    r = subprocess.run([BIN, "init", "--data", data], capture_output=True, text=True,
                       env=clean_env(CREDSTORE_MASTER_KEY_FILE=local["CREDSTORE_MASTER_KEY_FILE"]),
                       timeout=60)
    assert r.returncode == 0, r.stderr

    # As shipped, without the TLS pair: refuses (and so never binds 0.0.0.0).
    try:
        r = subprocess.run([BIN] + cmd, capture_output=True, text=True, timeout=30,
                           env=clean_env(CREDSTORE_MASTER_KEY_FILE=local["CREDSTORE_MASTER_KEY_FILE"]))
    except subprocess.TimeoutExpired:
        pytest.fail("the image's CMD served plain HTTP on 0.0.0.0")
    assert r.returncode != 0 and "refusing" in r.stderr, r.stderr

    listen = arg_after(cmd, "--listen")
    cmd[cmd.index(listen)] = "127.0.0.1:0"
    srv = Server([BIN] + cmd, str(tmp_path / "container.log"), clean_env(**local))
    hc = " ".join(instr(final, "HEALTHCHECK"))
    hc = hc[hc.index("CMD") + 3:].strip().replace("127.0.0.1:8200", "127.0.0.1:%d" % srv.port)
    tool("curl")
    try:
        assert srv.tls, srv.text()
        assert requests.get(srv.url + "/healthz", timeout=10, verify=crt).status_code == 200
        r = subprocess.run(["/bin/sh", "-c", hc], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
    finally:
        assert srv.stop() == 0
    r = subprocess.run(["/bin/sh", "-c", hc], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, "the healthcheck must fail when nothing answers"


def test_containerfile_copies_no_secrets_and_all_sources():
    stages = containerfile_stages()
    srcs = []
    for st in stages:
        assert not instr(st, "ADD"), "use COPY (ADD fetches URLs and unpacks archives)"
        for args in instr(st, "COPY"):
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            srcs += parts[:-1]
        for args in instr(st, "ENV") + instr(st, "ARG"):
            assert not re.search(r"(KEY|SECRET|PASS|TOKEN)\w*=", args, re.I), args
    for s in srcs:
        assert s not in (".", "./", "*"), "COPY of the whole context can include .data/"
        assert not re.search(r"(^|/)\.data|master\.key|\.pem$|\.key$|\.env$|\.git(/|$)|build",
                             s), s
    # Every source directory the top-level CMakeLists.txt builds is copied.
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        subdirs = re.findall(r"^\s*add_subdirectory\((\w+)\)", f.read(), re.M)
    assert subdirs
    copied = {s.strip("/") for s in srcs}
    for d in subdirs:
        if d != "tests":
            assert d in copied, "the image build would miss %s/" % d
    assert "CMakeLists.txt" in copied


def test_containerfile_runtime_packages_cover_the_binary():
    """Each library the binary links directly (DT_NEEDED) comes from a package the
    runtime stage installs, or from the base image (libc6)."""
    readelf = tool("readelf")
    tool("dpkg")
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
                        subprocess.run([readelf, "-d", BIN], capture_output=True,
                                       text=True).stdout)
    assert needed
    runtime = " ".join(instr(containerfile_stages()[-1], "RUN")).split()
    base = {"libc6", "libgcc-s1", "libstdc++6", "libasan8", "libubsan1"}  # (sanitizers: test builds)
    for so in needed:
        r = subprocess.run(["dpkg", "-S", "*/" + so], capture_output=True, text=True)
        assert r.returncode == 0, "no package owns " + so
        pkgs = {l.split(":")[0] for l in r.stdout.splitlines()}
        assert pkgs & (set(runtime) | base), "%s (from %s) is not installed in the image" % (
            so, sorted(pkgs))


# ----------------------------------------------------------------- (d) install.sh

def run_install(*args, destdir=None, env=None, cwd=ROOT):
    e = {k: v for k, v in os.environ.items() if k not in ("DESTDIR", "PREFIX")}
    if destdir is not None:
        e["DESTDIR"] = str(destdir)
    e.update(env or {})
    return subprocess.run(["bash", INSTALL, *args], capture_output=True, text=True, env=e,
                          cwd=cwd, timeout=120)


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_install_script_is_strict_and_executable():
    assert os.access(INSTALL, os.X_OK)
    with open(INSTALL) as f:
        text = f.read()
    assert text.startswith("#!/usr/bin/env bash") or text.startswith("#!/bin/bash")
    assert "set -euo pipefail" in text
    assert "cs_ensure_packages $CS_BUILD_PKGS" in text and "deploy/deps.sh" in text


def test_install_staged_into_destdir(tmp_path):
    host_unit = "/etc/systemd/system/credstore.service"
    host_before = os.path.exists(host_unit), os.path.exists("/etc/credstore")
    stage = tmp_path / "stage"
    r = run_install("--no-build", "--binary", BIN, destdir=stage)
    assert r.returncode == 0, r.stderr
    assert "not creating the credstore system user" in r.stderr
    assert "not calling systemctl" in r.stderr

    binp = stage / "usr/local/bin/credstore"
    assert mode(binp) == 0o755
    assert binp.read_bytes() == open(BIN, "rb").read()
    unit = stage / "etc/systemd/system/credstore.service"
    assert unit.read_text() == open(UNIT).read()
    assert mode(stage / "etc/credstore") == 0o750
    key = stage / "etc/credstore/master.key"
    assert mode(key) == 0o400
    k1 = key.read_bytes()
    assert len(k1) == 32 and k1 != b"\0" * 32
    assert not (stage / "etc/credstore/master.key.tmp").exists()
    assert (stage / "usr/local/share/doc/credstore/README.md").exists()
    assert not (stage / "var").exists(), "the state dir is systemd's (StateDirectory=)"

    # Idempotent: a second run keeps the key and succeeds.
    r = run_install("--no-build", "--binary", BIN, destdir=stage)
    assert r.returncode == 0, r.stderr
    assert "kept the existing master key" in r.stderr
    assert key.read_bytes() == k1 and mode(key) == 0o400
    # Nothing outside DESTDIR was touched.
    assert (os.path.exists(host_unit), os.path.exists("/etc/credstore")) == host_before


def test_install_prefix_rewrites_the_unit(tmp_path):
    stage = tmp_path / "stage"
    r = run_install("--binary", BIN, destdir=stage, env={"PREFIX": "/opt/credstore"},
                    cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert mode(stage / "opt/credstore/bin/credstore") == 0o755
    text = (stage / "etc/systemd/system/credstore.service").read_text()
    assert "/usr/local/bin/credstore" not in text
    assert "ExecStart=/opt/credstore/bin/credstore serve" in text


def test_install_refuses_bad_invocations(tmp_path):
    stage = tmp_path / "stage"
    r = run_install("--no-build", "--binary", str(tmp_path / "nope"), destdir=stage)
    assert r.returncode != 0 and "no executable" in r.stderr
    assert not (stage / "etc/credstore/master.key").exists()
    r = run_install("--binary", BIN, "--start", destdir=stage)
    assert r.returncode != 0 and "--start" in r.stderr and "DESTDIR" in r.stderr
    r = run_install("--bogus", destdir=stage)
    assert r.returncode == 2


def test_install_script_shellcheck():
    sc = tool("shellcheck")
    r = subprocess.run([sc, "-x", "deploy/install.sh"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
