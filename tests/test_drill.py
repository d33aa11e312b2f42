"""The drill on the embedded default: every figure in the JSON report, verdict true, and the HTML page
renders in headless Chromium with the figures on it."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import timedelta

import pytest
from click.testing import CliRunner

from ledgerdr.cli import cli
from ledgerdr.drill import DrillSettings, run_drill
from ledgerdr.drill_html import render_html


@pytest.fixture(scope="module")
def drill_report(tmp_path_factory):
    work = tmp_path_factory.mktemp("drill") / "work"
    return run_drill(DrillSettings(work, duration=5.0, interval=timedelta(seconds=1), transactions_per_second=80))


def test_drill_reports_every_figure_and_verifies(drill_report):
    data = drill_report.to_json()
    assert data["verdict"] is True
    assert [r["strategy"] for r in data["results"]] == ["backup-restore", "intermediate", "warm-standby"]
    for result in data["results"]:
        for key in ("rpo_seconds", "transactions_lost", "rto_seconds", "revisions_restored",
                    "journal_state_digest", "target_state_digest"):
            assert result[key] is not None, key
        assert result["journal_state_digest"] == result["target_state_digest"]
        assert result["ledger_digest_matches_source"] and result["writable"]
        assert 0 <= result["transactions_lost"] < data["source_blocks"]
    kinds = {event["kind"] for event in data["timeline"]}
    assert {"export", "watermark", "disaster", "restore-start", "restore-done"} <= kinds


def test_drill_html_renders_in_headless_chromium(drill_report, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_html(drill_report))
    assert "http://" not in page.read_text() and "https://" not in page.read_text()  # self-contained
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: scripts/ensure-test-tools.sh installs it"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "VERIFIED" in dom
    for result in drill_report.results:
        assert f"{result.rto_seconds:.2f}" in dom and f"{result.rpo_seconds:.2f}" in dom
        assert result.strategy in dom


def test_drill_command_exit_code_and_files(tmp_path):
    result = CliRunner().invoke(cli, ["drill", "--workdir", str(tmp_path / "w"), "--duration", "3", "--interval",
                                      "1", "--strategy", "backup-restore", "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "w" / "report.json").read_text())
    assert report["verdict"] is True and (tmp_path / "r.html").exists()
