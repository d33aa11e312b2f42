"""AWS's own QLDB tutorial application (the DMV sample, tests/data/qldb_dmv_sample, unchanged) runs against
`ledgerdr serve` with the real pyqldb driver, redirected only by environment variables: ledger creation,
tables, indexes, inserts, nested inserts, joins, history, Ion types, digests, proofs checked by the
sample's own verifier (and rejected once a bit is flipped), ownership transfers, redaction, deletion protection,
tags and deletion. Each step is the tutorial's `python -m pyqldbsamples.<step>`, in the tutorial's order."""

from __future__ import annotations

import subprocess
from pathlib import Path

from serve_process import PYQLDB_PYTHON, ServeProcess, client_env

SAMPLE = Path(__file__).resolve().parent / "data" / "qldb_dmv_sample"
STEPS = [
    "create_ledger", "list_ledgers", "describe_ledger", "create_table", "create_index", "insert_document",
    "scan_table", "find_vehicles", "add_secondary_owner", "list_tables", "query_history", "insert_ion_types",
    "get_digest", "get_revision", "get_block", "transfer_vehicle_ownership", "register_drivers_license",
    "renew_drivers_license", "deregister_drivers_license", "tag_resource", "deletion_protection",
    "redact_revision", "delete_ledger",
]


def test_the_qldb_tutorial_runs_unchanged_step_by_step(tmp_path):
    # One test, not one per step: the steps build on each other and must run in order against one server
    # (parametrized, pytest-xdist would spread them over workers with a server each).
    with ServeProcess(tmp_path / "dmv-data") as server:
        for step in STEPS:
            done = subprocess.run([str(PYQLDB_PYTHON), "-m", f"pyqldbsamples.{step}"], cwd=SAMPLE,
                                  env=client_env(server.url), capture_output=True, text=True, timeout=300)
            log = done.stdout + done.stderr
            assert done.returncode == 0, f"step {step}:\n{log}"
            assert "Traceback" not in log and "ERROR:" not in log, f"step {step}:\n{log}"
            if step == "get_revision":
                assert "Success! The document is verified." in log and "As expected flipping a bit" in log
            if step == "get_block":
                assert "Success! The block is verified." in log and "As expected flipping a bit" in log
