"""Issue 16's adversarial scenarios for the signals an operator watches, end to end through the CLI: a damaged
or lost replica copy, a window record deleted or copied under another name, empty windows on replicas, a backup
killed mid-export, a flipped byte `verify` must catch, and promotion fencing from both sides. Each asserts the
exit code and that the message names the object or record."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from flows import T0, backed_up_ledger
from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.cli import cli
from ledgerdr.repository import WINDOWS, read_windows
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores.faults import flip_byte

MINUTE = timedelta(minutes=1)


def _config(root: Path, ledger: Path) -> Path:
    path = root / "ledgerdr.toml"
    path.write_text(f'[source]\nkind = "embedded"\npath = "{ledger}"\n\n[backup]\ninterval = "1m"\nsettle = "1s"\n\n'
                    f'[repositories.primary]\nurl = "{root / "primary"}"\nregion = "a"\n\n'
                    f'[repositories.secondary]\nurl = "{root / "secondary"}"\nregion = "b"\n')
    return path


def _run(config: Path, *args: str):
    result = CliRunner().invoke(cli, [args[0], "--config", str(config), *args[1:]])
    return result.exit_code, result.output


@pytest.fixture
def repo(tmp_path):
    """Three windows with blocks, then four idle (empty) windows, all backed up; the config's two repositories."""
    ledger, primary = backed_up_ledger(tmp_path, minutes=3)
    source = EmbeddedSource(ledger)
    with freeze_time(T0 + 7 * MINUTE + timedelta(seconds=6)):
        assert len(run_backup(source, primary, BackupPolicy(interval=MINUTE)).recorded) == 4
    source.close()
    return tmp_path, _config(tmp_path, ledger), primary


def _status(config: Path) -> tuple[int, str]:
    return _run(config, "status", "--max-rpo", "3650d")


def _section(output: str, name: str) -> str:
    return output.split(f"[{name}]", 1)[1].split("\n[", 1)[0]


def test_idle_windows_verify_on_the_replica_and_are_not_announced_again(repo):
    root, config, primary = repo
    code, out = _run(config, "replicate")
    assert code == 0 and "7 new windows verified" in out
    source = EmbeddedSource(root / "ledger.db")
    with freeze_time(T0 + 10 * MINUTE + timedelta(seconds=6)):  # three more idle windows
        assert len(run_backup(source, primary, BackupPolicy(interval=MINUTE)).recorded) == 3
    source.close()
    assert "3 new windows verified" in _run(config, "replicate")[1]
    code, out = _run(config, "replicate")
    assert code == 0 and "0 new windows verified (10 verified before" in out
    code, out = _status(config)
    assert code == 0
    assert "10 recorded, 10 verified, 0 pending" in _section(out, "secondary")
    rpo = [line for line in out.splitlines() if "RPO now" in line]
    assert len(rpo) == 2 and rpo[0] == rpo[1]  # a replica in sync has the primary's RPO


@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_damaged_replica_copy_is_named_and_never_verified(repo, damage):
    root, config, primary = repo
    assert _run(config, "replicate")[0] == 0
    windows = read_windows(primary).windows
    key = next(o.key for o in windows[1].objects if o.key.endswith(".ion"))
    if damage == "flip":
        from ledgerdr.stores import FileStore
        flip_byte(FileStore(root / "secondary"), key, -30)
    else:
        (root / "secondary" / key).unlink()
    was = "damaged" if damage == "flip" else "missing"
    code, out = _status(config)
    assert code == 4 and f"DAMAGED copy ({was}): {key}" in out
    assert "1 verified" in _section(out, "secondary")  # counted only up to the damaged window
    code, out = _run(config, "replicate", "--verify-only")
    assert code == 4 and key in out and f"replica_{was}" in out
    code, out = _run(config, "replicate")
    if damage == "delete":  # copied again from the primary, and said so
        assert code == 0 and f"repaired {key}: the copy was missing" in out
        assert _status(config)[0] == 0 and _run(config, "replicate", "--verify-only")[0] == 0
    else:  # write-once storage keeps the altered bytes until their retention ends: named, never verified
        assert code == 4 and key in out and "cannot be repaired" in out
        assert _status(config)[0] == 4


def test_deleted_window_record_is_a_gap_and_status_stops_there(repo):
    root, config, primary = repo
    windows = read_windows(primary).windows
    record = root / "primary" / WINDOWS / windows[2].key_name
    record.chmod(0o644)
    record.unlink()
    code, out = _status(config)
    assert code == 4
    section = _section(out, "primary")
    assert f"GAP: {WINDOWS}{windows[3].key_name}" in section
    assert f"newest verified block: {windows[1].last_seq} " in section  # not the blocks past the gap
    code, out = _run(config, "status")  # without --max-rpo, too
    assert code == 4


def test_window_record_copied_under_another_name_is_an_overlap(repo):
    root, config, primary = repo
    windows = read_windows(primary).windows
    folder = root / "primary" / WINDOWS
    copy = folder / "20260105T100130Z.json"
    shutil.copyfile(folder / windows[1].key_name, copy)
    code, out = _status(config)
    assert code == 4
    section = _section(out, "primary")
    assert f"OVERLAP: {WINDOWS}20260105T100130Z.json" in section and "GAP" not in section
    assert f"newest verified block: {windows[0].last_seq} " in section
