"""Which of a repository's records are signed by a trusted key: what `verify --trusted-key` reports and what
`restore` refuses on (docs/format.md, "Signed records").

Every JSON object under `<prefix>_ledgerdr/` is a record ledgerdr wrote through `repository.put_record`
(window records, watermarks, snapshot manifests, incarnations, prune records); each must carry a signature
by a trusted key that verifies over the record as stored. Snapshot parts and export objects need none: the
signed records hold their sha256.

Records written before signing was turned on stay unsigned (nothing is ever rewritten). `attest` vouches for
them: one signed *attestation* record (`_ledgerdr/attestations/`) lists each unsigned record's key and the
sha256 of its bytes, and an unsigned record whose exact bytes a trusted attestation lists is accepted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from .errors import ConfigError, RestoreError, StoreError
from .journal.ids import new_id
from .journal.verify import Problem
from .repository import RECORDS, iso_ms, put_record
from .signing import SIGNATURE, SignatureError, TrustedKeys, verify_document
from .stores import Location

ATTESTATIONS = RECORDS + "attestations/"


@dataclass
class TrustReport:
    records: int = 0  # record keys checked
    signed_by: dict[str, int] = field(default_factory=dict)  # key id -> records it signed that verify
    problems: list[Problem] = field(default_factory=list)  # one per record refused, naming its key

    def to_json(self) -> dict:
        return {"records": self.records, "signed_by": self.signed_by,
                "refused": [p.key for p in self.problems]}


def check_records(location: Location, trusted: TrustedKeys) -> TrustReport:
    """Every record under `location` checked against `trusted`. Raises StoreError when the listing fails; a
    record that cannot be fetched or parsed is a problem (a record nobody can check is not trusted)."""
    report = TrustReport()
    records = _read_records(location, report)
    attested = _attested(records, location, trusted)
    for key, (data, doc) in records.items():
        try:
            key_id = _accepted(key[len(location.prefix):], data, doc, trusted, attested)
        except SignatureError as exc:
            report.problems.append(Problem(exc.kind, key, None, f"record {exc}"))
            continue
        report.signed_by[key_id] = report.signed_by.get(key_id, 0) + 1
    if not report.records:  # e.g. a raw QLDB export: whoever wrote it, nothing vouches for it
        report.problems.append(Problem("unsigned_record", location.folder(RECORDS), None, "no ledgerdr record "
                                       "here carries a signature (there are none): nothing can be checked "
                                       "against the trusted keys"))
    return report


def _read_records(location: Location, report: TrustReport) -> dict[str, tuple[bytes, object]]:
    """Each record's bytes and parsed JSON, by key; one that cannot be read is a problem in `report`."""
    records = {}
    for info in location.store.list(location.folder(RECORDS)):
        if not info.key.endswith(".json"):
            continue
        report.records += 1
        try:
            data = location.store.get(info.key)
            records[info.key] = (data, orjson.loads(data))
        except (StoreError, orjson.JSONDecodeError) as exc:
            report.problems.append(Problem("unreadable_record", info.key, None, f"record cannot be read to check "
                                           f"its signature: {exc}"))
    return records


def _attested(records: dict[str, tuple[bytes, object]], location: Location,
              trusted: TrustedKeys) -> dict[str, tuple[str, str]]:
    """record key (relative to the repository) -> (sha256, key id) for every record a trusted, valid
    attestation vouches for."""
    out: dict[str, tuple[str, str]] = {}
    prefix, folder = location.prefix, location.folder(ATTESTATIONS)
    for key, (_data, doc) in records.items():
        if not key.startswith(folder) or not isinstance(doc, dict):
            continue
        try:
            key_id = verify_document(doc, trusted, name=key[len(prefix):])
        except SignatureError:
            continue  # refused in its own right by check_records
        listed = doc.get("records")
        for record, sha256 in (listed.items() if isinstance(listed, dict) else ()):
            out[record] = (sha256, key_id)
    return out


def _accepted(key: str, data: bytes, doc: object, trusted: TrustedKeys,
              attested: dict[str, tuple[str, str]]) -> str:
    """The key id that vouches for record `key` (relative to the repository): its own signature's, made for
    that key, or a trusted attestation's for its exact bytes when it is unsigned. Raises SignatureError."""
    if isinstance(doc, dict) and SIGNATURE not in doc and key in attested:
        sha256, key_id = attested[key]
        if hashlib.sha256(data).hexdigest() == sha256:
            return key_id
        raise SignatureError("bad_signature", f"differs from the bytes attestation by key {key_id} vouches for "
                             "(sha256): it was changed after it was attested")
    return verify_document(doc, trusted, name=key)


@dataclass
class AttestReport:
    unsigned: dict[str, str] = field(default_factory=dict)  # record key -> sha256 of its bytes
    key: str | None = None  # the attestation written (None: a dry run, or nothing to attest)
    key_id: str | None = None


def attest_unsigned(location: Location, *, confirm: bool, now: datetime | None = None) -> AttestReport:
    """Vouch for the records under `location` that carry no signature (written before signing was turned on):
    one attestation record, signed by the location's signer, listing each one's key and sha256. Dry run
    unless `confirm`. Raises ConfigError when the location has no signer, StoreError."""
    if location.signer is None:
        raise ConfigError("attest needs a signing key ([signing] key in the config)")
    report = AttestReport(key_id=location.signer.key_id)  # loads the key before anything is read
    records = _read_records(location, TrustReport())  # one that cannot be read is not vouched for
    done = _attested(records, location, TrustedKeys([location.signer.public_key]))
    for key, (data, doc) in records.items():
        sha256, name = hashlib.sha256(data).hexdigest(), key[len(location.prefix):]
        if isinstance(doc, dict) and SIGNATURE not in doc and done.get(name, ("",))[0] != sha256:
            report.unsigned[name] = sha256
    if confirm and report.unsigned:
        moment = now or datetime.now(UTC)
        report.key = location.key(f"{ATTESTATIONS}{moment.strftime('%Y%m%dT%H%M%S')}Z-{new_id()}.json")
        put_record(location, report.key, {"format_version": 1, "attested_at": iso_ms(moment),
                                          "records": report.unsigned})
    return report


def refuse_untrusted(location: Location, trusted: TrustedKeys) -> TrustReport:
    """`check_records`, raising RestoreError naming the first refused record (and how many more) when any is
    unsigned, signed by a key not trusted, or altered: a restore `verify` would refuse must not run."""
    report = check_records(location, trusted)
    if report.problems:
        first, more = report.problems[0], len(report.problems) - 1
        raise RestoreError(f"{first.kind} at {first.key}: {first.detail}"
                           + (f" (and {more} more record(s) refused)" if more else ""),
                           hint="run `ledgerdr verify` with the same trusted keys to list every refused record")
    return report
