"""ExportJournalToS3 through `ledgerdr serve` into moto's S3 server, and ledgerdr's own backup flow with
`source.kind = "qldb"` pointed at `serve`, end to end: every process talks HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from ledgerdr.ledger.engine import Ledger
from support.backups import ledger_with_history, recent_base, write_config
from support.s3 import make_bucket
from support.serve_process import KEY_ID, REGION, SECRET, ServeProcess

LEDGERDR = str(Path(sys.executable).parent / "ledgerdr")
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}


@pytest.fixture
def moto_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def served(tmp_path, moto_url):
    """A served data directory holding a ledger with four closed minutes of history."""
    data = tmp_path / "data"
    data.mkdir()
    base = recent_base()
    ledger_with_history(data / "orders.db", base)
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    make_bucket(s3, "exports")
    # serve writes exports with its own credentials, to the endpoint botocore's variable names.
    with ServeProcess(data, env={**S3_CREDENTIALS, "AWS_ENDPOINT_URL_S3": moto_url}) as server:
        yield server, base


def _verify(location: str, moto_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **S3_CREDENTIALS, "AWS_ENDPOINT_URL_S3": moto_url}
    return subprocess.run([LEDGERDR, "verify", location, "--json"], env=env, capture_output=True, text=True,
                          timeout=120)


def test_export_journal_to_s3_writes_an_export_that_ledgerdr_verify_accepts(served, moto_url):
    server, base = served
    qldb = boto3.client("qldb", endpoint_url=server.url, region_name=REGION, aws_access_key_id=KEY_ID,
                        aws_secret_access_key=SECRET)
    export_id = qldb.export_journal_to_s3(
        Name="orders", InclusiveStartTime=base - timedelta(minutes=1), ExclusiveEndTime=datetime.now(UTC),
        RoleArn="arn:aws:iam::000000000000:role/qldb-export", OutputFormat="ION_TEXT",
        S3ExportConfiguration={"Bucket": "exports", "Prefix": "direct/",
                               "EncryptionConfiguration": {"ObjectEncryptionType": "SSE_S3"}})["ExportId"]
    for _ in range(200):
        status = qldb.describe_journal_s3_export(Name="orders", ExportId=export_id)["ExportDescription"]["Status"]
        if status != "IN_PROGRESS":
            break
        time.sleep(0.05)
    assert status == "COMPLETED"
    listed = qldb.list_journal_s3_exports_for_ledger(Name="orders")["JournalS3Exports"]
    assert [e["ExportId"] for e in listed] == [export_id]
    assert [e["ExportId"] for e in qldb.list_journal_s3_exports()["JournalS3Exports"]] == [export_id]
    checked = _verify("s3://exports/direct/", moto_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["blocks"] > 0 and report["problems"] == []


def test_backup_with_a_qldb_source_runs_against_serve(served, moto_url, tmp_path):
    server, _ = served
    config = write_config(
        tmp_path / "ledgerdr.toml",
        {"primary": {"url": "s3://exports/qldb-dr", "endpoint_url": moto_url, "region": REGION}},
        source={"kind": "qldb", "ledger": "orders", "region": REGION, "endpoint_url": server.url,
                "role_arn": "arn:aws:iam::000000000000:role/qldb-export"})
    # The backup's own S3 calls go to moto (its endpoint_url); QLDB calls go to serve, signed with serve's key.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": REGION}
    done = subprocess.run([LEDGERDR, "backup", "--once", "--json", "-c", str(config)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    checked = _verify("s3://exports/qldb-dr/", moto_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with Ledger.open(server.data / "orders.db", read_only=True) as ledger:
        assert json.loads(checked.stdout)["blocks"] == ledger.block_count  # every closed window, no gap
