"""Issue 16's adversarial scenarios for the signals an operator watches, end to end through the CLI: a damaged
or lost replica copy, a window record deleted or copied under another name, empty windows on replicas, a backup
killed mid-export, a flipped byte `verify` must catch, and promotion fencing from both sides. Each asserts the
exit code and that the message names the object or record."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from ledgerdr.backup import BackupPolicy, run_backup
from ledgerdr.cli import cli
from ledgerdr.journal.codecs import ExportFormat, read_blocks
from ledgerdr.repository import WINDOWS, read_windows
from ledgerdr.sources.embedded import EmbeddedSource
from ledgerdr.stores.faults import flip_byte
from support.flows import T0, backed_up_ledger

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
    code, out = _run(config, "replicate")  # copied again from the primary, and said so
    assert code == 0 and f"repaired {key}: the copy was {was}" in out
    assert _status(config)[0] == 0 and _run(config, "replicate", "--verify-only")[0] == 0
    if damage == "flip":  # with the primary's copy damaged too there is no good copy left: named, exit 4
        from ledgerdr.stores import FileStore
        flip_byte(FileStore(root / "secondary"), key, -30)
        flip_byte(FileStore(root / "primary"), key, -30)
        code, out = _run(config, "replicate")
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
    result = CliRunner().invoke(cli, ["status", "--config", str(config), "--json"])  # without --max-rpo, too
    primary_json = json.loads(result.stdout)["repositories"][0]
    assert result.exit_code == 4 and primary_json["broken"] and primary_json["last_seq"] == windows[1].last_seq
    assert [(b["kind"], b["key"]) for b in primary_json["breaks"]] == [("gap", f"{WINDOWS}{windows[3].key_name}")]


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


def _rewrite_record(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.chmod(0o644)
    path.write_text(json.dumps(record))


def test_forked_or_unreadable_record_fails_status_and_only_rpo_past_the_limit_exits_8(repo):
    root, config, primary = repo
    assert _run(config, "replicate")[0] == 0
    assert _run(config, "status", "--max-rpo", "1s")[0] == 8  # nothing broken: only the RPO is past
    windows = read_windows(primary).windows
    folder = root / "primary" / WINDOWS
    _rewrite_record(folder / windows[2].key_name,
                    lambda r: r.update(first_previous_block_hash=windows[0].last_block_hash))
    code, out = _run(config, "status", "--max-rpo", "1s")
    assert code == 4 and f"FORK: {WINDOWS}{windows[2].key_name}" in _section(out, "primary")
    (folder / windows[2].key_name).write_text("{ not json")
    code, out = _status(config)
    assert code == 4 and f"UNREADABLE_RECORD: {WINDOWS}{windows[2].key_name}" in _section(out, "primary")
    assert f"newest verified block: {windows[1].last_seq} " in _section(out, "primary")


# ------------------------------------------------------------------------------------------ promotion fencing


def _backup_at(config: Path, moment) -> tuple[int, str]:
    with freeze_time(moment):
        return _run(config, "backup", "--once")


def _write(ledger: Path, moment, seed: int) -> None:
    from ledgerdr.ledger.engine import Ledger
    from ledgerdr.ledger.workload import run_workload

    opened = Ledger.open(ledger)
    with freeze_time(moment):
        run_workload(opened, 3, seed=seed)
    opened.close()


def _promoted(root: Path, config: Path) -> tuple[Path, Path]:
    """Promote a standby of the primary; a config whose source is the promoted ledger."""
    standby = root / "standby.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["standby", "--from", str(root / "primary"), "--to", f"embedded:{standby}",
                               "--once"]).exit_code == 0
    result = runner.invoke(cli, ["promote", "--from", str(root / "primary"), "--to", f"embedded:{standby}",
                                 "--state-dir", str(root / "promote-state")])
    assert result.exit_code == 0, result.output
    promoted_config = root / "promoted.toml"
    promoted_config.write_text(config.read_text().replace(str(root / "ledger.db"), str(standby)))
    return standby, promoted_config


@pytest.mark.parametrize("first", ["old", "promoted"])
def test_after_promote_the_old_primary_is_fenced_and_the_promoted_ledger_backs_up(repo, first):
    """Whichever comes back first, the old primary's backup is refused (exit 6, naming the promotion) and the
    promoted ledger's is recorded; the repository's last window before the promotion is an empty one."""
    root, config, primary = repo
    standby, promoted_config = _promoted(root, config)
    code, out = _run(config, "status")
    assert code == 0 and "(incarnation 1, promoted at block" in _section(out, "primary")
    _write(root / "ledger.db", T0 + 8 * MINUTE + timedelta(seconds=7), seed=7)
    _write(standby, T0 + 8 * MINUTE + timedelta(seconds=8), seed=8)
    due = T0 + 9 * MINUTE + timedelta(seconds=6)
    order = [(config, 6), (promoted_config, 0)] if first == "old" else [(promoted_config, 0), (config, 6)]
    for which, expected in order:
        code, out = _backup_at(which, due)
        assert code == expected, out
        if expected == 6:
            assert "fenced" in out and "promoted at block" in out
    from ledgerdr.ledger.engine import Ledger
    promoted = Ledger.open(standby)
    lineage = promoted.lineage
    promoted.close()
    assert read_windows(primary).windows[-1].lineage == lineage
    code, out = _run(config, "status")
    assert code == 0 and f"lineage: {lineage}  (incarnation 1" in _section(out, "primary")
    assert _run(config, "replicate")[0] == 0


def test_detach_opens_a_restore_for_writes_without_fencing_production(repo):
    root, config, primary = repo
    copy = root / "drill.db"
    result = CliRunner().invoke(cli, ["restore", "--from", str(root / "primary"), "--to", f"embedded:{copy}",
                                      "--state-dir", str(root / "restore-state")])
    assert result.exit_code == 0, result.output
    before = sorted(p.relative_to(root / "primary") for p in (root / "primary").rglob("*"))
    result = CliRunner().invoke(cli, ["detach", "--to", f"embedded:{copy}"])
    assert result.exit_code == 0 and "no repository was changed" in result.output
    assert sorted(p.relative_to(root / "primary") for p in (root / "primary").rglob("*")) == before
    _write(copy, T0 + 8 * MINUTE + timedelta(seconds=7), seed=9)  # the detached copy takes writes
    _write(root / "ledger.db", T0 + 8 * MINUTE + timedelta(seconds=7), seed=7)
    due = T0 + 9 * MINUTE + timedelta(seconds=6)
    assert _backup_at(config, due)[0] == 0  # production is not fenced
    detached_config = root / "detached.toml"
    detached_config.write_text(config.read_text().replace(str(root / "ledger.db"), str(copy)))
    code, out = _backup_at(detached_config, due + MINUTE)
    assert code == 6 and "lineage" in out  # and the copy cannot write into production's repository


# ------------------------------------------------------------------------------------------ orphans


LEDGERDR = Path(sys.executable).with_name("ledgerdr")


def _kill_mid_export(root: Path, config: Path) -> str:
    """Run `ledgerdr backup --once` in a real process and SIGKILL it once an attempt has started and not
    completed; that attempt's folder. Tried again should the export complete between seeing it start and the
    kill landing (the next run then starts from the last recorded window)."""
    exports = root / "primary" / "exports"
    for _ in range(5):
        before = set(exports.rglob("*.started.manifest"))
        process = subprocess.Popen([str(LEDGERDR), "backup", "--once", "--config", str(config)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                started = [m for m in exports.rglob("*.started.manifest") if m not in before]
                if any(not list(m.parent.glob("*.completed.manifest")) for m in started):
                    os.kill(process.pid, signal.SIGKILL)
                    break
                time.sleep(0.002)
        finally:
            process.kill()
            process.wait()
        incomplete = [m.parent for m in exports.rglob("*.started.manifest")
                      if m not in before and not list(m.parent.glob("*.completed.manifest"))]
        if incomplete:
            return str(incomplete[0].relative_to(root / "primary")) + "/"
    raise AssertionError("no backup was killed mid-export in five tries")


def test_backup_killed_mid_export_leaves_an_orphan_that_verify_lists_and_does_not_fail(repo):
    root, config, primary = repo
    from ledgerdr.ledger.engine import Ledger
    from ledgerdr.ledger.workload import run_workload

    ledger = Ledger.open(root / "ledger.db")
    with freeze_time(T0 + 7 * MINUTE + timedelta(seconds=7)):  # a big next window: its export takes a while
        run_workload(ledger, 600, seed=3)
    ledger.close()
    orphan = _kill_mid_export(root, config)
    source = EmbeddedSource(root / "ledger.db")
    with freeze_time(T0 + 9 * MINUTE + timedelta(seconds=6)):  # back up again: the window is exported anew
        again = run_backup(source, primary, BackupPolicy(interval=MINUTE))
    source.close()
    assert not again.failed and again.recorded
    result = CliRunner().invoke(cli, ["verify", str(root / "primary")])
    assert result.exit_code == 0, result.output
    assert f"orphan: {orphan}" in result.output and "incomplete" in result.output
    assert "verified: OK; " in result.output and " orphan export attempts" in result.output
    result = CliRunner().invoke(cli, ["verify", "--strict", str(root / "primary")])
    assert result.exit_code == 4 and orphan in result.output
    code, out = _run(config, "status")
    assert code == 0 and " export attempts no record names" in _section(out, "primary")
    assert _run(config, "status", "--strict")[0] == 4
    # the attempt's folder on its own is a raw export whose only attempt is incomplete: still a failure
    result = CliRunner().invoke(cli, ["verify", str(root / "primary" / orphan)])
    assert result.exit_code == 4 and "export_incomplete" in result.output


def test_an_incomplete_export_a_record_names_still_fails(repo):
    root, config, primary = repo
    window = read_windows(primary).windows[1]
    completed = next(o.key for o in window.objects if o.key.endswith(".completed.manifest"))
    (root / "primary" / completed).unlink()
    result = CliRunner().invoke(cli, ["verify", str(root / "primary")])
    assert result.exit_code == 4 and "export_incomplete" in result.output and "orphan" not in result.output


# ------------------------------------------------------------------------------------------ bytes no hash covers


def _flip_at(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def _uncovered_byte(data: bytes, field: str, strand_id: str) -> int:
    """The offset of the last byte of the first `transactionId` field name, or of the strand id a revision
    repeats in its own `blockAddress` (the second one in a block that has such revisions)."""
    if field == "transactionId":
        return data.index(b"transactionId") + len("transactionId") - 1
    block = next(b for b in read_blocks(data, ExportFormat.ION_BINARY)
                 if any("blockAddress" in r for r in b.value.get("revisions") or ()))
    start = data.index(block.raw)
    first = data.index(strand_id.encode(), start)
    return data.index(strand_id.encode(), first + 1) + len(strand_id) - 1


@pytest.mark.parametrize("field", ["transactionId", "strandId"])
@pytest.mark.parametrize("mode", [[], ["--chain-only"]])
def test_verify_catches_a_flip_no_qldb_hash_covers(repo, field, mode):
    """A block's `transactionId` field name, a revision's copy of the strand id: QLDB's hashes cover neither,
    so only the object's recorded sha256 catches the flip, in every mode; a raw copy of the export (no
    records) is caught by the full verify's shape checks."""
    root, config, primary = repo
    window = read_windows(primary).windows[0]
    key = next(o.key for o in window.objects if o.key.endswith(".ion"))
    raw = root / "raw"
    shutil.copytree(root / "primary" / window.export_prefix, raw)
    path = root / "primary" / key
    at = _uncovered_byte(path.read_bytes(), field, window.source["strand_id"])
    for target in (path, raw / key[len(window.export_prefix):]):
        _flip_at(target, at)
    result = CliRunner().invoke(cli, ["verify", *mode, str(root / "primary")])
    assert result.exit_code == 4 and f"checksum_mismatch: object bytes do not match the sha256 recorded for " \
        f"them (object {key}" in result.output
    if not mode:
        result = CliRunner().invoke(cli, ["verify", str(raw)])
        assert result.exit_code == 4 and "malformed_block" in result.output, result.output


def test_unreadable_incarnation_record_fails_status_and_backup(repo):
    root, config, primary = repo
    folder = root / "primary" / "_ledgerdr" / "incarnations"
    folder.mkdir(parents=True)
    (folder / "00000000000000000015-x.json").write_text("{ not json")
    code, out = _run(config, "status")
    assert code == 4 and "UNREADABLE_RECORD: _ledgerdr/incarnations/00000000000000000015-x.json" in out
    code, out = _backup_at(config, T0 + 9 * MINUTE + timedelta(seconds=6))
    assert code == 4 and "_ledgerdr/incarnations/00000000000000000015-x.json" in out


def test_promote_and_detach_refuse_a_target_that_cannot_take_writes_and_record_nothing(repo, pg_url):
    root, config, primary = repo
    for args in (["promote", "--from", str(root / "primary"), "--to", pg_url, "--state-dir", str(root / "st")],
                 ["detach", "--to", pg_url]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 7 and "queryable replica" in result.output, result.output
    assert not (root / "primary" / "_ledgerdr" / "incarnations").exists()  # nothing fenced
