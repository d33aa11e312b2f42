"""The drill on the embedded default: every figure in the JSON report, verdict true, and the HTML page
holds every figure, self-contained (checked with html.parser); one marked test renders it in headless
Chromium."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from ledgerdr.cli import cli
from ledgerdr.drill import DrillSettings, run_drill
from ledgerdr.drill_html import render_html
from ledgerdr.ledger.engine import Ledger
from ledgerdr.repository import parse_iso, read_incarnations
from ledgerdr.stores import FileStore, Location


@pytest.fixture(scope="module")
def drill_work(tmp_path_factory):
    return tmp_path_factory.mktemp("drill") / "work"


@pytest.fixture(scope="module")
def drill_report(drill_work):
    work = drill_work
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


def test_drill_restores_are_writable_as_detached_copies_that_fence_nothing(drill_report, drill_work):
    """A drill's writable copy has a lineage of its own and leaves no promotion in the repository: a drill
    must never fence production, and its copy's backups must never pass for the production chain."""
    source_lineage = Ledger.open(drill_work / "region-a" / "ledger.db").lineage
    restored = sorted((drill_work / "region-b").glob("*.db"))
    assert restored
    for path in restored:
        ledger = Ledger.open(path)
        assert not ledger.read_only and ledger.lineage != source_lineage, path.name
        ledger.close()
    assert read_incarnations(Location(FileStore(drill_work / "region-b" / "repo"), "")) == []


class _PageText(HTMLParser):
    """The page as a reader sees it: its text, and every address it would fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.fetched: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.fetched += [value or "" for name, value in attrs if name in ("src", "href")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_drill_html_is_self_contained_and_shows_every_figure(drill_report):
    page = _PageText()
    page.feed(render_html(drill_report))
    page.close()
    assert page.fetched == []  # nothing to fetch: the page works offline, as a drill's evidence must
    text = " ".join(page.text)
    assert "VERIFIED" in text
    for result in drill_report.results:
        assert f"{result.rto_seconds:.2f}" in text and f"{result.rpo_seconds:.2f}" in text
        assert result.strategy in text
        assert f"RPO {result.rpo_seconds:.2f}s" in text and f"RTO {result.rto_seconds:.2f}s" in text  # on the chart
    for event in drill_report.timeline:  # each event readable without hovering
        assert event.detail in text
    # "Started" is the drill's start: no later than its first exported window (it was the disaster's time)
    first_window = next(e.detail.split()[1] for e in drill_report.timeline if e.kind == "export")
    assert f"Started {drill_report.started_at};" in " ".join(text.split())
    assert parse_iso(drill_report.started_at) <= parse_iso(first_window)
    assert "seconds from start" in text and "disaster t=" in text


@pytest.mark.browser
def test_drill_html_renders_in_headless_chromium(drill_report, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_html(drill_report))
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: scripts/ensure-test-tools.sh installs it"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "VERIFIED" in dom  # the browser parsed and laid out the page, not only our parser


def _png_pixels(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct colours of an 8-bit RGB or RGBA PNG (what Chromium writes): a PNG
    reader in a few lines (zlib and the five row filters), so that no imaging library is needed."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks, offset = {}, 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        chunks.setdefault(kind, []).append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][0][:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    channels = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks[b"IDAT"])), width * channels
    previous, colours = bytearray(stride), set()
    for row in range(height):
        kind, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        colours.update(bytes(line[i:i + 3]) for i in range(0, stride, channels))
        previous = line
    return width, height, colours


@pytest.mark.browser
def test_drill_html_screenshot_shows_the_timeline(drill_report, tmp_path):
    """Headless Chromium draws the page: the screenshot has the window's size, is not blank, and holds the
    legend's colours (the exports, the RTO spans, the disaster line)."""
    page = tmp_path / "report.html"
    page.write_text(render_html(drill_report))
    shot = tmp_path / "report.png"
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: scripts/ensure-test-tools.sh installs it"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--force-device-scale-factor=1", "--window-size=1200,1000",
         f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 0
    width, height, colours = _png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 1000)
    assert len(colours) > 20, "the screenshot is (almost) blank"
    for colour in ("3366cc", "ff7f0e", "d62728"):
        assert bytes.fromhex(colour) in colours, f"#{colour} is not drawn"


def test_drill_command_exit_code_and_files(tmp_path):
    history, reports = tmp_path / "history", []
    for _ in range(2):  # two drills kept in one history folder, charted together
        result = CliRunner().invoke(cli, ["drill", "--workdir", str(tmp_path / "w"), "--duration", "3", "--interval",
                                          "1", "--strategy", "backup-restore", "--html", str(tmp_path / "r.html"),
                                          "--history", str(history)])
        assert result.exit_code == 0, result.output
        reports.append(json.loads((tmp_path / "w" / "report.json").read_text()))
        assert reports[-1]["verdict"] is True and (tmp_path / "r.html").exists()
    kept = sorted(history.glob("drill-*.json"))
    assert [json.loads(path.read_text()) for path in kept] == reports  # each drill's JSON, none overwritten
    page = _PageText()
    page.feed((history / "history.html").read_text())
    page.close()
    text = " ".join(page.text)
    assert page.fetched == [] and "2 drills" in text
    for report in reports:
        [result] = report["results"]
        assert report["started_at"] in text and f"{result['rto_seconds']:.2f}" in text
        assert f"{result['rpo_seconds']:.2f}" in text
