"""Which of a repository's records are signed by a trusted key: what `verify --trusted-key` reports and what
`restore` refuses on (docs/format.md, "Signed records").

Every JSON object under `<prefix>_ledgerdr/` is a record ledgerdr wrote through `repository.put_record`
(window records, watermarks, snapshot manifests, incarnations, prune records); each must carry a signature
by a trusted key that verifies over the record as stored. Snapshot parts and export objects need none: the
signed records hold their sha256.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from .errors import RestoreError, StoreError
from .journal.verify import Problem
from .repository import RECORDS
from .signing import SignatureError, TrustedKeys, verify_document
from .stores import Location


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
    for info in location.store.list(location.folder(RECORDS)):
        if not info.key.endswith(".json"):
            continue
        report.records += 1
        try:
            key_id = verify_document(orjson.loads(location.store.get(info.key)), trusted)
        except SignatureError as exc:
            report.problems.append(Problem(exc.kind, info.key, None, f"record {str(exc)}"))
            continue
        except (StoreError, orjson.JSONDecodeError) as exc:
            report.problems.append(Problem("unreadable_record", info.key, None, f"record cannot be read to check "
                                           f"its signature: {exc}"))
            continue
        report.signed_by[key_id] = report.signed_by.get(key_id, 0) + 1
    if not report.records:  # e.g. a raw QLDB export: whoever wrote it, nothing vouches for it
        report.problems.append(Problem("unsigned_record", location.folder(RECORDS), None, "no ledgerdr record "
                                       "here carries a signature (there are none): nothing can be checked "
                                       "against the trusted keys"))
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
