"""A program nobody on the team wrote, run unchanged against `ledgerdr serve`: AWS's QLDB shell for Python
(`qldbshell` 1.2.0 from the package registry, with the pyqldb 2 it bundles), in its own venv that
scripts/build-qldbshell-venv.sh builds (`make test` runs it). It is redirected only by botocore's endpoint
variable and fed its commands on standard input, as a person would type them."""

from __future__ import annotations

import os
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest

from ledgerdr.journal.exports import verify_location
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.exporter import export_journal
from ledgerdr.stores.file import FileStore
from support.serve_process import KEY_ID, REGION, ROOT, SECRET, ServeProcess

VENV = ROOT / ".venv-qldbshell"
QLDBSHELL = VENV / "bin" / "qldbshell"


def _why_unavailable() -> str | None:
    if QLDBSHELL.exists():
        return None
    reason = VENV / "UNAVAILABLE"
    detail = reason.read_text().strip() if reason.exists() else "not built (run `make .venv/.test-installed`)"
    return f"qldbshell's venv {VENV.name}: {detail}"


pytestmark = pytest.mark.skipif(_why_unavailable() is not None, reason=_why_unavailable() or "")

COMMANDS = """\
INSERT INTO Car {'vin': 'V1', 'make': 'Tesla'}
start; INSERT INTO Car {'vin': 'V2', 'make': 'Volvo'}; UPDATE Car AS c SET c.year = 2020 WHERE c.vin = 'V1'; commit
SELECT c.vin, c.make, c.year FROM Car AS c WHERE c.vin = 'V1'
SELECT * FROM Nope
exit
"""


def test_qldbshell_runs_unchanged_against_serve(tmp_path):
    data = tmp_path / "data"
    with Ledger.create(data / "shell.db") as ledger:
        ledger.execute("CREATE TABLE Car")
    with ServeProcess(data) as running:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env.update(AWS_ENDPOINT_URL_QLDB_SESSION=running.url, AWS_ACCESS_KEY_ID=KEY_ID,
                   AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION=REGION, TERM="dumb")
        done = subprocess.run([str(QLDBSHELL), "--ledger", "shell"], input=COMMANDS, env=env,
                              capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Exiting QLDB Shell" in output
    # The autocommitted insert and the two-statement transaction each answered with QLDB's shapes.
    assert len(re.findall(r'documentId: "[0-9A-Za-z]{22}"', output)) >= 3, output
    assert re.search(r"Transaction with transaction id [0-9A-Za-z]{22} committed", output), output
    assert re.search(r'vin: "V1",\s*make: "Tesla",\s*year: 2020', output), output
    # An unknown table gets QLDB's own message, which the shell prints as it would against QLDB.
    assert "Semantic Error: at line 1, column 15: No such variable named 'Nope'" in output
    end = datetime.now(UTC) + timedelta(seconds=1)
    time.sleep(1.1)  # an export window must have ended
    with Ledger.open(data / "shell.db", read_only=True) as ledger:
        rows = ledger.execute("SELECT c.vin, c.year FROM Car AS c")
        assert sorted((r["vin"], r.get("year")) for r in rows) == [("V1", 2020), ("V2", None)]
        store = FileStore(str(tmp_path / "export"))
        export_journal(ledger, start=datetime(2000, 1, 1, tzinfo=UTC), end=end, store=store, prefix="",
                       fmt="ion_binary")
    report = verify_location(store)  # the journal the shell's transactions wrote verifies
    assert not report.problems, report.problems
