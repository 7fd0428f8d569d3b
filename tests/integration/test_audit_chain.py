"""Review issue 11, finding 13: the audit chain is keyed BLAKE2b under a key
derived from the master key, so someone who can write the store but has no
master key cannot rewrite history and recompute the chain. audit-verify
therefore needs the key, and says so when it is missing or wrong."""
import hashlib
import json
import os
import shutil

import lmdb
import pytest

from harness import Daemon, run_cli
from test_auth import basic
from test_credentials import valid_bodies

PASS_VAR = "CS_TEST_AUDIT_PASSPHRASE"


def populate(d, n=6):
    auth = {"Authorization": basic(d.admin["id"], d.admin["secret"])}
    for i in range(n):
        r = d.post("/api/v1/credentials", json=dict(valid_bodies()["ibm-1"], _id="t%d" % i),
                   headers=auth)
        assert r.status_code == 201, r.text
    return auth


def store_with_entries(tmp_path, init_args=(), serve_args=(), env=None):
    d = Daemon(init_args=list(init_args), serve_args=list(serve_args), env=env).start()
    populate(d)
    assert d.stop() == 0
    return d


def verify(data, *args, env=None):
    return run_cli("audit-verify", "--data", str(data), *args, env=env)


def key_file(path, seed):
    path.write_text(hashlib.sha256(seed).hexdigest() + "\n")
    path.chmod(0o600)
    return str(path)


# --------------------------------------------------------- what a writer sees

def chain(data):
    """[(seq, hash, entry bytes)] and the head record, straight from LMDB."""
    env = lmdb.open(str(data), readonly=True, lock=False, max_dbs=16)
    audit, meta = env.open_db(b"audit"), env.open_db(b"meta")
    with env.begin() as txn:
        rows = [(int.from_bytes(k, "big"), v[:32], v[32:]) for k, v in txn.cursor(db=audit)]
        head = txn.get(b"audit_head", db=meta)
    env.close()
    return rows, head


def unkeyed_chain_ok(rows, head, start=1):
    """The check of the old, unkeyed chain (schema 1), from entry @p start on:
    what a writer without the key can satisfy."""
    prev = bytes(32) if start == 1 else rows[start - 2][1]
    for seq, h, entry in rows[start - 1:]:
        if json.loads(entry)["prevHash"] != prev.hex() or \
                hashlib.blake2b(prev + entry, digest_size=32).digest() != h:
            return False
        prev = h
    return head == rows[-1][0].to_bytes(8, "big") + prev


def rewrite_unkeyed(data, start, edit):
    """Edit entry @p start and recompute every link from there with unkeyed
    BLAKE2b, prevHash fields and the head record included: a complete
    rewrite by someone who has the store but not the key."""
    env = lmdb.open(str(data), max_dbs=16)
    audit, meta = env.open_db(b"audit"), env.open_db(b"meta")
    with env.begin(write=True) as txn:
        rows = [(int.from_bytes(k, "big"), v) for k, v in txn.cursor(db=audit)]
        prev = bytes(32) if start == 1 else rows[start - 2][1][:32]
        for seq, v in rows[start - 1:]:
            entry = v[32:]
            old_prev = json.loads(entry)["prevHash"].encode()
            entry = entry.replace(b'"prevHash":"%s"' % old_prev, b'"prevHash":"%s"' % prev.hex().encode())
            if seq == start:
                entry = edit(entry)
            h = hashlib.blake2b(prev + entry, digest_size=32).digest()
            txn.put(seq.to_bytes(8, "big"), h + entry, db=audit)
            prev = h
        txn.put(b"audit_head", rows[-1][0].to_bytes(8, "big") + prev, db=meta)
    env.close()


def test_a_writer_without_the_key_cannot_recompute_the_chain(tmp_path):
    d = store_with_entries(tmp_path)
    try:
        rows, head = chain(d.data)
        assert len(rows) >= 6
        assert verify(d.data).returncode == 0
        assert not unkeyed_chain_ok(rows, head), "the stored chain must not be the unkeyed one"
        for start in (1, 3, len(rows)):
            copy = tmp_path / ("rewrite-%d" % start)
            shutil.copytree(d.data, copy)
            target = json.loads(rows[start - 1][2])["target"].encode()
            rewrite_unkeyed(copy, start, lambda e: e.replace(b'"%s"' % target, b'"forged"'))
            new_rows, new_head = chain(copy)
            assert b'"forged"' in new_rows[start - 1][2]
            assert unkeyed_chain_ok(new_rows, new_head, start), "a complete unkeyed rewrite"
            assert new_rows[:start - 1] == rows[:start - 1]
            r = verify(copy)
            assert r.returncode == 1, (start, r.stdout)
            assert "broken at entry %d" % start in r.stderr, r.stderr
            # Recomputing without changing anything is detected just the same.
            copy2 = tmp_path / ("recompute-%d" % start)
            shutil.copytree(d.data, copy2)
            rewrite_unkeyed(copy2, start, lambda e: e)
            assert "broken at entry %d" % start in verify(copy2).stderr
        assert verify(d.data).returncode == 0, "the original is untouched"
    finally:
        d.close()


def test_a_chain_from_another_store_does_not_verify(tmp_path):
    a = store_with_entries(tmp_path)
    b = store_with_entries(tmp_path)
    try:
        assert verify(b.data).returncode == 0
        copy = tmp_path / "a-with-b-chain"
        shutil.copytree(a.data, copy)
        rows, head = chain(b.data)
        env = lmdb.open(str(copy), max_dbs=16)
        audit, meta = env.open_db(b"audit"), env.open_db(b"meta")
        with env.begin(write=True) as txn:
            txn.drop(audit, delete=False)
            for seq, h, entry in rows:
                txn.put(seq.to_bytes(8, "big"), h + entry, db=audit)
            txn.put(b"audit_head", head, db=meta)
        env.close()
        r = verify(copy)
        assert r.returncode == 1 and "broken at entry 1" in r.stderr, r.stderr
    finally:
        a.close()
        b.close()


# ------------------------------------------------------- the key options

def test_audit_verify_with_a_key_file(tmp_path):
    mk = key_file(tmp_path / "mk.hex", b"right")
    d = store_with_entries(tmp_path, ["--master-key-file", mk], ["--master-key-file", mk])
    try:
        assert not os.path.exists(os.path.join(d.data, "master.key"))
        r = verify(d.data, "--master-key-file", mk)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"entries": len(chain(d.data)[0]), "intact": True}
        r = verify(d.data, env={"CREDSTORE_MASTER_KEY_FILE": mk})
        assert r.returncode == 0, r.stderr
        # The wrong key: said so, not "broken".
        r = verify(d.data, "--master-key-file", key_file(tmp_path / "other.hex", b"wrong"))
        assert r.returncode == 1 and r.stdout == ""
        assert "wrong master key" in r.stderr and "broken" not in r.stderr, r.stderr
        # No key at all: which options to give.
        r = verify(d.data)
        assert r.returncode == 1 and r.stdout == ""
        assert "--master-key-file" in r.stderr and "--passphrase-env" in r.stderr, r.stderr
        assert "keyed" in r.stderr and "broken" not in r.stderr, r.stderr
        # Not a key file; a missing file; both options.
        junk = tmp_path / "junk"
        junk.write_text("short")
        r = verify(d.data, "--master-key-file", str(junk))
        assert r.returncode == 1 and "32 bytes" in r.stderr, r.stderr
        r = verify(d.data, "--master-key-file", str(tmp_path / "missing"))
        assert r.returncode == 1 and "cannot read master key file" in r.stderr, r.stderr
        r = verify(d.data, "--master-key-file", mk, "--passphrase-env", PASS_VAR,
                   env={PASS_VAR: "x"})
        assert r.returncode == 1 and "not both" in r.stderr, r.stderr
    finally:
        d.close()


def test_help_and_readme_name_the_key_options():
    r = run_cli("--help")
    want = "audit-verify --data DIR [--master-key-file F | --passphrase-env VAR]"
    assert r.returncode == 0 and want in r.stdout, r.stdout
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    assert "credstore " + want in readme


def test_audit_verify_with_a_passphrase(tmp_path):
    env = {PASS_VAR: "correct horse battery staple"}
    d = store_with_entries(tmp_path, ["--passphrase-env", PASS_VAR], ["--passphrase-env", PASS_VAR],
                           env=env)
    try:
        r = verify(d.data, "--passphrase-env", PASS_VAR, env=env)
        assert r.returncode == 0, r.stderr
        r = verify(d.data, "--passphrase-env", PASS_VAR, env={PASS_VAR: "wrong"})
        assert r.returncode == 1 and "wrong master key" in r.stderr, r.stderr
        r = verify(d.data)
        assert r.returncode == 1 and "--passphrase-env" in r.stderr, r.stderr
    finally:
        d.close()


def test_audit_verify_with_the_development_key(tmp_path):
    d = store_with_entries(tmp_path)
    try:
        assert verify(d.data).returncode == 0
        os.rename(os.path.join(d.data, "master.key"), str(tmp_path / "moved.key"))
        r = verify(d.data)
        assert r.returncode == 1 and "master.key" in r.stderr and "keyed" in r.stderr, r.stderr
        r = verify(d.data, "--master-key-file", str(tmp_path / "moved.key"))
        assert r.returncode == 0, r.stderr
    finally:
        d.close()


def test_schema_1_stores_are_refused(tmp_path):
    d = store_with_entries(tmp_path)
    try:
        env = lmdb.open(d.data, max_dbs=16)
        with env.begin(write=True) as txn:
            meta = env.open_db(b"meta", txn=txn)
            assert txn.get(b"schema", db=meta) == (2).to_bytes(4, "big")
            txn.put(b"schema", (1).to_bytes(4, "big"), db=meta)
        env.close()
        r = verify(d.data)
        assert r.returncode == 1
        assert "schema version 1" in r.stderr and "pre-release" in r.stderr, r.stderr
        r = run_cli("serve", "--data", d.data, "--listen", "127.0.0.1:0")
        assert r.returncode != 0 and "schema version 1" in r.stderr, r.stderr
    finally:
        d.close()
