"""`ledgerdr metrics`: scraped with prometheus_client's own parser while the flows run, the values move."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from ledgerdr.cli import cli
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.workload import run_workload
from support.flows import two_region_config


def _scrape(config: Path, tmp_path: Path) -> dict[tuple[str, tuple], float]:
    """Every sample of `ledgerdr metrics --textfile`, parsed: {(name, sorted labels): value}."""
    out = tmp_path / "ledgerdr.prom"
    result = CliRunner().invoke(cli, ["metrics", "--config", str(config), "--textfile", str(out)])
    assert result.exit_code == 0, result.output
    return _samples(out.read_text())


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _run(*args: str) -> int:
    return CliRunner().invoke(cli, list(args)).exit_code


PRIMARY = (("region", "eu-west-1"), ("repository", "primary"))
SECONDARY = (("region", "eu-central-1"), ("repository", "secondary"))


def test_metrics_move_as_the_flows_run(tmp_path):
    config = two_region_config(tmp_path)
    before = _scrape(config, tmp_path)
    assert before[("ledgerdr_repository_up", PRIMARY)] == 1
    assert ("ledgerdr_rpo_seconds", PRIMARY) not in before  # nothing verified yet: no RPO, not a 0
    assert not [key for key in before if key[0] == "ledgerdr_last_run_success"]

    started = time.time()
    assert _run("backup", "--config", str(config)) == 0
    after_backup = _scrape(config, tmp_path)
    backup = (("flow", "backup"),)
    assert after_backup[("ledgerdr_last_run_success", backup)] == 1
    assert 0 < after_backup[("ledgerdr_last_run_duration_seconds", backup)] < time.time() - started
    assert started <= after_backup[("ledgerdr_last_run_timestamp_seconds", backup)] <= time.time()
    rpo = after_backup[("ledgerdr_rpo_seconds", PRIMARY)]
    assert 0 <= rpo < 30 and after_backup[("ledgerdr_newest_verified_block", PRIMARY)] > 0
    assert ("ledgerdr_rpo_seconds", SECONDARY) not in after_backup
    assert after_backup[("ledgerdr_breaks", (("kind", "gap"), *PRIMARY))] == 0

    assert _run("replicate", "--config", str(config)) == 0
    time.sleep(1.1)
    later = _scrape(config, tmp_path)
    assert later[("ledgerdr_rpo_seconds", PRIMARY)] > rpo + 1  # time passes, nothing new is backed up
    assert later[("ledgerdr_rpo_seconds", SECONDARY)] >= later[("ledgerdr_rpo_seconds", PRIMARY)]
    assert later[("ledgerdr_windows_pending", SECONDARY)] == 0
    assert later[("ledgerdr_last_run_success", (("flow", "replicate"),))] == 1

    ledger = Ledger.open(tmp_path / "ledger.db")
    run_workload(ledger, 3, seed=2)
    ledger.close()
    assert _run("backup", "--config", str(config)) == 0
    fresh = _scrape(config, tmp_path)
    assert fresh[("ledgerdr_rpo_seconds", PRIMARY)] < later[("ledgerdr_rpo_seconds", PRIMARY)]
    assert fresh[("ledgerdr_newest_verified_block", PRIMARY)] > later[("ledgerdr_newest_verified_block", PRIMARY)]

    assert _run("verify", str(tmp_path / "no-such-repository")) == 3
    failed = _scrape(config, tmp_path)
    verify = (("flow", "verify"),)
    assert failed[("ledgerdr_last_run_success", verify)] == 0 and failed[("ledgerdr_last_run_exit_code", verify)] == 3
    assert ("ledgerdr_last_success_timestamp_seconds", verify) not in failed
    assert failed[("ledgerdr_last_success_timestamp_seconds", backup)] == fresh[("ledgerdr_last_run_timestamp_seconds",
                                                                                 backup)]


def test_metrics_served_on_localhost(tmp_path):
    config = two_region_config(tmp_path)
    assert _run("backup", "--config", str(config)) == 0
    server = subprocess.Popen([str(Path(sys.executable).with_name("ledgerdr")), "metrics", "--config", str(config),
                               "--port", "0"], stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = server.stderr.readline()
        assert "serving metrics on http://127.0.0.1:" in line, line
        url = line.split()[3]
        with urllib.request.urlopen(url, timeout=30) as response:
            samples = _samples(response.read().decode())
        assert samples[("ledgerdr_rpo_seconds", PRIMARY)] >= 0
        assert samples[("ledgerdr_last_run_success", (("flow", "backup"),))] == 1
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_backup_every_serves_the_same_metrics_and_counts_each_cycle(tmp_path):
    config = two_region_config(tmp_path)
    backup = subprocess.Popen([str(Path(sys.executable).with_name("ledgerdr")), "backup", "--config", str(config),
                               "--every", "1s", "--metrics-port", "0"], stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path)
    try:
        line = backup.stderr.readline()
        assert "serving metrics on http://127.0.0.1:" in line, line
        url, cycles, samples = line.split()[3], set(), {}
        deadline = time.time() + 60
        # a cycle may find no whole interval due yet: wait for two cycles and a recorded window
        while (len(cycles) < 2 or ("ledgerdr_rpo_seconds", PRIMARY) not in samples) and time.time() < deadline:
            with urllib.request.urlopen(url, timeout=30) as response:
                samples = _samples(response.read().decode())
            if ("ledgerdr_last_run_timestamp_seconds", (("flow", "backup"),)) in samples:
                cycles.add(samples[("ledgerdr_last_run_timestamp_seconds", (("flow", "backup"),))])
            time.sleep(0.3)
        assert len(cycles) >= 2, "the last backup's time did not move while `backup --every` ran"
        assert 0 <= samples[("ledgerdr_rpo_seconds", PRIMARY)] < 30
    finally:
        backup.terminate()
        backup.wait(timeout=30)


def _served(args: list[str], cwd: Path, ready) -> dict:
    """Start a long-running mode with `--metrics-port 0`, scrape it until `ready(samples)`, stop it."""
    proc = subprocess.Popen([str(Path(sys.executable).with_name("ledgerdr")), *args, "--metrics-port", "0"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=cwd)
    try:
        line = proc.stderr.readline()
        assert "serving metrics on http://127.0.0.1:" in line, line
        deadline, samples = time.time() + 60, {}
        while not ready(samples) and time.time() < deadline:
            time.sleep(0.3)
            with urllib.request.urlopen(line.split()[3], timeout=30) as response:
                samples = _samples(response.read().decode())
        assert ready(samples), samples
        return samples
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_replicate_follow_and_standby_serve_metrics_while_running(tmp_path):
    config = two_region_config(tmp_path)
    assert _run("backup", "--config", str(config)) == 0
    replicated = _served(["replicate", "--config", str(config), "--follow", "--every", "1s"], tmp_path,
                         lambda s: ("ledgerdr_rpo_seconds", SECONDARY) in s
                         and ("ledgerdr_last_run_success", (("flow", "replicate"),)) in s)
    assert replicated[("ledgerdr_last_run_success", (("flow", "replicate"),))] == 1
    target = f"embedded:{tmp_path / 'standby.db'}"
    lag = ("ledgerdr_standby_lag_blocks", (("target", target),))
    followed = _served(["standby", "--from", str(tmp_path / "secondary"), "--to", target, "--every", "1s"], tmp_path,
                       lambda s: s.get(lag) == 0)
    assert followed[("ledgerdr_standby_up", (("target", target),))] == 1
    refused = CliRunner().invoke(cli, ["backup", "--config", str(config), "--metrics-port", "0"])
    assert refused.exit_code == 2 and "pass --every" in refused.output
