"""QLDB's API, as far as `QldbSource` uses it, answered by an embedded ledger (under moto's S3).

A handler on the client's `before-send.qldb.*` event returns the HTTP response QLDB would send, so botocore's
parameter validation, response parsing and retries run as against QLDB (see tests/test_qldb_source.py).
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict, deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from amazon.ion import simpleion
from botocore.awsrequest import AWSResponse

from ledgerdr.journal.ids import new_id
from ledgerdr.ledger.engine import Ledger
from ledgerdr.ledger.exporter import export_journal
from ledgerdr.stores.s3 import S3Store

_SSE = {"SSE_S3": "AES256", "SSE_KMS": "aws:kms"}


def ion_address(address: dict[str, Any]) -> str:
    return f'{{strandId:"{address["strandId"]}",sequenceNo:{address["sequenceNo"]}}}'


def _ion_blobs(hashes: list[bytes]) -> str:
    """QLDB prints proofs as an Ion list of blobs: `[{{base64}},{{base64}}]`."""
    return "[" + ",".join("{{" + base64.b64encode(h).decode() + "}}" for h in hashes) + "]"


class SimulatedQldb:
    """The QLDB operations QldbSource uses, answered from an embedded ledger.

    `requests` records every (operation, parameters) QLDB received. `fail[op]` holds error codes to
    answer the next calls of `op` with; `export_scripts` holds, per coming export, the statuses its
    DescribeJournalS3Export calls return (the last one repeats); default IN_PROGRESS, then COMPLETED.
    """

    def __init__(self, ledger: Ledger, s3_client: Any) -> None:
        self.ledger = ledger
        self.s3 = s3_client  # the credentials of QLDB's export role, writing into the bucket
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, deque[str]] = defaultdict(deque)
        self.export_scripts: deque[list[str]] = deque()
        self.exports: dict[str, dict[str, Any]] = {}

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build.qldb", self._stash)
        client.meta.events.register("before-send.qldb", self._answer)
        return client

    def calls(self, operation: str) -> list[dict[str, Any]]:
        return [params for op, params in self.requests if op == operation]

    @staticmethod
    def _stash(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["qldb_params"], context["qldb_operation"] = dict(params), model.name

    def _answer(self, request: Any, **_: Any) -> AWSResponse:
        params = request.context["qldb_params"]
        operation = request.context["qldb_operation"]
        self.requests.append((operation, params))
        if self.fail[operation]:
            code = self.fail[operation].popleft()
            status = 403 if code == "AccessDeniedException" else 400
            return _http(status, {"__type": code, "Message": f"simulated {code}"})
        return _http(200, getattr(self, f"_{operation}")(params))

    # --- operations (named after QLDB's, which is how _answer finds them) ------------------------------

    def _DescribeLedger(self, params: dict[str, Any]) -> dict[str, Any]:
        # A ledger is created a little before its first commit.
        created = self.ledger.first_block_time() - timedelta(seconds=3)
        return {"Name": params["Name"], "State": "ACTIVE", "CreationDateTime": created,
                "PermissionsMode": "STANDARD", "DeletionProtection": True}

    def _ExportJournalToS3(self, params: dict[str, Any]) -> dict[str, Any]:
        config = params["S3ExportConfiguration"]
        encryption = config["EncryptionConfiguration"]
        store = S3Store(config["Bucket"], client=self.s3, lock_mode=None,
                        sse=_SSE[encryption["ObjectEncryptionType"]], kms_key_id=encryption.get("KmsKeyArn"))
        export_id = new_id()
        export_journal(self.ledger, start=params["InclusiveStartTime"], end=params["ExclusiveEndTime"],
                       store=store, prefix=config["Prefix"], fmt=params["OutputFormat"], export_id=export_id)
        script = self.export_scripts.popleft() if self.export_scripts else ["IN_PROGRESS", "COMPLETED"]
        self.exports[export_id] = {"params": params, "statuses": deque(script), "created": datetime.now(UTC)}
        return {"ExportId": export_id}

    def _DescribeJournalS3Export(self, params: dict[str, Any]) -> dict[str, Any]:
        export = self.exports[params["ExportId"]]
        statuses = export["statuses"]
        status = statuses.popleft() if len(statuses) > 1 else statuses[0]
        request = export["params"]
        return {"ExportDescription": {
            "LedgerName": params["Name"], "ExportId": params["ExportId"], "ExportCreationTime": export["created"],
            "Status": status, "InclusiveStartTime": request["InclusiveStartTime"],
            "ExclusiveEndTime": request["ExclusiveEndTime"], "S3ExportConfiguration": request["S3ExportConfiguration"],
            "RoleArn": request["RoleArn"], "OutputFormat": request["OutputFormat"]}}

    def _GetDigest(self, params: dict[str, Any]) -> dict[str, Any]:
        digest = self.ledger.get_digest()
        return {"Digest": bytes(digest["digest"]),
                "DigestTipAddress": {"IonText": ion_address(digest["digestTipAddress"])}}

    def _GetBlock(self, params: dict[str, Any]) -> dict[str, Any]:
        address = simpleion.loads(params["BlockAddress"]["IonText"])
        tip = simpleion.loads(params["DigestTipAddress"]["IonText"])
        block, proof = self.ledger.get_block(int(address["sequenceNo"]), tip=int(tip["sequenceNo"]))
        return {"Block": {"IonText": simpleion.dumps(block, binary=False)}, "Proof": {"IonText": _ion_blobs(proof)}}


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def _json_value(value: Any) -> Any:
    """QLDB's REST-JSON wire form: timestamps as epoch seconds, blobs as base64."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _http(status: int, body: dict[str, Any]) -> AWSResponse:
    return AWSResponse("https://qldb.invalid", status, {"Content-Type": "application/x-amz-json-1.1"},
                       _Body(json.dumps(_json_value(body)).encode()))
