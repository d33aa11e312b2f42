"""`ledgerdr info`: the restore points it shows are exactly the ones `restore` accepts, at the edges."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner
from freezegun import freeze_time

from ledgerdr.cli import cli
from ledgerdr.compact import compact
from ledgerdr.prune import prune
from ledgerdr.repository import iso_ms, parse_iso
from support.flows import T0, back_up_one_more_minute, backed_up_ledger


def _config(tmp_path):
    config = tmp_path / "ledgerdr.toml"
    config.write_text(f'[source]\nkind = "embedded"\npath = "{tmp_path / "ledger.db"}"\n\n'
                      f'[repositories.primary]\nurl = "{tmp_path / "primary"}"\n')
    return config


def _restore(tmp_path, name: str, *point: str):
    return CliRunner().invoke(cli, ["restore", "--from", str(tmp_path / "primary"), "--to",
                                    f"embedded:{tmp_path / name}.db", "--workers", "0",
                                    "--state-dir", str(tmp_path / "state"), "--json", *point])


def test_info_shows_the_range_restore_accepts(tmp_path, monkeypatch):
    _, location = backed_up_ledger(tmp_path, minutes=3, per_minute=4)
    compact(location)
    config = _config(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["info", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    [repo] = json.loads(result.output)["repositories"]
    first, last = repo["restore_points"]["until_block"]
    after, up_to = repo["restore_points"]["until"]["after"], repo["restore_points"]["until"]["up_to"]
    assert repo["windows"] == 3 and repo["lineages"][0]["last_block"] == last == repo["newest_verified_block"]
    assert [s["last_seq"] for s in repo["snapshots"]] == [last] and repo["orphans"] == [] and not repo["broken"]
    assert repo["lineage"] and repo["incarnation"] == 0

    # the edges: the newest block and the newest window's end are accepted ...
    for name, point in (("by_block", ["--until-block", str(last)]), ("by_time", ["--until", up_to])):
        restored = _restore(tmp_path, name, *point)
        assert restored.exit_code == 0, restored.output
        assert json.loads(restored.output)["last_seq"] == last
    # ... one past them, or at the first window's start (nothing before it), is a usage error naming the range
    beyond = iso_ms(parse_iso(up_to) + timedelta(milliseconds=1))
    for name, point in (("past_block", ["--until-block", str(last + 1)]), ("past_time", ["--until", beyond]),
                        ("before_time", ["--until", after])):
        refused = _restore(tmp_path, name, *point)
        assert refused.exit_code == 2, refused.output
        assert f"--until-block {first}..{last}; --until after {after} up to {up_to}" in refused.output
        assert not (tmp_path / f"{name}.db").exists()


def test_info_text_names_a_repository_by_url_and_refuses_an_unknown_name(tmp_path, monkeypatch):
    backed_up_ledger(tmp_path, minutes=2, per_minute=3)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "primary")])
    assert result.exit_code == 0, result.output
    assert "restore points: --until-block 0.." in result.output and "snapshots: 0" in result.output
    unknown = CliRunner().invoke(cli, ["info", "nosuch", "--config", str(_config(tmp_path))])
    assert unknown.exit_code == 2 and "no repository named 'nosuch' (configured: primary)" in unknown.output


def test_after_a_prune_info_and_restore_start_from_the_snapshot(tmp_path, monkeypatch):
    """Raw exports the snapshot stands for are gone: points before its tip are no longer restorable, and
    `info` and `restore` both say so."""
    path, location = backed_up_ledger(tmp_path, minutes=3, per_minute=4)
    compact(location)
    back_up_one_more_minute(path, location, 3)
    with freeze_time(T0 + timedelta(days=40)):  # the exports' retention is over
        assert prune(location, confirm=True).record_key
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["info", str(tmp_path / "primary"), "--json"])
    [repo] = json.loads(result.output)["repositories"]
    [snapshot] = repo["snapshots"]
    first, last = repo["restore_points"]["until_block"]
    assert first == snapshot["last_seq"] < last and repo["restore_points"]["until"]["after"] == snapshot["tip_time"]
    assert _restore(tmp_path, "at_tip", "--until-block", str(first)).exit_code == 0
    refused = _restore(tmp_path, "before_tip", "--until-block", str(first - 1))
    assert refused.exit_code == 2 and f"before the first block ({first})" in refused.output
