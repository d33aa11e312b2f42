"""File repository sidecars (issue 16 item 18): named so that no tool takes them for objects, and the
sidecars of a repository written by the previous version (format 1, under the objects' own names) still
read — its checksums and retention hold, and ledgerdr continues it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledgerdr.errors import RetentionViolation
from ledgerdr.stores import FileStore
from ledgerdr.stores.file import META_DIR, SIDECAR_SUFFIX

DATA = Path(__file__).parent / "data" / "sidecar-v1"
LEDGERDR = Path(sys.executable).with_name("ledgerdr")


def _meta_files(root: Path) -> list[Path]:
    return [p for p in (root / META_DIR / "objects").rglob("*") if p.is_file()]


def test_sidecars_cannot_be_mistaken_for_objects(tmp_path):
    store = FileStore(tmp_path / "repo")
    keys = ["exports/t/a/E.started.manifest", "exports/t/a/2026/01/01/00/S.0-4.ion", "a", "a.meta.json/b"]
    for key in keys:
        store.put(key, key.encode())
    sidecars = _meta_files(tmp_path / "repo")
    assert len(sidecars) == len(keys) and all(p.name.endswith(SIDECAR_SUFFIX) for p in sidecars)
    found = {p.name for p in (tmp_path / "repo").rglob("*") if p.name.endswith((".manifest", ".ion"))}
    assert found == {"E.started.manifest", "S.0-4.ion"}  # what `find -name '*.manifest'` sees: the objects only
    for key in keys:
        assert store.head(key).sha256 == hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def old_repository(tmp_path):
    shutil.copytree(DATA, tmp_path / "old")
    return tmp_path / "old"


def test_a_repository_with_format_1_sidecars_reads_its_checksums_and_retention(old_repository):
    root = old_repository / "repo-primary"
    store = FileStore(root)
    objects = list(store.list())
    assert len(objects) == 4
    for info in objects:
        head = store.head(info.key)
        assert head.sha256 == hashlib.sha256((root / info.key).read_bytes()).hexdigest()
        assert head.retain_until is not None and head.retain_until > datetime(2100, 1, 1, tzinfo=UTC)
    with pytest.raises(RetentionViolation):
        store.delete(objects[0].key)


def test_ledgerdr_continues_a_repository_written_by_the_previous_version(old_repository):
    (old_repository / "ledgerdr.toml").write_text(
        '[backup]\nretention_days = 1\n[repositories.primary]\nurl = "repo-primary"\n'
        '[repositories.secondary]\nurl = "repo-secondary"\n')
    env = {**os.environ, "PATH": f"{LEDGERDR.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for line in ["ledgerdr verify repo-primary", "ledgerdr ledger load ledger.db --transactions 5",
                 "ledgerdr backup --once", "ledgerdr replicate", "ledgerdr verify repo-secondary",
                 "ledgerdr status --max-rpo 30d"]:
        done = subprocess.run(["bash", "-c", line], cwd=old_repository, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"{line}: {done.stdout}{done.stderr}"
    new = [p for p in _meta_files(old_repository / "repo-primary") if p.name.endswith(SIDECAR_SUFFIX)]
    assert len(new) >= 4  # the new window's objects and record, in the new format beside the old ones
