"""The `qldb` control plane (REST-JSON): ledgers, digests, blocks, revisions, tags, exports.

Routes are QLDB's (`botocore/data/qldb/2019-01-02/service-2.json`): `POST /ledgers`, `GET /ledgers/{name}`,
… Timestamps are epoch seconds; addresses, blocks, revisions and proofs travel as Ion text in
`{"IonText": …}` holders, exactly as QLDB returns them, so the drivers' verifiers accept them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from amazon.ion import simpleion

from ..errors import LedgerDRError
from ..journal.model import BlockAddress
from ..ledger.engine import Ledger
from .catalog import Catalog, check_name
from .errors import AwsError, invalid_parameter, not_found
from .exports import Exports
from .session_api import SessionApi


@dataclass(frozen=True)
class ControlRequest:
    method: str
    path: str  # percent-encoded, as sent
    query: dict[str, list[str]]
    body: dict[str, Any]
    region: str


Handler = Callable[[ControlRequest, dict[str, str]], tuple[int, dict[str, Any]]]


def _ion_text(value: Any) -> str:
    return simpleion.dumps(value, binary=False, omit_version_marker=True)


def _proof_text(hashes: list[bytes]) -> str:
    """QLDB prints a proof as an Ion list of blobs: `[{{base64}},…]`."""
    return "[" + ",".join("{{" + base64.b64encode(h).decode() + "}}" for h in hashes) + "]"


def _address(holder: Any, member: str) -> BlockAddress:
    """A `{"IonText": "{strandId: …, sequenceNo: …}"}` holder as a block address."""
    text = holder.get("IonText") if isinstance(holder, dict) else None
    if not isinstance(text, str):
        raise invalid_parameter(f"{member} must be {{\"IonText\": \"{{strandId: …, sequenceNo: …}}\"}}", member)
    try:
        return BlockAddress.from_ion(simpleion.loads(text))
    except Exception as exc:  # amazon.ion and the address reader raise several types on bad input
        raise invalid_parameter(f"{member} is not a block address: {exc}", member) from None


class ControlPlane:
    """Routes a control-plane request to its operation. Thread-safe."""

    def __init__(self, catalog: Catalog, sessions: SessionApi, exports: Exports) -> None:
        self.catalog = catalog
        self.sessions = sessions
        self.exports = exports
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(r"^/ledgers$"), self.create_ledger),
            ("GET", re.compile(r"^/ledgers$"), self.list_ledgers),
            ("GET", re.compile(r"^/ledgers/(?P<name>[^/]+)$"), self.describe_ledger),
            ("PATCH", re.compile(r"^/ledgers/(?P<name>[^/]+)$"), self.update_ledger),
            ("DELETE", re.compile(r"^/ledgers/(?P<name>[^/]+)$"), self.delete_ledger),
            ("PATCH", re.compile(r"^/ledgers/(?P<name>[^/]+)/permissions-mode$"), self.update_permissions_mode),
            ("POST", re.compile(r"^/ledgers/(?P<name>[^/]+)/digest$"), self.get_digest),
            ("POST", re.compile(r"^/ledgers/(?P<name>[^/]+)/block$"), self.get_block),
            ("POST", re.compile(r"^/ledgers/(?P<name>[^/]+)/revision$"), self.get_revision),
            ("POST", re.compile(r"^/ledgers/(?P<name>[^/]+)/journal-s3-exports$"), self.export_to_s3),
            ("GET", re.compile(r"^/ledgers/(?P<name>[^/]+)/journal-s3-exports$"), self.list_exports_for_ledger),
            ("GET", re.compile(r"^/ledgers/(?P<name>[^/]+)/journal-s3-exports/(?P<export>[^/]+)$"),
             self.describe_export),
            ("GET", re.compile(r"^/journal-s3-exports$"), self.list_exports),
            ("POST", re.compile(r"^/tags/(?P<arn>[^/]+)$"), self.tag_resource),
            ("DELETE", re.compile(r"^/tags/(?P<arn>[^/]+)$"), self.untag_resource),
            ("GET", re.compile(r"^/tags/(?P<arn>[^/]+)$"), self.list_tags),
        ]

    def handle(self, request: ControlRequest) -> tuple[int, dict[str, Any]]:
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                return handler(request, {k: unquote(v) for k, v in match.groupdict().items()})
        raise AwsError("UnknownOperationException", f"no QLDB operation at {request.method} {request.path}", 404)

    # ---------------------------------------------------------------------------------- ledgers
    def create_ledger(self, request: ControlRequest, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
        body = request.body
        name = check_name(body.get("Name"))
        tags = body.get("Tags") or {}
        if not isinstance(tags, dict):
            raise invalid_parameter("Tags must be a map of strings", "Tags")
        state = self.catalog.create(
            name, deletion_protection=bool(body.get("DeletionProtection", True)),
            permissions_mode=str(body.get("PermissionsMode", "")), tags={str(k): str(v) for k, v in tags.items()})
        return 200, state.description(request.region)

    def describe_ledger(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        return 200, self.catalog.get(path["name"]).description(request.region)

    def list_ledgers(self, request: ControlRequest, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
        ledgers = []
        for name in self.catalog.names():
            try:
                state = self.catalog.get(name)
            except AwsError:
                continue  # deleted between the listing and the read
            ledgers.append({"Name": state.name, "State": state.state, "CreationDateTime": state.created})
        return 200, {"Ledgers": ledgers}

    def update_ledger(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        changes = {}
        if "DeletionProtection" in request.body:
            changes["deletion_protection"] = bool(request.body["DeletionProtection"])
        return 200, self.catalog.update(path["name"], **changes).description(request.region)

    def update_permissions_mode(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        mode = request.body.get("PermissionsMode")
        if mode not in ("ALLOW_ALL", "STANDARD"):
            raise invalid_parameter(f"PermissionsMode {mode!r} is not ALLOW_ALL or STANDARD", "PermissionsMode")
        state = self.catalog.update(path["name"], permissions_mode=mode)
        return 200, {"Name": state.name, "Arn": state.arn(request.region), "PermissionsMode": mode}

    def delete_ledger(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        name = path["name"]
        state = self.catalog.get(name)
        if state.deletion_protection:
            self.catalog.delete(name)  # raises QLDB's precondition error, and changes nothing
        self.sessions.close_ledger_sessions(name)
        self.catalog.delete(name)
        return 200, {}

    # ---------------------------------------------------------------------------------- journal
    def _ledger(self, name: str) -> Ledger:
        return Ledger.open(self.catalog.active_path(name), read_only=True, durability=self.catalog.durability)

    def get_digest(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._ledger(path["name"]) as ledger:
            digest = _journal_call(ledger.get_digest)
        return 200, {"Digest": base64.b64encode(digest["digest"]).decode(),
                     "DigestTipAddress": {"IonText": _ion_text(digest["digestTipAddress"])}}

    def get_block(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        address = _address(request.body.get("BlockAddress"), "BlockAddress")
        tip = request.body.get("DigestTipAddress")
        with self._ledger(path["name"]) as ledger:
            _same_strand(ledger, address, "BlockAddress")
            tip_address = _address(tip, "DigestTipAddress") if tip is not None else None
            block, proof = _journal_call(ledger.get_block, address.sequence_no, tip_address)
        answer: dict[str, Any] = {"Block": {"IonText": _ion_text(block)}}
        if tip is not None:
            answer["Proof"] = {"IonText": _proof_text(proof)}
        return 200, answer

    def get_revision(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        address = _address(request.body.get("BlockAddress"), "BlockAddress")
        document_id = request.body.get("DocumentId")
        if not isinstance(document_id, str):
            raise invalid_parameter("DocumentId is required", "DocumentId")
        tip = request.body.get("DigestTipAddress")
        with self._ledger(path["name"]) as ledger:
            _same_strand(ledger, address, "BlockAddress")
            tip_address = _address(tip, "DigestTipAddress") if tip is not None else None
            revision, proof = _journal_call(ledger.get_revision, address.sequence_no, document_id, tip_address)
        answer: dict[str, Any] = {"Revision": {"IonText": _ion_text(revision)}}
        if tip is not None:
            answer["Proof"] = {"IonText": _proof_text(proof)}
        return 200, answer

    # ---------------------------------------------------------------------------------- exports
    def export_to_s3(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.catalog.active_path(path["name"])
        return 200, {"ExportId": self.exports.start(path["name"], request.body)}

    def describe_export(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.catalog.get(path["name"])
        return 200, {"ExportDescription": self.exports.describe(path["name"], path["export"])}

    def list_exports_for_ledger(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.catalog.get(path["name"])
        return 200, {"JournalS3Exports": self.exports.list(path["name"])}

    def list_exports(self, request: ControlRequest, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
        return 200, {"JournalS3Exports": self.exports.list(None)}

    # ---------------------------------------------------------------------------------- tags
    def _tagged(self, arn: str) -> str:
        name = arn.rsplit(":ledger/", 1)[-1] if ":ledger/" in arn else None
        if name is None or not arn.startswith("arn:"):
            raise invalid_parameter(f"ResourceArn {arn!r} is not a QLDB ledger ARN", "ResourceArn")
        try:
            check_name(name)
        except AwsError:
            raise not_found(arn) from None
        return name

    def tag_resource(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        name = self._tagged(path["arn"])
        tags = request.body.get("Tags")
        if not isinstance(tags, dict):
            raise invalid_parameter("Tags must be a map of strings", "Tags")
        merged = {**self.catalog.get(name).tags, **{str(k): str(v) for k, v in tags.items()}}
        self.catalog.update(name, tags=merged)
        return 200, {}

    def untag_resource(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        name = self._tagged(path["arn"])
        keys = set(request.query.get("tagKeys", []))
        remaining = {k: v for k, v in self.catalog.get(name).tags.items() if k not in keys}
        self.catalog.update(name, tags=remaining)
        return 200, {}

    def list_tags(self, request: ControlRequest, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        return 200, {"Tags": self.catalog.get(self._tagged(path["arn"])).tags}


def _same_strand(ledger: Ledger, address: BlockAddress, member: str) -> None:
    if address.strand_id != ledger.strand_id:
        raise invalid_parameter(f"{member} names strand {address.strand_id}; this ledger's is {ledger.strand_id}",
                                member)


def _journal_call(fn: Callable[..., Any], *args: Any) -> Any:
    """A journal read whose LedgerError (no block yet, address past the tip) is QLDB's parameter error."""
    try:
        return fn(*args)
    except LedgerDRError as exc:
        raise invalid_parameter(str(exc)) from None
