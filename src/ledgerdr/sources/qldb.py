"""Amazon QLDB (or any QLDB-compatible endpoint) as a backup source, through boto3.

QLDB writes the export into S3 itself; we choose the prefix, ask, then poll
`DescribeJournalS3Export` with backoff. Throttling (`ThrottlingException`) and the two-exports-at-once
quota (`LimitExceededException`) are retried in one place: botocore's adaptive retry mode, which counts
both as throttling. What outlasts its attempts becomes a SourceError that says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3
from amazon.ion import simpleion
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from ..errors import ConfigError, SourceError
from ..journal.codecs import ExportFormat
from ..journal.model import BlockAddress
from ..stores import Location
from .base import Digest, ExportDone

_THROTTLED = {"LimitExceededException", "ThrottlingException"}  # retried by botocore itself
_ATTEMPTS = 8  # botocore's attempts per call, the first included


def client_config(max_attempts: int = _ATTEMPTS) -> BotoConfig:
    """The retry layer of every QLDB call: botocore's adaptive mode (throttling and quota errors included)."""
    return BotoConfig(retries={"mode": "adaptive", "total_max_attempts": max_attempts})


class QldbSource:
    kind = "qldb"

    def __init__(self, ledger: str, *, role_arn: str, region: str | None = None, endpoint_url: str | None = None,
                 client: Any = None, kms_key_arn: str | None = None, max_wait: float = 3600.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ledger_name = ledger
        self.lineage = f"qldb:{ledger}"
        self.role_arn = role_arn
        self.kms_key_arn = kms_key_arn
        self.max_wait = max_wait
        self.sleep = sleep
        self.client = client or boto3.client(
            "qldb", region_name=region, endpoint_url=endpoint_url,
            config=client_config())

    def strand_id(self) -> str | None:
        return self.digest().tip.strand_id

    def first_block_time(self) -> datetime | None:
        created: datetime | None = self._call(self.client.describe_ledger, Name=self.ledger_name).get(
            "CreationDateTime")
        return created

    def export(self, start: datetime, end: datetime, location: Location, prefix: str, fmt: ExportFormat,
               retain_until: datetime | None) -> ExportDone:
        bucket = location.store.properties.bucket
        if bucket is None:
            raise ConfigError("QLDB can export only into S3: the primary repository must be an s3:// location")
        encryption: dict[str, Any] = {"ObjectEncryptionType": "SSE_KMS" if self.kms_key_arn else "SSE_S3"}
        if self.kms_key_arn:
            encryption["KmsKeyArn"] = self.kms_key_arn
        response = self._call(
            self.client.export_journal_to_s3, Name=self.ledger_name, InclusiveStartTime=start, ExclusiveEndTime=end,
            RoleArn=self.role_arn, OutputFormat=fmt.value,
            S3ExportConfiguration={"Bucket": bucket, "Prefix": prefix, "EncryptionConfiguration": encryption})
        export_id = str(response["ExportId"])
        self._wait_until_complete(export_id)
        return ExportDone(export_id, prefix)

    def _wait_until_complete(self, export_id: str) -> None:
        delay, waited = 1.0, 0.0
        while True:
            description = self._call(self.client.describe_journal_s3_export, Name=self.ledger_name, ExportId=export_id)
            status = description["ExportDescription"]["Status"]
            if status == "COMPLETED":
                return
            if status in ("CANCELLED", "FAILED"):
                raise SourceError(f"QLDB export {export_id} of ledger {self.ledger_name} ended {status}",
                                  hint="the window stays unrecorded; the next backup run retries it")
            if waited >= self.max_wait:
                raise SourceError(f"QLDB export {export_id} still {status} after {waited:.0f}s")
            self.sleep(delay)
            waited += delay
            delay = min(delay * 2, 30.0)

    def digest(self) -> Digest:
        response = self._call(self.client.get_digest, Name=self.ledger_name)
        return Digest(bytes(response["Digest"]), _address(response["DigestTipAddress"]["IonText"]))

    def block_proof(self, address: BlockAddress, tip: BlockAddress) -> list[bytes]:
        response = self._call(self.client.get_block, Name=self.ledger_name, BlockAddress={"IonText": str(address)},
                              DigestTipAddress={"IonText": str(tip)})
        return [bytes(h) for h in simpleion.loads(response["Proof"]["IonText"])]

    def _call(self, method: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any]:
        """One API call (`method` is the client's, named as botocore names operations). botocore has retried
        throttling already; every error that reaches here is final for this call."""
        operation = method.__name__
        try:
            return method(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _THROTTLED:
                tries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
                raise SourceError(f"QLDB {operation} on ledger {self.ledger_name}: still throttled ({code}) after "
                                  f"{tries} attempts", hint="QLDB runs at most two exports of a ledger at once; the "
                                  "window stays unrecorded and the next backup run retries it") from None
            if code in ("AccessDeniedException", "AccessDenied"):
                raise SourceError(f"QLDB {operation} on ledger {self.ledger_name}: access denied",
                                  hint="the caller needs qldb:ExportJournalToS3, qldb:DescribeJournalS3Export, "
                                       "qldb:GetDigest, qldb:GetBlock and iam:PassRole on the export role") from None
            if code == "ResourceNotFoundException":
                raise SourceError(f"QLDB ledger {self.ledger_name} not found: {exc}") from None
            raise SourceError(f"QLDB {operation} failed: {exc}") from None


def _address(ion_text: str) -> BlockAddress:
    return BlockAddress.from_ion(simpleion.loads(ion_text))
