"""ExportJournalToS3 and the export descriptions, written through ledgerdr's S3 store.

An export runs in a background thread with `export_journal` (QLDB's layout, byte for byte what the
embedded exporter writes) into the bucket and prefix asked for, with the server's own AWS credentials
(QLDB would assume `RoleArn`; the role is recorded, not assumed) and the S3 endpoint botocore is
configured with (`AWS_ENDPOINT_URL_S3`, so any S3-compatible server works). QLDB sets no per-object
retention: the bucket's default Object Lock retention applies. Descriptions are kept in
`DIR/.serve/exports/<ledger>/<exportId>.json`, so they outlive a restart; an export that a restart
interrupted reads as FAILED (it never wrote its completed manifest, so readers see it incomplete).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..journal.codecs import ExportFormat
from ..journal.ids import new_id
from ..ledger.engine import Ledger
from ..stores import open_store
from .catalog import Catalog
from .errors import AwsError, invalid_parameter
from .records import write_json

log = logging.getLogger("ledgerdr.serve")
MAX_EXPORTS_IN_PROGRESS = 2  # per ledger, QLDB's quota
_SSE = {"SSE_S3": "AES256", "SSE_KMS": "aws:kms"}


def _time(value: Any, member: str) -> datetime:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise invalid_parameter(f"{member} must be a timestamp", member)
    return datetime.fromtimestamp(value, UTC)


class Exports:
    """Starts exports and answers their descriptions. Thread-safe."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.dir = catalog.dir / ".serve" / "exports"
        self._lock = threading.Lock()
        self._running: set[str] = set()

    def start(self, ledger_name: str, body: dict[str, Any]) -> str:
        """Validate the request, record it IN_PROGRESS and start it; returns the export id."""
        start = _time(body.get("InclusiveStartTime"), "InclusiveStartTime")
        end = _time(body.get("ExclusiveEndTime"), "ExclusiveEndTime")
        if start >= end:
            raise invalid_parameter("InclusiveStartTime must be before ExclusiveEndTime", "InclusiveStartTime")
        if end > datetime.now(UTC):
            raise invalid_parameter("ExclusiveEndTime must not be in the future", "ExclusiveEndTime")
        config = body.get("S3ExportConfiguration")
        if not isinstance(config, dict) or not isinstance(config.get("Bucket"), str):
            raise invalid_parameter("S3ExportConfiguration.Bucket is required", "S3ExportConfiguration")
        encryption = config.get("EncryptionConfiguration") or {}
        if encryption.get("ObjectEncryptionType") not in _SSE:
            raise invalid_parameter("EncryptionConfiguration.ObjectEncryptionType must be SSE_S3 or SSE_KMS",
                                    "EncryptionConfiguration")
        try:
            fmt = ExportFormat.parse(body.get("OutputFormat") or "ION_TEXT")
        except ConfigError as exc:
            raise invalid_parameter(str(exc), "OutputFormat") from None
        export_id = new_id()
        record = {
            "LedgerName": ledger_name, "ExportId": export_id, "ExportCreationTime": datetime.now(UTC).timestamp(),
            "Status": "IN_PROGRESS", "InclusiveStartTime": start.timestamp(), "ExclusiveEndTime": end.timestamp(),
            "S3ExportConfiguration": {"Bucket": config["Bucket"], "Prefix": str(config.get("Prefix") or ""),
                                      "EncryptionConfiguration": encryption},
            "RoleArn": str(body.get("RoleArn") or ""), "OutputFormat": fmt.value,
        }
        with self._lock:
            running = sum(1 for key in self._running if key.startswith(ledger_name + "/"))
            if running >= MAX_EXPORTS_IN_PROGRESS:
                raise AwsError("LimitExceededException",
                               f"Ledger {ledger_name} already has {running} exports in progress", 400,
                               ResourceType="JOURNAL_S3_EXPORT")
            self._running.add(f"{ledger_name}/{export_id}")
            self._write(record)
        threading.Thread(target=self._run, args=(record, start, end, fmt), daemon=True,
                         name=f"export-{export_id}").start()
        return export_id

    def _run(self, record: dict[str, Any], start: datetime, end: datetime, fmt: ExportFormat) -> None:
        config = record["S3ExportConfiguration"]
        encryption = config["EncryptionConfiguration"]
        try:
            store = open_store(f"s3://{config['Bucket']}", lock_mode=None,
                               sse=_SSE[encryption["ObjectEncryptionType"]], kms_key_id=encryption.get("KmsKeyArn"))
            with Ledger.open(self.catalog.path(record["LedgerName"]), read_only=True) as ledger:
                from ..ledger.exporter import export_journal  # the exporter pulls in the Ion codecs

                export_journal(ledger, start=start, end=end, store=store, prefix=config["Prefix"], fmt=fmt,
                               export_id=record["ExportId"])
            record["Status"] = "COMPLETED"
        except Exception:  # the client learns FAILED from DescribeJournalS3Export; the reason goes to the log
            log.exception("export %s of ledger %s failed", record["ExportId"], record["LedgerName"])
            record["Status"] = "FAILED"
        with self._lock:
            self._write(record)
            self._running.discard(f"{record['LedgerName']}/{record['ExportId']}")

    def describe(self, ledger_name: str, export_id: str) -> dict[str, Any]:
        path = self.dir / ledger_name / f"{export_id}.json"
        if not export_id.isalnum() or not path.is_file():
            raise AwsError("ResourceNotFoundException", f"Export {export_id} of ledger {ledger_name} does not exist",
                           404, ResourceType="JOURNAL_S3_EXPORT", ResourceName=export_id)
        return self._read(path)

    def list(self, ledger_name: str | None) -> list[dict[str, Any]]:
        pattern = f"{ledger_name}/*.json" if ledger_name else "*/*.json"
        records = [self._read(path) for path in self.dir.glob(pattern)]
        return sorted(records, key=lambda r: r["ExportCreationTime"])

    def _read(self, path: Path) -> dict[str, Any]:
        # Read under the lock that `_run` holds while it writes the outcome and leaves `_running`: a record
        # read just before that write and checked just after it would be an IN_PROGRESS export no longer
        # running, and reported FAILED although it completed.
        with self._lock:
            record = json.loads(path.read_text())
            key = f"{record['LedgerName']}/{record['ExportId']}"
            if record["Status"] == "IN_PROGRESS" and key not in self._running:
                record["Status"] = "FAILED"  # interrupted by a restart of the server
        return record

    def _write(self, record: dict[str, Any]) -> None:
        write_json(self.dir / record["LedgerName"] / f"{record['ExportId']}.json", record)
