"""Issue 6: backup, restore, rotate-key; passphrase and key-file master keys.
Issue 11: admin-key, the offline recovery of an admin key."""
import fcntl
import hashlib
import json
import os
import shutil
import stat
import threading
import time
import uuid

import lmdb
import requests

from harness import Daemon, run_cli
from test_auth import basic
from test_credentials import AWS_SECRET, b64variants, fixture, valid_bodies
from test_usages import Receiver, wait_for

PASS_VAR = "CS_TEST_ADMIN_PASSPHRASE"
PASSPHRASE = "correct horse battery staple 42"
HDR_LEN = 4 + 1 + 8 + 8 + 8 + 4


# ------------------------------------------------------------------ helpers

def start(dd, admin=None):
    """Start serving; a daemon on an existing dir borrows the admin key it was made with."""
    dd.admin = dd.admin or admin
    dd.start()
    dd.auth = {"Authorization": basic(dd.admin["id"], dd.admin["secret"])}
    return dd


def create(d, cid, body):
    r = d.post("/api/v1/credentials", json=dict(body, _id=cid), headers=d.auth)
    assert r.status_code in (200, 201), r.text
    return r.json()


def add_usage(d, cid, **kw):
    r = d.post("/api/v1/credentials/%s/usages" % cid,
               json=dict({"type": "Registry Scan"}, **kw), headers=d.auth)
    assert r.status_code == 201, r.text
    return r.json()


def resolve(d, cid, uid):
    r = d.post("/api/v1/credentials/%s/resolve" % cid, json={"usageId": uid}, headers=d.auth)
    assert r.status_code == 200, (cid, r.text)
    m = r.json()
    m.pop("version", None)
    return m


def ibm(secret):
    return {"type": "ibmCloud", "accountGUID": "0123456789abcdef0123456789abcdef",
            "secret": {"plain": secret}}


def serve_fails(data, *args, env=None):
    """serve must refuse to start: returns its stderr."""
    r = run_cli("serve", "--data", data, "--listen", "127.0.0.1:0", *args, env=env, timeout=30)
    assert r.returncode != 0, r.stderr
    return r.stderr


def cred_parts(rec):
    """Split a stored credential into (everything before the sealed part, sealed)."""
    assert rec[:4] == b"CSC1"
    meta_len = int.from_bytes(rec[29:33], "big")
    fp_off = HDR_LEN + meta_len
    end = fp_off + 1 + rec[fp_off]
    return bytes(rec[:end]), bytes(rec[end:])


def read_store(data):
    """What rotate-key touches, read straight from LMDB (serve stopped)."""
    env = lmdb.open(data, readonly=True, lock=False, max_dbs=16)
    try:
        out = {"creds": {}, "usages": {}}
        with env.begin() as txn:
            out["keyring"] = bytes(txn.get(b"keyring", db=env.open_db(b"meta", txn=txn)))
            for k, v in txn.cursor(db=env.open_db(b"credentials", txn=txn)):
                out["creds"][k.decode()] = cred_parts(v)
            for k, v in txn.cursor(db=env.open_db(b"usages", txn=txn)):
                out["usages"][k.decode()] = json.loads(v)
        return out
    finally:
        env.close()


def keyring_versions(blob):
    assert blob[:4] == b"CSKR"
    return int.from_bytes(blob[5:9], "big")


def sealed_version(sealed):
    assert len(sealed) > 4
    return int.from_bytes(sealed[:4], "big")


def usage_version(u):
    return sealed_version(bytes.fromhex(u["callbackSecretSealed"]))


def rotate(data, *args, env=None):
    r = run_cli("rotate-key", "--data", data, *args, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def write_key(path):
    with open(path, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(path, 0o600)
    return str(path)


# ------------------------------------------------------------------- backup

class Writer(threading.Thread):
    """Posts credentials until stopped (bounded): records what was acknowledged."""

    def __init__(self, d, limit=3000):
        super().__init__(daemon=True)
        self.d, self.limit = d, limit
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}      # id -> secret, acknowledged (201)
        self.started = {}    # id -> time.monotonic() the POST began
        self.errors = []

    def run(self):
        s = requests.Session()
        try:
            for i in range(self.limit):
                if self.stop_ev.is_set():
                    break
                cid, secret = "bw-%05d" % i, "ibm-key-%05d-%s" % (i, uuid.uuid4().hex)
                with self.lock:
                    self.started[cid] = time.monotonic()
                r = s.post(self.d.url + "/api/v1/credentials", json=dict(ibm(secret), _id=cid),
                           headers=self.d.auth, timeout=30)
                if r.status_code != 201:
                    self.errors.append(r.text)
                    break
                with self.lock:
                    self.acked[cid] = secret
        finally:
            s.close()

    def snapshot(self):
        with self.lock:
            return dict(self.acked)

    def acked_after(self, t):
        """Ids whose POST began after monotonic time t and were acknowledged."""
        with self.lock:
            return [c for c in self.acked if self.started[c] > t]


def test_backup_while_writing_then_restore_and_serve(tmp_path):
    d = start(Daemon())
    rd = None
    w = Writer(d)
    try:
        w.start()
        assert wait_for(lambda: len(w.snapshot()) >= 60), w.errors
        before = w.snapshot()
        out = str(tmp_path / "b.mdb")
        r = run_cli("backup", "--data", d.data, "--out", out)
        backup_done = time.monotonic()
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout)
        assert res == {"backup": out, "bytes": os.path.getsize(out)}
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
        # The writer kept going during and after the copy.
        assert wait_for(lambda: len(w.acked_after(backup_done)) >= 20), w.errors
        w.stop_ev.set()
        w.join(30)
        assert not w.errors, w.errors
        after_backup = [c for c, t in w.started.items() if t > backup_done]
        assert len(after_backup) >= 20

        # An existing file is refused and left alone.
        digest = hashlib.sha256(open(out, "rb").read()).hexdigest()
        r = run_cli("backup", "--data", d.data, "--out", out)
        assert r.returncode != 0 and "already exists" in r.stderr, r.stderr
        assert hashlib.sha256(open(out, "rb").read()).hexdigest() == digest
        assert d.stop() == 0

        # Restore into a new dir: 0700 dir, 0600 data.mdb, no master key copied.
        new = str(tmp_path / "restored")
        r = run_cli("restore", "--from", out, "--data", new)
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["restored"] == new and info["bytes"] == os.path.getsize(out)
        assert "master key" in r.stderr and "master.key" in r.stderr
        assert stat.S_IMODE(os.stat(new).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(os.path.join(new, "data.mdb")).st_mode) == 0o600
        assert not os.path.exists(os.path.join(new, "master.key"))
        # Without the key the restored dir cannot be served...
        assert "master key" in serve_fails(new)
        # ...with the dev key copied it can.
        shutil.copy(os.path.join(d.data, "master.key"), os.path.join(new, "master.key"))
        os.chmod(os.path.join(new, "master.key"), 0o600)
        r = run_cli("audit-verify", "--data", new)
        assert r.returncode == 0, "the snapshot's audit chain is intact: " + r.stderr

        rd = start(Daemon(data_dir=new), d.admin)
        r = rd.get("/api/v1/credentials?limit=1", headers=rd.auth)
        assert int(r.headers["Total-Count"]) == info["credentials"] >= len(before)
        for cid, secret in before.items():
            uid = add_usage(rd, cid)["id"]
            assert resolve(rd, cid, uid)["apiKey"] == secret, cid
        for cid in after_backup:
            r = rd.get("/api/v1/credentials/" + cid, headers=rd.auth)
            assert r.status_code == 404, "%s was written after the backup finished" % cid
    finally:
        w.stop_ev.set()
        if rd:
            rd.stop()
            rd.close()
        d.close()


def test_backup_and_restore_refusals(tmp_path):
    d = Daemon()
    try:
        out = str(tmp_path / "b.mdb")
        assert run_cli("backup", "--data", d.data, "--out", out).returncode == 0
        # Missing options, an uninitialised source.
        assert run_cli("backup", "--data", d.data).returncode == 2
        r = run_cli("backup", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "x"))
        assert r.returncode != 0 and "not initialised" in r.stderr
        assert not os.path.exists(tmp_path / "x")
        # Restore refuses a dir holding a store, and a non-empty dir.
        r = run_cli("restore", "--from", out, "--data", d.data)
        assert r.returncode != 0 and "already holds a store" in r.stderr
        busy = tmp_path / "busy"
        busy.mkdir()
        (busy / "notes.txt").write_text("x")
        r = run_cli("restore", "--from", out, "--data", str(busy))
        assert r.returncode != 0 and "new or empty" in r.stderr
        assert sorted(os.listdir(busy)) == ["notes.txt"]
        # A file that is not a backup restores nothing.
        junk = tmp_path / "junk.mdb"
        junk.write_bytes(os.urandom(64 * 1024))
        r = run_cli("restore", "--from", str(junk), "--data", str(tmp_path / "j"))
        assert r.returncode != 0 and "not a usable credstore backup" in r.stderr
        assert not os.path.exists(tmp_path / "j")
        # A truncated backup is refused cleanly (LMDB would fault on the missing pages).
        whole = open(out, "rb").read()
        for cut in (4096, len(whole) - 4096):
            trunc = tmp_path / ("trunc-%d.mdb" % cut)
            trunc.write_bytes(whole[:cut])
            r = run_cli("restore", "--from", str(trunc), "--data", str(tmp_path / "t"))
            assert r.returncode == 1 and "not a usable credstore backup" in r.stderr, r
            assert not os.path.exists(tmp_path / "t")
        assert "truncated" in r.stderr
        r = run_cli("restore", "--from", str(tmp_path / "missing"), "--data", str(tmp_path / "m"))
        assert r.returncode != 0 and not os.path.exists(tmp_path / "m")
        # An empty existing dir is fine; a wrong --master-key-file undoes the restore.
        empty = tmp_path / "empty"
        empty.mkdir(mode=0o755)
        wrong = write_key(tmp_path / "wrong.key")
        r = run_cli("restore", "--from", out, "--data", str(empty), "--master-key-file", wrong)
        assert r.returncode != 0 and "does not open" in r.stderr, r.stderr
        assert os.listdir(empty) == []
        r = run_cli("restore", "--from", out, "--data", str(empty), "--master-key-file",
                    os.path.join(d.data, "master.key"))
        assert r.returncode == 0, r.stderr
        assert "opens the restored keyring" in r.stderr
        assert stat.S_IMODE(os.stat(empty).st_mode) == 0o700
    finally:
        d.close()


def test_backup_is_compacted_after_deletes(tmp_path):
    d = start(Daemon())
    try:
        body = {"type": "kubeconfig", "secret": {"plain": fixture("kubeconfig-client-cert.yaml")}}
        for i in range(300):
            create(d, "cp-%03d" % i, body)
        for i in range(250):
            assert d.delete("/api/v1/credentials/cp-%03d" % i, headers=d.auth).status_code == 204
        out = str(tmp_path / "b.mdb")
        r = run_cli("backup", "--data", d.data, "--out", out)
        assert r.returncode == 0, r.stderr
        size, full = os.path.getsize(out), os.path.getsize(os.path.join(d.data, "data.mdb"))
        assert size < full, (size, full)
        assert d.stop() == 0
        r = run_cli("restore", "--from", out, "--data", str(tmp_path / "r"))
        assert r.returncode == 0 and json.loads(r.stdout)["credentials"] == 50, r.stderr
    finally:
        d.close()


def bodies_ibm_key():
    return valid_bodies()["ibm-1"]["secret"]["plain"]


def test_no_secret_plaintext_in_backup(tmp_path):
    d = start(Daemon())
    try:
        secrets = []
        for cid, body in valid_bodies().items():
            create(d, cid, body)
            s = (body.get("secret") or body.get("apiToken") or {}).get("plain")
            if s:
                secrets.append(s)
        rx = Receiver()
        try:
            cb = add_usage(d, "ibm-1", callbackUrl=rx.url)["callbackSecret"]
        finally:
            rx.close()
        sa = json.loads(fixture("gcp-service-account.json"))
        pem = [l for l in sa["private_key"].splitlines() if l and "-----" not in l]
        azure = json.loads(fixture("azure-sdk-auth.json"))
        needles = [s.encode() for s in secrets] + [l.encode() for l in pem[1:4]]
        needles += [azure["clientSecret"].encode(), cb.encode(), bytes.fromhex(cb)]
        for s in [AWS_SECRET, azure["clientSecret"], bodies_ibm_key()]:
            needles += b64variants(s)
        out = str(tmp_path / "b.mdb")
        assert run_cli("backup", "--data", d.data, "--out", out).returncode == 0
        blob = open(out, "rb").read()
        assert b"ibm-1" in blob and b"CSC1" in blob, "the scan looks at real records"
        for n in needles:
            assert n not in blob, "secret material in the backup"
        assert open(os.path.join(d.data, "master.key"), "rb").read() not in blob
    finally:
        d.stop()
        d.close()


# --------------------------------------------------------------- rotate-key

def test_rotate_key_rewraps_and_everything_still_resolves(tmp_path):
    d = start(Daemon())
    rx = Receiver()
    try:
        bodies = valid_bodies()
        uids, material, shown = {}, {}, {}
        for cid, body in bodies.items():
            shown[cid] = create(d, cid, body)
            uids[cid] = add_usage(d, cid)["id"]
            if cid != "aws-role":  # resolving an instance role needs STS
                material[cid] = resolve(d, cid, uids[cid])
        hook = add_usage(d, "ibm-1", callbackUrl=rx.url)

        # Refused while serve holds the data dir, and nothing changes.
        keyring = read_store(d.data)["keyring"]
        r = run_cli("rotate-key", "--data", d.data)
        assert r.returncode != 0 and "stop credstore serve first" in r.stderr, r.stderr
        assert d.stop() == 0
        old = read_store(d.data)
        assert old["keyring"] == keyring and keyring_versions(keyring) == 1
        assert {sealed_version(s) for _, s in old["creds"].values() if s} == {1}

        res = rotate(d.data)
        assert res == {"keyVersion": 2, "rewrapped": {"credentials": len(bodies) - 1, "usages": 1}}
        new = read_store(d.data)
        assert keyring_versions(new["keyring"]) == 2
        assert new["keyring"][9:] != old["keyring"][9:]
        for cid, (prefix, sealed) in new["creds"].items():
            # Same header, meta and fingerprint; only the sealed part changed.
            assert prefix == old["creds"][cid][0], cid
            if cid == "aws-role":
                assert sealed == b""
            else:
                assert sealed_version(sealed) == 2 and sealed != old["creds"][cid][1], cid
        assert usage_version(new["usages"][hook["id"]]) == 2
        plain_usages = [u for u in new["usages"].values() if "callbackSecretSealed" not in u]
        assert len(plain_usages) == len(bodies)
        assert run_cli("audit-verify", "--data", d.data).returncode == 0

        # Served again: the same material, metadata and secret.encrypted.
        d.start()
        for cid, m in material.items():
            assert resolve(d, cid, uids[cid]) == m, cid
        for cid, before in shown.items():
            got = d.get("/api/v1/credentials/" + cid, headers=d.auth).json()
            assert got == before, cid
        # A Prisma-style round trip with the pre-rotation encrypted value keeps the secret.
        r = d.post("/api/v1/credentials", json=dict(shown["azure-sp"], description="x"),
                   headers=d.auth)
        assert r.status_code == 200 and r.json()["secret"] == shown["azure-sp"]["secret"]
        # The rewrapped callback secret still signs webhooks.
        create(d, "ibm-1", dict(bodies["ibm-1"], description="after rotation"))
        assert wait_for(lambda: rx.ok_calls(hook["callbackSecret"])), rx.calls
        # New writes use the new version.
        create(d, "after-1", ibm("ibm-key-created-after-rotation"))
        uid = add_usage(d, "after-1")["id"]
        assert resolve(d, "after-1", uid)["apiKey"] == "ibm-key-created-after-rotation"
        audit = d.get("/api/v1/audit?limit=1000", headers=d.auth).json()
        acts = [(e["action"], e["target"], e["result"]) for e in audit]
        assert ("keyring_rotate", "data key v2", "success") in acts
        assert ("keyring_rewrap", "keyring", "success") in acts
        assert d.stop() == 0
        assert sealed_version(read_store(d.data)["creds"]["after-1"][1]) == 2

        # Twice: everything moves to v3 and still resolves.
        res = rotate(d.data)
        assert res == {"keyVersion": 3, "rewrapped": {"credentials": len(bodies), "usages": 1}}
        third = read_store(d.data)
        assert {sealed_version(s) for _, s in third["creds"].values() if s} == {3}
        assert usage_version(third["usages"][hook["id"]]) == 3
        # Nothing left to rewrap is not an error.
        d.start()
        for cid, m in material.items():
            assert resolve(d, cid, uids[cid]) == m, cid
        assert resolve(d, "after-1", uid)["apiKey"] == "ibm-key-created-after-rotation"
        assert d.stop() == 0
        assert run_cli("audit-verify", "--data", d.data).returncode == 0
    finally:
        rx.close()
        d.stop()
        d.close()


def test_rotate_key_in_batches(tmp_path):
    """More records than one rewrap transaction holds (500): none skipped or repeated."""
    d = start(Daemon())
    try:
        n = 1001
        secrets = {"bt-%04d" % i: "ibm-key-%04d-%s" % (i, uuid.uuid4().hex[:8]) for i in range(n)}
        items = sorted(secrets.items())

        def post(chunk):
            s = requests.Session()
            for cid, sec in chunk:
                r = s.post(d.url + "/api/v1/credentials", json=dict(ibm(sec), _id=cid),
                           headers=d.auth, timeout=30)
                assert r.status_code == 201, r.text
            s.close()

        ts = [threading.Thread(target=post, args=(items[i::8],)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert d.stop() == 0
        assert len(read_store(d.data)["creds"]) == n
        assert rotate(d.data)["rewrapped"]["credentials"] == n
        assert {sealed_version(s) for _, s in read_store(d.data)["creds"].values()} == {2}
        d.start()
        for cid in ["bt-0000", "bt-0499", "bt-0500", "bt-0501", "bt-1000"]:
            uid = add_usage(d, cid)["id"]
            assert resolve(d, cid, uid)["apiKey"] == secrets[cid], cid
    finally:
        d.stop()
        d.close()


def test_rotate_key_reports_records_it_cannot_rewrap(tmp_path):
    d = start(Daemon())
    try:
        for i in range(3):
            create(d, "cr-%d" % i, ibm("ibm-key-cr-%d" % i))
        uid = add_usage(d, "cr-2")["id"]
        assert d.stop() == 0
        env = lmdb.open(d.data, max_dbs=16)
        with env.begin(write=True) as txn:
            db = env.open_db(b"credentials", txn=txn)
            v = bytearray(txn.get(b"cr-1", db=db))
            v[-1] ^= 1  # the tag no longer authenticates
            txn.put(b"cr-1", bytes(v), db=db)
            txn.put(b"cr-junk", b"not a credential record", db=db)
        env.close()
        r = run_cli("rotate-key", "--data", d.data)
        assert r.returncode == 1, r.stderr
        assert json.loads(r.stdout)["rewrapped"] == {"credentials": 2, "usages": 0}
        assert "cannot rewrap credential cr-1" in r.stderr
        assert "cannot rewrap credential cr-junk" in r.stderr
        assert "cr-0" not in r.stderr and "cr-2" not in r.stderr
        # The good records moved on and still resolve.
        env = lmdb.open(d.data, readonly=True, lock=False, max_dbs=16)
        with env.begin() as txn:
            db = env.open_db(b"credentials", txn=txn)
            assert sealed_version(cred_parts(txn.get(b"cr-0", db=db))[1]) == 2
            assert sealed_version(cred_parts(txn.get(b"cr-1", db=db))[1]) == 1
        env.close()
        d.start()
        assert resolve(d, "cr-2", uid)["apiKey"] == "ibm-key-cr-2"
    finally:
        d.stop()
        d.close()


def test_rotate_key_and_serve_exclude_each_other(tmp_path):
    d = Daemon()
    try:
        r = run_cli("rotate-key", "--data", str(tmp_path / "none"))
        assert r.returncode != 0 and "not initialised" in r.stderr
        # A rotate-key in progress (simulated by holding its lock) keeps serve out.
        fd = os.open(os.path.join(d.data, "serve.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            assert "rotate-key" in serve_fails(d.data)
            r = run_cli("rotate-key", "--data", d.data)
            assert r.returncode != 0 and "stop credstore serve first" in r.stderr
        finally:
            os.close(fd)
        assert rotate(d.data)["keyVersion"] == 2
        # Two servers may share the dir (shared lock); rotate-key is refused meanwhile.
        start(d)
        d2 = start(Daemon(data_dir=d.data), d.admin)
        try:
            r = run_cli("rotate-key", "--data", d.data)
            assert r.returncode != 0 and "stop credstore serve first" in r.stderr
        finally:
            assert d2.stop() == 0
            d2.close()
        assert d.stop() == 0
        assert rotate(d.data)["keyVersion"] == 3
    finally:
        d.stop()
        d.close()


# -------------------------------------------------------------- admin-key

def admin_key(data, *args, env=None):
    """Run admin-key; its stdout must be exactly one JSON line with the new key."""
    r = run_cli("admin-key", "--data", data, *args, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and r.stdout == lines[0] + "\n", r.stdout
    k = json.loads(lines[0])
    assert set(k) == {"id", "secret", "role"} and k["role"] == "admin", k
    assert k["secret"] not in r.stderr
    return k


def admin_key_fails(data, *args, env=None):
    r = run_cli("admin-key", "--data", data, *args, env=env)
    assert r.returncode != 0 and r.stdout == "", (r.returncode, r.stdout)
    return r.stderr


def as_key(k):
    return {"Authorization": basic(k["id"], k["secret"])}


def test_admin_key_recovers_a_store_whose_admins_all_expired(tmp_path):
    d = start(Daemon())
    try:
        until = int(time.time()) + 3
        exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))
        r = d.post("/api/v1/access_keys", json={"name": "temp", "role": "admin", "expiresAt": exp},
                   headers=d.auth)
        assert r.status_code == 201, r.text
        temp = r.json()
        # While temp lives, the bootstrap key may go; then temp expires: no admin is left.
        assert d.delete("/api/v1/access_keys/" + d.admin["id"], headers=d.auth).status_code == 204
        time.sleep(max(0, until - time.time()) + 1.1)
        assert d.get("/api/v1/access_keys", headers=as_key(temp)).status_code == 401
        # Minted while serve runs, it works at once: login, list, delete the dead key.
        k = admin_key(d.data, "--name", "break-glass")
        r = d.post("/api/v1/login", json={"username": k["id"], "password": k["secret"]})
        assert r.status_code == 200, r.text
        tok = {"x-redlock-auth": r.json()["token"]}
        keys = {x["id"]: x for x in d.get("/api/v1/access_keys", headers=tok).json()}
        assert keys[k["id"]]["name"] == "break-glass" and keys[k["id"]]["role"] == "admin"
        assert "scope" not in keys[k["id"]] and "expiresAt" not in keys[k["id"]]
        assert "owner" not in keys[k["id"]]
        assert d.delete("/api/v1/access_keys/" + temp["id"], headers=tok).status_code == 204
        # It is the only live unscoped admin, so the guard keeps it.
        r = d.delete("/api/v1/access_keys/" + k["id"], headers=tok)
        assert r.status_code == 409 and r.json()["code"] == "last_admin_key"
        # Audited, with no secret; the chain still verifies.
        audit = d.get("/api/v1/audit?limit=1000", headers=tok).json()
        rec = [e for e in audit if e["action"] == "access_key_recover"]
        assert len(rec) == 1 and rec[0]["target"] == k["id"] and rec[0]["actor"] == "cli"
        assert rec[0]["result"] == "success" and k["secret"] not in json.dumps(audit)
        seqs = [e["seq"] for e in audit]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        # The default name, and a second key does not disturb the first.
        k2 = admin_key(d.data)
        names = {x["id"]: x["name"] for x in d.get("/api/v1/access_keys", headers=tok).json()}
        assert names[k2["id"]] == "recovery-admin" and k["id"] in names
        assert d.stop() == 0
        r = run_cli("audit-verify", "--data", d.data)
        assert r.returncode == 0 and json.loads(r.stdout)["intact"] is True, r.stdout
    finally:
        d.stop()
        d.close()


def test_admin_key_refusals(tmp_path):
    r = run_cli("admin-key")
    assert r.returncode == 2 and r.stdout == "" and "--data" in r.stderr
    r = run_cli("--help")
    assert r.returncode == 0 and "admin-key --data DIR" in r.stdout and "--name NAME" in r.stdout
    assert "not initialised" in admin_key_fails(str(tmp_path / "none"))
    os.mkdir(tmp_path / "empty")
    assert "not initialised" in admin_key_fails(str(tmp_path / "empty"))
    assert not os.listdir(tmp_path / "empty")
    d = Daemon()
    try:
        assert "--name" in admin_key_fails(d.data, "--name", "n" * 129)
        # A wrong key file, a passphrase for a key-file store.
        wrong = write_key(tmp_path / "wrong.key")
        assert "master key does not open" in admin_key_fails(d.data, "--master-key-file", wrong)
        err = admin_key_fails(d.data, "--passphrase-env", PASS_VAR, env={PASS_VAR: PASSPHRASE})
        assert "master key file, not a passphrase" in err, err
        # A rotate-key in progress (its lock held) keeps admin-key out.
        fd = os.open(os.path.join(d.data, "serve.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            assert "rotate-key" in admin_key_fails(d.data)
        finally:
            os.close(fd)
        # Nothing was minted by any of these: only the bootstrap key is there.
        start(d)
        ids = [x["id"] for x in d.get("/api/v1/access_keys", headers=d.auth).json()]
        assert ids == [d.admin["id"]]
    finally:
        d.stop()
        d.close()


def test_admin_key_with_a_passphrase_sealed_store(tmp_path):
    env = {PASS_VAR: PASSPHRASE}
    d = start(Daemon(init_args=["--passphrase-env", PASS_VAR],
                     serve_args=["--passphrase-env", PASS_VAR], env=env))
    try:
        assert "--passphrase-env" in admin_key_fails(d.data)
        err = admin_key_fails(d.data, "--passphrase-env", PASS_VAR,
                              env={PASS_VAR: "wrong passphrase"})
        assert "master key does not open" in err, err
        k = admin_key(d.data, "--passphrase-env", PASS_VAR, env=env)
        ids = [x["id"] for x in d.get("/api/v1/access_keys", headers=as_key(k)).json()]
        assert sorted(ids) == sorted([d.admin["id"], k["id"]])
    finally:
        d.stop()
        d.close()


# -------------------------------------------------------------- master keys

def test_passphrase_end_to_end(tmp_path):
    env = {PASS_VAR: PASSPHRASE}
    d = Daemon(init_args=["--passphrase-env", PASS_VAR], serve_args=["--passphrase-env", PASS_VAR],
               env=env)
    try:
        assert not os.path.exists(os.path.join(d.data, "master.key"))
        start(d)
        create(d, "pp-1", ibm("ibm-key-under-a-passphrase"))
        uid = add_usage(d, "pp-1")["id"]
        assert resolve(d, "pp-1", uid)["apiKey"] == "ibm-key-under-a-passphrase"
        assert d.stop() == 0

        assert "--passphrase-env" in serve_fails(d.data)
        err = serve_fails(d.data, "--passphrase-env", PASS_VAR, env={PASS_VAR: "wrong passphrase"})
        assert "master key does not open" in err, err
        err = serve_fails(d.data, "--passphrase-env", PASS_VAR, env={PASS_VAR: ""})
        assert "empty or unset" in err, err
        # rotate-key needs the passphrase too, and a wrong one changes nothing.
        keyring = read_store(d.data)["keyring"]
        r = run_cli("rotate-key", "--data", d.data, "--passphrase-env", PASS_VAR,
                    env={PASS_VAR: "wrong passphrase"})
        assert r.returncode != 0 and "master key does not open" in r.stderr
        assert read_store(d.data)["keyring"] == keyring
        res = rotate(d.data, "--passphrase-env", PASS_VAR, env=env)
        assert res == {"keyVersion": 2, "rewrapped": {"credentials": 1, "usages": 0}}
        err = serve_fails(d.data, "--passphrase-env", PASS_VAR, env={PASS_VAR: "wrong passphrase"})
        assert "master key does not open" in err, err
        d.start()
        assert resolve(d, "pp-1", uid)["apiKey"] == "ibm-key-under-a-passphrase"
        out = str(tmp_path / "b.mdb")
        assert run_cli("backup", "--data", d.data, "--out", out).returncode == 0
        assert d.stop() == 0

        # The backup needs the same passphrase: restore says so and checks it when given.
        r = run_cli("restore", "--from", out, "--data", str(tmp_path / "n1"))
        assert r.returncode == 0 and "--passphrase-env" in r.stderr, r.stderr
        r = run_cli("restore", "--from", out, "--data", str(tmp_path / "n2"),
                    "--passphrase-env", PASS_VAR, env={PASS_VAR: "wrong passphrase"})
        assert r.returncode != 0 and not os.path.exists(tmp_path / "n2")
        r = run_cli("restore", "--from", out, "--data", str(tmp_path / "n2"),
                    "--passphrase-env", PASS_VAR, env=env)
        assert r.returncode == 0, r.stderr
        rd = start(Daemon(data_dir=str(tmp_path / "n2"), serve_args=["--passphrase-env", PASS_VAR],
                          env=env), d.admin)
        try:
            assert resolve(rd, "pp-1", uid)["apiKey"] == "ibm-key-under-a-passphrase"
        finally:
            assert rd.stop() == 0
            rd.close()
    finally:
        d.stop()
        d.close()


def test_key_file_outside_the_data_dir(tmp_path):
    key = write_key(tmp_path / "master.key")
    wrong = write_key(tmp_path / "wrong.key")
    d = Daemon(init_args=["--master-key-file", key], serve_args=["--master-key-file", key])
    try:
        assert not os.path.exists(os.path.join(d.data, "master.key"))
        start(d)
        create(d, "kf-1", ibm("ibm-key-under-a-key-file"))
        uid = add_usage(d, "kf-1")["id"]
        assert resolve(d, "kf-1", uid)["apiKey"] == "ibm-key-under-a-key-file"
        assert d.stop() == 0

        err = serve_fails(d.data, "--master-key-file", wrong)
        assert "master key does not open" in err, err
        err = serve_fails(d.data)  # falls back to DIR/master.key, which is not there
        assert "cannot read master key file" in err, err
        err = serve_fails(d.data, "--passphrase-env", PASS_VAR, env={PASS_VAR: PASSPHRASE})
        assert "master key file, not a passphrase" in err, err
        r = run_cli("rotate-key", "--data", d.data, "--master-key-file", wrong)
        assert r.returncode != 0 and "master key does not open" in r.stderr
        assert rotate(d.data, "--master-key-file", key)["keyVersion"] == 2
        d.start()
        assert resolve(d, "kf-1", uid)["apiKey"] == "ibm-key-under-a-key-file"
        assert d.stop() == 0
        assert {sealed_version(s) for _, s in read_store(d.data)["creds"].values()} == {2}
    finally:
        d.stop()
        d.close()
