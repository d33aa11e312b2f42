"""`ledgerdr ledger …` through click's CliRunner, end to end: create, exec, load, digest, export, and
`ledgerdr verify` over what the export wrote."""

from __future__ import annotations

import base64
import json
import time

import pytest
from amazon.ion import simpleion
from click.testing import CliRunner

from ledgerdr.cli import cli
from ledgerdr.cli.ledger_cmd import ledger
from ledgerdr.errors import ConfigError, LedgerError
from ledgerdr.journal.hashing import merkle_root
from ledgerdr.ledger.engine import Ledger


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args):
    result = runner.invoke(ledger, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def ledger_path(tmp_path, runner):
    path = tmp_path / "demo.db"
    assert "created ledger 'demo'" in invoke(runner, "create", path, "--durability", "normal")
    return path


def test_exec_prints_ion_text_results_one_per_line(runner, ledger_path):
    table = simpleion.loads(invoke(runner, "exec", ledger_path, "CREATE TABLE Vehicle"))
    assert len(table["tableId"]) == 22
    invoke(runner, "exec", ledger_path, "INSERT INTO Vehicle ?", "--param", '{VIN: "1N4AL", price: 20500.00}')
    invoke(runner, "exec", ledger_path, "INSERT INTO Vehicle ?", "--param", '{VIN: "KM8SR", price: 9.5e3}')
    lines = invoke(runner, "exec", ledger_path, "SELECT * FROM Vehicle WHERE VIN = ?", "--param", '"1N4AL"')
    assert lines.splitlines() == ['{VIN:"1N4AL",price:20500.00}']
    assert len(invoke(runner, "exec", ledger_path, "SELECT * FROM Vehicle").splitlines()) == 2


def test_exec_errors_are_ledger_errors(runner, ledger_path):
    with pytest.raises(LedgerError, match="no active table"):
        runner.invoke(ledger, ["exec", str(ledger_path), "SELECT * FROM Absent"], catch_exceptions=False)
    with pytest.raises(ConfigError, match="not Ion text"):
        runner.invoke(
            ledger,
            ["exec", str(ledger_path), "SELECT 1 FROM x", "--param", "{unclosed"],
            catch_exceptions=False,
        )


def test_load_digest_export_and_verify(runner, ledger_path, tmp_path):
    output = invoke(runner, "load", ledger_path, "--transactions", 40, "--seed", 3, "--durability", "normal")
    assert "40 transactions" in output
    with Ledger.open(ledger_path) as opened:
        expected_digest = merkle_root([row.block_hash for row in opened.iter_blocks()])
        blocks = opened.block_count
    assert blocks == 40

    digest = json.loads(invoke(runner, "digest", ledger_path, "--json"))
    assert base64.b64decode(digest["digest"]) == expected_digest
    assert digest["digest_tip_address"]["sequenceNo"] == blocks - 1
    assert "digest: " + digest["digest"] in invoke(runner, "digest", ledger_path)

    time.sleep(0.002)  # the default window end is "now": let the last block's millisecond pass
    out = tmp_path / "exports"
    for fmt in ("ion_binary", "ion_text", "json"):
        summary = json.loads(
            invoke(runner, "export", ledger_path, "--to", out, "--format", fmt, "--prefix", fmt, "--json")
        )
        assert summary["blocks"] == blocks and summary["first_seq"] == 0 and summary["format"] == fmt.upper()
        text = invoke(runner, "export", ledger_path, "--to", out, "--format", fmt, "--prefix", f"{fmt}-text")
        assert f"blocks 0..{blocks - 1}" in text

    verified = CliRunner().invoke(cli, ["verify", str(out), "--json"], catch_exceptions=False)
    report = json.loads(verified.output)
    assert verified.exit_code == 0, report["problems"]
    assert report["blocks"] == blocks and report["exports"] == 6
    assert base64.b64decode(report["digest"]) == expected_digest


def test_export_window_options(runner, ledger_path, tmp_path):
    invoke(runner, "exec", ledger_path, "CREATE TABLE T")
    output = invoke(
        runner,
        "export",
        ledger_path,
        "--to",
        tmp_path / "out",
        "--start",
        "2001-01-01T00:00:00Z",
        "--end",
        "2001-01-02T00:00:00",
        "--json",
    )
    assert json.loads(output)["blocks"] == 0
    with pytest.raises(ConfigError, match="ISO 8601"):
        runner.invoke(
            ledger,
            ["export", str(ledger_path), "--to", str(tmp_path / "o"), "--start", "yesterday"],
            catch_exceptions=False,
        )


def test_every_command_has_help(runner):
    for name, command in ledger.commands.items():
        assert command.help, name
        assert runner.invoke(ledger, [name, "--help"]).exit_code == 0
