"""A metrics server re-checks replica copies with memory (copies.CheckedCopies): a copy found intact is not
read again while the storage shows the same stamp and its hash is young; a changed, lost or old one is."""

from __future__ import annotations

from datetime import UTC, datetime

from click.testing import CliRunner

from ledgerdr.cli import cli
from ledgerdr.copies import CheckedCopies
from ledgerdr.repository import read_windows
from ledgerdr.status import repository_status
from ledgerdr.stores import Location
from ledgerdr.stores.faults import flip_byte
from ledgerdr.stores.file import FileStore
from ledgerdr.stores.retrying import MeteredStore
from support.flows import two_region_config


def _reads_of_one_status(replica: Location, checked: CheckedCopies) -> tuple[int, list[dict]]:
    """Objects `status` reads from the replica (records, watermarks, copies), and the damage it names."""
    assert isinstance(replica.store, MeteredStore)
    before = replica.store.objects_read
    status = repository_status("secondary", "eu-central-1", replica, now=datetime.now(UTC), primary=False,
                               damage=checked.damage)
    return replica.store.objects_read - before, status.damaged


def test_intact_copies_are_not_read_again_until_they_change_or_their_hash_is_old(tmp_path):
    config = two_region_config(tmp_path)
    for command in ("backup", "replicate"):
        assert CliRunner().invoke(cli, [command, "--config", str(config)]).exit_code == 0
    replica = Location(MeteredStore(FileStore(tmp_path / "secondary")), "")
    copies = [o.key for w in read_windows(replica).windows for o in w.objects]
    now = [0.0]
    checked = CheckedCopies(max_age=3600, clock=lambda: now[0])

    first, damaged = _reads_of_one_status(replica, checked)
    again, _ = _reads_of_one_status(replica, checked)
    assert not damaged and first - again == len(copies) > 0  # the second scrape read no copy

    flip_byte(tmp_path / "secondary", copies[-1], 10)  # rewritten in place: its stamp (ctime) changed
    after_damage, damaged = _reads_of_one_status(replica, checked)
    assert damaged == [{"key": copies[-1], "was": "damaged"}] and after_damage == again + 1

    flip_byte(tmp_path / "secondary", copies[-1], 10)  # the same bytes again: intact, read and remembered
    now[0] = 3601.0  # every hash is now older than max_age: each copy is read again
    old, damaged = _reads_of_one_status(replica, checked)
    assert not damaged and old == first
