"""The configuration schema (issue 16 items 12 and 17): every key typed, unknown keys refused, every problem
reported at once naming key and value; `ledgerdr init`'s file is the schema's defaults; a repository URL
that cannot be a repository is refused by every command."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from ledgerdr.config import BACKUP, DEFAULT_CONFIG, REPOSITORY, SOURCE, parse_config
from ledgerdr.errors import ConfigError
from ledgerdr.journal.codecs import ExportFormat

LEDGERDR = Path(sys.executable).with_name("ledgerdr")


def _problems(raw: dict, base: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base=base)
    return str(caught.value)


def test_init_defaults_are_the_schema_and_parse(tmp_path):
    raw = tomllib.loads(DEFAULT_CONFIG)
    config = parse_config(raw, base=tmp_path)
    assert config.backup.interval == timedelta(hours=1) and config.backup.format is ExportFormat.ION_BINARY
    assert config.backup.retention_days == 30 and config.backup.merge_due_windows is False
    assert [r.name for r in config.repositories] == ["primary", "secondary"]
    for setting in (*SOURCE, *BACKUP, *REPOSITORY):  # each key is written, commented out when optional
        assert f"\n{setting.key} = " in DEFAULT_CONFIG or f"\n# {setting.key} = " in DEFAULT_CONFIG, setting.key
    examples = {table: {s.key: s.example for s in schema if s.example is not None}
                for table, schema in (("source", SOURCE), ("repository", REPOSITORY))}
    assert all(f"\n# {k} = " in DEFAULT_CONFIG for table in examples.values() for k in table)
    parse_config({"source": {"kind": "qldb", "ledger": "prod", **examples["source"]},
                  "repositories": {"primary": {"url": "s3://bucket/dr/", **examples["repository"]}}},
                 base=tmp_path)  # the values written commented out are valid too


def test_wrong_types_and_unknown_keys_are_all_reported_at_once(tmp_path):
    raw = {"backup": {"merge_due_windows": "no", "retention_days": True, "interval": True, "settle": [5],
                      "format": 3, "colour": "blue"},
           "source": {"kind": "sqlite", "path": 7},
           "repositories": {"primary": {"url": "p", "require_object_lock": "yes", "region": 1, "sse ": "x"}},
           "extra": {}}
    text = _problems(raw, tmp_path)
    for expected in ['backup.merge_due_windows: "no" must be true or false',
                     "backup.retention_days: true must be a whole number",
                     "backup.interval: true is not a duration", "backup.settle: [5] is not a duration",
                     "backup.format:", "backup.colour: unknown setting",
                     'source.kind: "sqlite" must be "embedded" or "qldb"', "source.path: 7 must be a string",
                     'repositories.primary.require_object_lock: "yes" must be true or false',
                     "repositories.primary.region: 1 must be a string", "repositories.primary.sse : unknown setting",
                     "[extra]: unknown section"]:
        assert expected in text, f"{expected!r} missing from:\n{text}"


def test_negative_retention_and_fractional_interval_are_refused(tmp_path):
    text = _problems({"backup": {"retention_days": -1, "interval": "1500ms"}, "repositories": {"p": {"url": "p"}}},
                     tmp_path)
    assert "backup.retention_days: -1 must be a whole number ≥ 0" in text and "backup.interval:" in text


def test_qldb_source_needs_its_settings(tmp_path):
    text = _problems({"source": {"kind": "qldb"}, "repositories": {"p": {"url": "p"}}}, tmp_path)
    assert all(f"source.{key}: required" in text for key in ("ledger", "region", "role_arn"))


@pytest.mark.parametrize("url,why", [("/", "root of the file system"), ("file:///", "root of the file system"),
                                     ("afile", "is a file"), ("afile/sub", "cannot be created"),
                                     ("busy", "is not empty and is not a ledgerdr repository")])
def test_a_url_that_cannot_be_a_repository_is_refused(tmp_path, url, why):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    text = _problems({"repositories": {"primary": {"url": url}}}, tmp_path)
    assert f"repositories.primary.url: \"{url}\"" in text and why in text, text


def test_an_empty_folder_a_repository_and_a_raw_qldb_export_are_accepted(tmp_path):
    for name, entry in [("empty", None), ("repo", "_ledgerdr"), ("raw", "AbCd.started.manifest"), ("new/deep", None)]:
        folder = tmp_path / name
        if entry:
            folder.mkdir()
            (folder / entry).write_text("{}") if entry.endswith("manifest") else (folder / entry).mkdir()
        elif name == "empty":
            folder.mkdir()
        parse_config({"repositories": {"primary": {"url": name}}}, base=tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_uncreatable_repository_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert "is not writable" in _problems({"repositories": {"primary": {"url": "locked/repo"}}}, tmp_path)


@pytest.mark.parametrize("command", [["check"], ["backup", "--once"], ["status"], ["replicate"], ["compact"]])
def test_every_command_refuses_the_root_as_a_repository_and_writes_nothing(tmp_path, command):
    """Issue 16 item 12: `check` passed `url = "/"` and `backup` wrote exports/, _ledgerdr/ and .ledgerdr-meta/
    into the root of the file system."""
    (tmp_path / "ledgerdr.toml").write_text('[repositories.primary]\nurl = "/"\n')
    before = sorted(os.listdir("/"))
    done = subprocess.run([LEDGERDR, *command], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert 'repositories.primary.url: "/": / is the root of the file system' in done.stderr
    assert sorted(os.listdir("/")) == before
