"""Restore progress and dead letters as Prometheus metrics: scraped with prometheus_client's parser from
`ledgerdr metrics --restore-state/--queue`, from `restore --metrics-port` and `worker --metrics-port`, the
values move as a restore runs and when a unit is dead-lettered."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from ledgerdr.cli import cli
from ledgerdr.queues import SqliteQueue, local_queue_urls, open_queue
from ledgerdr.restore import RestoreOptions, plan_restore, restore
from ledgerdr.stores.faults import flip_byte
from support.flows import backed_up_ledger

LEDGERDR = str(Path(sys.executable).with_name("ledgerdr"))


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _scrape(tmp_path: Path, *options: str) -> dict[tuple[str, tuple], float]:
    out = tmp_path / "restore.prom"
    runner = CliRunner(env={"LEDGERDR_CONFIG": None})
    with runner.isolated_filesystem(temp_dir=tmp_path):  # no configuration at all: no ./ledgerdr.toml either
        result = runner.invoke(cli, ["metrics", "--runs-dir", str(tmp_path / "runs"), "--textfile", str(out), *options])
    assert result.exit_code == 0, result.output
    return _samples(out.read_text())


def _of(samples: dict, name: str) -> dict[tuple, float]:
    return {labels: value for (metric, labels), value in samples.items() if metric == name}


def test_restore_progress_moves_as_it_runs_and_a_dead_letter_is_counted(tmp_path):
    _, primary = backed_up_ledger(tmp_path, minutes=4, per_minute=5)
    state, target = tmp_path / "state", f"embedded:{tmp_path / 'restored.db'}"
    assert not _of(_scrape(tmp_path, "--restore-state", str(state)), "ledgerdr_restore_in_progress")
    seen: list[dict] = []

    def scrape_now(done: int, total: int, revisions: int) -> None:
        seen.append(_scrape(tmp_path, "--restore-state", str(state)))

    report = restore(primary.url, target, RestoreOptions(workers=0, state_dir=state), on_progress=scrape_now)
    assert report.verdict and len(seen) == report.units == 4
    labels = (("restore_id", report.restore_id), ("target", target))
    assert [s[("ledgerdr_restore_units_applied", labels)] for s in seen] == [1, 2, 3, 4]
    assert all(s[("ledgerdr_restore_in_progress", labels)] == 1 for s in seen)
    assert all(s[("ledgerdr_restore_units_planned", labels)] == 4 for s in seen)
    blocks = [s[("ledgerdr_restore_blocks_applied", labels)] for s in seen]
    revisions = [s[("ledgerdr_restore_revisions_applied", labels)] for s in seen]
    assert blocks == sorted(blocks) and revisions == sorted(revisions) and blocks[0] < blocks[-1]

    after = _scrape(tmp_path, "--restore-state", str(state))
    assert after[("ledgerdr_restore_in_progress", labels)] == 0
    assert after[("ledgerdr_restore_blocks_applied", labels)] == after[("ledgerdr_restore_blocks_planned", labels)] \
        == report.last_seq + 1
    assert after[("ledgerdr_restore_revisions_applied", labels)] == report.revisions
    assert after[("ledgerdr_restore_dead_letters", labels)] == 0
    assert after[("ledgerdr_restore_start_timestamp_seconds", labels)] <= time.time()

    # A unit of the restore's newest run is delivered and never acked, up to its last attempt: a dead letter
    queue_url = local_queue_urls(state / report.restore_id / "queue.db")[-1]  # as the restore opened it
    queue = open_queue(queue_url)
    queue.send_batch([plan_restore(primary).units[0].to_bytes()])
    for _ in range(queue.max_attempts):
        (message,) = queue.receive(1, 30)
        queue.release(message, reason="the target was unreachable")
    queue.close()
    dead = _scrape(tmp_path, "--restore-state", str(state), "--queue", queue_url)
    assert dead[("ledgerdr_restore_dead_letters", labels)] == 1
    assert dead[("ledgerdr_queue_dead_letters", (("queue", queue_url),))] == 1
    assert dead[("ledgerdr_queue_messages", (("queue", queue_url), ("state", "visible")))] == 0
    broken = _scrape(tmp_path, "--queue", f"sqlite:{tmp_path / 'missing' / 'q.db'}")
    assert broken[("ledgerdr_queue_up", (("queue", f"sqlite:{tmp_path / 'missing' / 'q.db'}"),))] == 0


class _Served:
    """A command started with `--metrics-port 0`: its metrics URL from the line it logs, scraped on demand."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen([LEDGERDR, *args, "--metrics-port", "0"], cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        assert "serving metrics on http://127.0.0.1:" in line, line
        self.url = line.split()[3]

    def scrape(self) -> dict:
        with urllib.request.urlopen(self.url, timeout=30) as response:
            return _samples(response.read().decode())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.communicate(timeout=60)


def test_a_worker_serves_its_queue_and_counts_a_dead_letter(tmp_path):
    _, primary = backed_up_ledger(tmp_path, minutes=2, per_minute=3)
    units = plan_restore(primary).units
    flip_byte(primary.store, units[1].key, 40)  # every delivery of this unit fails
    queue = SqliteQueue(tmp_path / "work.db", "units", max_attempts=2)
    queue.send_batch([unit.to_bytes() for unit in units])
    queue.close()
    url = queue.url + "&max_attempts=2"
    dead = ("ledgerdr_queue_dead_letters", (("queue", url),))
    before = _scrape(tmp_path, "--queue", url)
    assert before[dead] == 0 and before[("ledgerdr_queue_messages", (("queue", url), ("state", "visible")))] == 2
    worker = _Served(tmp_path, "worker", "--queue", url, "--from", primary.url, "--to",
                     f"embedded:{tmp_path / 'w.db'}", "--state", str(tmp_path / "results"), "--follow")
    try:
        deadline, samples = time.time() + 90, worker.scrape()
        while samples.get(dead) != 1 and time.time() < deadline:
            time.sleep(0.3)
            samples = worker.scrape()
    finally:
        worker.stop()
    assert samples[dead] == 1
    assert samples[("ledgerdr_queue_messages", (("queue", url), ("state", "visible")))] == 0


def test_restore_serves_its_progress_while_it_runs(tmp_path):
    _, primary = backed_up_ledger(tmp_path, minutes=4, per_minute=5)
    state = tmp_path / "state"
    running = _Served(tmp_path, "restore", "--from", primary.url, "--to", f"embedded:{tmp_path / 'r.db'}",
                      "--state-dir", str(state), "--workers", "1")
    seen = []
    try:
        while running.proc.poll() is None:
            try:
                seen.append(running.scrape())
            except OSError:  # the restore ended between the check and the scrape
                break
            time.sleep(0.1)
    finally:
        running.stop()
    assert running.proc.returncode == 0
    in_progress = [value for s in seen for (name, _), value in s.items() if name == "ledgerdr_restore_in_progress"]
    assert 1 in in_progress, seen  # planned, then applied unit by unit, observed while it ran
    planned = [value for s in seen for (name, _), value in s.items() if name == "ledgerdr_restore_units_planned"]
    assert set(planned) == {4}


def test_a_taken_metrics_port_is_a_usage_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        refused = subprocess.run([LEDGERDR, "worker", "--queue", f"sqlite:{tmp_path / 'q.db'}", "--from", str(tmp_path),
                                  "--to", f"embedded:{tmp_path / 'w.db'}", "--state", str(tmp_path / "s"),
                                  "--metrics-port", str(port)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and f"cannot serve metrics on 127.0.0.1:{port}" in refused.stderr
