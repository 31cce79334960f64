"""The service's files: tokens hashed at rest, an append-only audit log, recovery of
model folders left half-written by a killed adaptation."""

from __future__ import annotations

import hashlib
import sqlite3
import threading

import pytest

from metamed.errors import MetamedValueError
from metamed.outputs import STAGING_PREFIX
from metamed.serve import ModelStore
from metamed.serve.audit import AuditLog
from metamed.serve.tokens import TokenStore


def test_tokens_are_stored_only_as_their_hash(tmp_path):
    store = TokenStore(tmp_path / "tokens.sqlite")
    secret = store.create("ehr", ["predict"])
    raw = (tmp_path / "tokens.sqlite").read_bytes()
    assert secret.encode() not in raw
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in raw
    assert (tmp_path / "tokens.sqlite").stat().st_mode & 0o077 == 0
    token = store.verify(secret)
    assert token.can("predict") and not token.can("adapt")
    assert store.verify(secret + "x") is None and store.verify("") is None
    store.revoke("ehr")
    assert store.verify(secret) is None
    with pytest.raises(
        MetamedValueError, match="Unknown permission 'predcit'. Did you mean 'predict'"
    ):
        store.create("b", ["predcit"])
    with pytest.raises(MetamedValueError, match="exists already"):
        store.create("ehr", ["predict"])


def test_audit_log_is_append_only_and_group_commits_concurrent_calls(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    threads = [
        threading.Thread(
            target=log.append, args=("finished", "predict", f"r{i}"), kwargs={"status": 200}
        )
        for i in range(40)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.append("started", "adapt", "open-one", model="m")
    assert log.recover() == ["open-one"]
    assert log.recover() == []  # already closed by its interrupted entry
    log.close()
    entries = AuditLog(tmp_path / "audit.sqlite").entries()
    assert len(entries) == 42 and [e["seq"] for e in entries] == list(range(1, 43))
    assert entries[-1]["event"] == "interrupted" and entries[-1]["model"] == "m"
    conn = sqlite3.connect(tmp_path / "audit.sqlite")
    for statement in ("UPDATE audit SET status = 500", "DELETE FROM audit"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)


def test_recover_removes_only_folders_a_killed_adaptation_left(tmp_path):
    models = tmp_path / "models"
    killed = models / "meta-abc" / f"{STAGING_PREFIX}x1"
    (killed / "new").mkdir(parents=True)
    (killed / "lock").touch()  # nobody holds it: its run is dead
    (killed / "new" / "weights.safetensors").write_bytes(b"half")
    someone = models / "notes"
    someone.mkdir()
    (someone / "readme.txt").write_text("mine")
    assert ModelStore(models).recover() == ["meta-abc"]
    assert sorted(p.name for p in models.iterdir()) == ["notes"]
    assert ModelStore(models).ids() == []


def test_a_served_model_costs_one_manifest_stat_per_request_and_reloads_when_changed(
    deploy_dir, monkeypatch
):
    import os
    from pathlib import Path

    from metamed.artifacts import MANIFEST
    from metamed.errors import UnknownNameError

    store = ModelStore(deploy_dir / "models")
    first = store.get("meta")
    manifest = deploy_dir / "models" / "meta" / MANIFEST
    stats = []
    real_stat = Path.stat

    def counted(self, *args, **kwargs):
        if self.name == MANIFEST:
            stats.append(self)
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", counted)
    for _ in range(4):
        assert store.get("meta") is first  # answered from memory
    assert len(stats) == 4  # one stat each (two each before: an existence check, then the stamp)
    assert store.loaded("meta") is first

    before = manifest.stat().st_mtime_ns
    os.utime(manifest, ns=(before + 10**9, before + 10**9))  # a rewritten manifest
    assert store.loaded("meta") is None
    again = store.get("meta")
    assert again is not first and store.get("meta") is again
    with pytest.raises(UnknownNameError, match="Unknown model 'nosuch'.*Known models: meta"):
        store.get("nosuch")
