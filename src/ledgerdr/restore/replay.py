"""Statement replay: the reference architecture's restore, kept only as a baseline (DESIGN "Restore semantics").

The reference's restore Lambda read each exported object, kept the statements of
`transactionInfo.statements` that start with `INSERT INTO`, `UPDATE` or `DELETE` (case-insensitive),
and executed each one as text in the new ledger with a driver created for that object, passing
`revisions[0].data` as the parameter. This module does exactly that against the embedded ledger,
including its losses, so that they can be measured:

- journal statements carry `?` placeholders and no values: a statement with more than one `?` fails
  (the single parameter does not match), and one with a single `?` gets a whole document where it
  expected a key or an id (an `UPDATE ... WHERE id = ?` then matches nothing);
- only `revisions[0]` is used: a 40-document insert restores one document;
- a delete's `revisions[0]` has no `data`, so the reference's `revisions[0]['data']` raises;
- every inserted document gets a new id, version and transaction time;
- nothing is verified and nothing is idempotent (running it twice applies everything twice).

One deviation, stated here because it favours the baseline: the reference ran against a ledger whose
tables already existed. A fresh target has none, so the `CREATE TABLE` / `CREATE INDEX` statements of
the journal are executed first, and timed apart (`ddl_seconds`, not in `seconds`).

After the replay, the result is compared with the *verified* journal (`load_unit`): the restore state
digest of both sides (CONTRACTS §8), and per table how many current documents have equal data (Ion
hash, as a multiset), how many are missing or extra, and how many kept their document id.
"""

from __future__ import annotations

import multiprocessing
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import repeat
from operator import methodcaller
from pathlib import Path

from ..errors import ConfigError, LedgerDRError
from ..journal.codecs import ExportFormat, read_blocks
from ..journal.hashing import ion_hash
from ..journal.ionread import binary_ion_hash
from ..journal.model import Block
from ..ledger.driver import LedgerDriver
from ..ledger.engine import Ledger
from ..stores import Location, Store, open_location
from ..targets.digest import (
    PackedJournal,
    digest_of_packed_journal,
    digest_of_target,
    journal_entries,
    pack_history_rows,
    pack_journal,
)
from ..targets.embedded import EmbeddedTarget
from ..targets.embedded_state import loads
from .plan import plan_restore
from .rows import load_rows
from .shapes import WorkUnit
from .units import load_unit

DML_PREFIXES = ("INSERT INTO", "UPDATE", "DELETE")  # what the reference kept, compared upper-cased
DDL_PREFIXES = ("CREATE TABLE", "CREATE INDEX")
# An object whose bytes never spell "create table|index" holds no such statement in any export format
# (Ion and JSON keep statement text as UTF-8), so the DDL pass decodes only the objects that do.
_DDL_BYTES = re.compile(rb"(?i)create\s+(?:table|index)")
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class TableComparison:
    """One table's current documents, journal vs replay target, matched by Ion hash of their data."""

    table: str
    journal_documents: int
    target_documents: int
    matching: int  # documents with equal data on both sides (as a multiset)
    missing: int  # journal documents that have no equal document in the target
    extra: int  # target documents that have no equal document in the journal
    ids_preserved: int  # target documents whose id is one of the journal's live ids


@dataclass(frozen=True)
class ReplayComparison:
    """The replay target against the verified journal's final state."""

    journal_state_digest: str
    target_state_digest: str
    journal_revisions: int  # distinct document revisions in the journal
    target_revisions: int  # history rows in the target
    journal_documents: int  # live documents at the journal's end
    target_documents: int
    documents_matching: int
    documents_missing: int
    documents_extra: int
    ids_preserved: int
    tables: tuple[TableComparison, ...]

    @property
    def identical(self) -> bool:
        return self.journal_state_digest == self.target_state_digest


@dataclass(frozen=True)
class ReplayReport:
    source: str
    target: str
    workers: int
    objects: int
    drivers_created: int  # one per object, as the reference's Lambda did per SQS message
    blocks: int
    journal_revisions: int  # document revisions in the replayed blocks
    statements: int  # statements in the replayed blocks' transactionInfo, SELECTs included
    statements_selected: int  # those starting with INSERT INTO / UPDATE / DELETE
    statements_replayed: int  # executed without error
    statements_without_effect: int  # executed without error but changed no document
    statements_failed: int
    failure_reasons: dict[str, int]
    failure_examples: tuple[str, ...]
    ddl_statements: int  # CREATE TABLE / CREATE INDEX run first (see the module docstring)
    ddl_failed: int
    seconds: float  # the replay itself: plan, drivers, statements
    ddl_seconds: float
    compare_seconds: float
    comparison: ReplayComparison | None = None

    @property
    def revisions_per_second(self) -> float:
        return self.journal_revisions / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict:
        out = asdict(self)
        out["revisions_per_second"] = round(self.revisions_per_second, 1)
        if self.comparison is not None:
            out["comparison"]["identical"] = self.comparison.identical
        return out


@dataclass
class _Tally:
    """What replaying one object did; summed over objects (picklable, so process workers return it)."""

    blocks: int = 0
    revisions: int = 0
    statements: int = 0
    selected: int = 0
    replayed: int = 0
    without_effect: int = 0
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def fail(self, block: Block, statement: str, exc: BaseException) -> None:
        self.failed += 1
        self.reasons[_reason(exc)] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"block {block.sequence_no}: {statement!r}: {type(exc).__name__}: {exc}")

    def add(self, other: _Tally) -> None:
        for name in ("blocks", "revisions", "statements", "selected", "replayed", "without_effect", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.reasons.update(other.reasons)
        self.examples.extend(other.examples[: MAX_EXAMPLES - len(self.examples)])


def replay_statements(source_url: str, target_path: str | Path, *, workers: int = 0,
                      compare: bool = True) -> ReplayReport:
    """Replay the exports under `source_url` as statements into a new embedded ledger at `target_path`.

    `workers` 0 replays the objects in order in this process; N > 0 shares them among N processes, in
    no particular order, as the reference's SQS-fed Lambdas did. Statement failures are counted, never
    raised. Raises ConfigError if `target_path` exists (a replay is not idempotent: it would apply
    everything twice), RestoreError from planning (gap, nothing to restore), and, when `compare`,
    VerificationError if the journal itself fails verification.
    """
    target_path = Path(target_path)
    if target_path.exists():
        raise ConfigError(f"replay target {target_path} exists: statement replay is not idempotent, so it "
                          "only runs into a new ledger", hint="choose a new path or remove the old one")
    location = open_location(source_url)
    plan = plan_restore(location)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    Ledger.create(target_path).close()
    started = time.perf_counter()
    ddl, ddl_failed = _create_tables(location.store, plan.units, target_path)
    ddl_seconds = time.perf_counter() - started
    started = time.perf_counter()
    tally = _Tally()
    for one in _replay_units(source_url, plan.units, target_path, workers):
        tally.add(one)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    comparison = compare_with_journal(location, plan.units, target_path) if compare else None
    return ReplayReport(
        source=source_url, target=str(target_path), workers=workers, objects=len(plan.units),
        drivers_created=len(plan.units), blocks=tally.blocks, journal_revisions=tally.revisions,
        statements=tally.statements, statements_selected=tally.selected, statements_replayed=tally.replayed,
        statements_without_effect=tally.without_effect, statements_failed=tally.failed,
        failure_reasons=dict(tally.reasons.most_common()), failure_examples=tuple(tally.examples),
        ddl_statements=ddl, ddl_failed=ddl_failed, seconds=round(seconds, 3), ddl_seconds=round(ddl_seconds, 3),
        compare_seconds=round(time.perf_counter() - started, 3) if compare else 0.0, comparison=comparison,
    )


# ------------------------------------------------------------------------------------------ the replay


def _blocks_of(store: Store, unit: WorkUnit, data: bytes | None = None) -> Iterator[Block]:
    """The unit's blocks, decoded without any check: the reference verified nothing."""
    data = store.get(unit.key) if data is None else data
    for block in read_blocks(data, ExportFormat.parse(unit.fmt)):
        if unit.first_seq <= block.sequence_no <= unit.last_seq:
            yield block


def _create_tables(store: Store, units: Sequence[WorkUnit], target_path: Path) -> tuple[int, int]:
    """Run the journal's CREATE TABLE / CREATE INDEX statements, in journal order; (run, failed)."""
    run = failed = 0
    with LedgerDriver(target_path) as driver:
        for unit in units:
            data = store.get(unit.key)
            if not _DDL_BYTES.search(data):
                continue
            for block in _blocks_of(store, unit, data):
                for statement in block.statements():
                    if not statement.lstrip().upper().startswith(DDL_PREFIXES):
                        continue
                    try:
                        driver.execute_lambda(methodcaller("execute_statement", statement))
                        run += 1
                    except LedgerDRError:
                        failed += 1
    return run, failed


def _replay_units(source_url: str, units: Sequence[WorkUnit], target_path: Path, workers: int) -> Iterable[_Tally]:
    if workers <= 0:
        store = open_location(source_url).store
        return [_replay_unit(store, unit, target_path) for unit in units]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(_replay_unit_in_process, repeat(source_url), [u.to_bytes() for u in units],
                             repeat(str(target_path))))


def _replay_unit_in_process(source_url: str, unit: bytes, target_path: str) -> _Tally:
    return _replay_unit(open_location(source_url).store, WorkUnit.from_bytes(unit), Path(target_path))


def _replay_unit(store: Store, unit: WorkUnit, target_path: Path) -> _Tally:
    """Replay one object with a driver of its own, as the reference's per-message Lambda did."""
    tally = _Tally()
    with LedgerDriver(target_path) as driver:
        for block in _blocks_of(store, unit):
            tally.blocks += 1
            tally.revisions += sum(1 for r in block.revisions if "metadata" in r)
            for statement in block.statements():
                tally.statements += 1
                if statement.upper().startswith(DML_PREFIXES):
                    tally.selected += 1
                    _replay_statement(driver, block, statement, tally)
    return tally


def _replay_statement(driver: LedgerDriver, block: Block, statement: str, tally: _Tally) -> None:
    """One statement in its own transaction, with `revisions[0].data` as the parameter where it has a `?`."""
    try:
        # Indexing exactly as the reference did: a block without revisions raises IndexError, a delete's
        # revisions[0] (metadata only) raises KeyError.
        params = (block.revisions[0]["data"],) if "?" in statement else ()
        changed = driver.execute_lambda(lambda txn: list(txn.execute_statement(statement, *params)))
    except Exception as exc:  # every failure is counted; the reference only logged it
        tally.fail(block, statement, exc)
        return
    tally.replayed += 1
    if not changed:
        tally.without_effect += 1


def _reason(exc: BaseException) -> str:
    """A failure's class: its type and message with numbers blurred, so equal causes count together."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {re.sub(r'[0-9]+', 'N', text)[:120]}"


# ------------------------------------------------------------------------------------------ the comparison


def compare_with_journal(location: Location, units: Sequence[WorkUnit], target_path: Path) -> ReplayComparison:
    """Compare the ledger at `target_path` with the final state of the verified journal.

    Reads and verifies every unit again, one at a time (`_unit_journal`), so the reference point is verified; what
    is kept of it is its packed digest entries and, per document, its newest version's content key. Then the target's
    stored rows are hashed (`digest_of_target`) and its current documents keyed from their stored bytes. Both
    digests fold every table as active: the journal's DDL is not interpreted here. Opens the target as an
    `EmbeddedTarget`, which adds its restore bookkeeping tables to the file. Raises VerificationError if the
    journal does not verify.
    """
    journals: list[PackedJournal] = []
    redactions: list[tuple[str, str, int]] = []
    newest: dict[tuple[str, str], tuple[int, str, bytes | None]] = {}
    for unit in units:
        journal, erased, documents = _unit_journal(location.store, unit)
        journals.append(journal)
        redactions.extend(erased)
        _keep_newest(newest, documents)
    journal_digest = digest_of_packed_journal(journals, redactions)
    del journals
    journal_docs: dict[str, dict[str, bytes]] = {}
    for (_, document_id), (_, table_name, key) in newest.items():
        if key is not None:  # not a delete
            journal_docs.setdefault(table_name, {})[document_id] = key
    del newest
    target = EmbeddedTarget(target_path)
    try:
        target_digest = digest_of_target(target, statuses=False)
        target_docs = _target_documents(target)
    finally:
        target.close()
    tables = tuple(_compare_table(name, journal_docs.get(name, {}), target_docs.get(name, {}))
                   for name in sorted(journal_docs.keys() | target_docs.keys()))
    return ReplayComparison(
        journal_state_digest=journal_digest.digest, target_state_digest=target_digest.digest,
        journal_revisions=journal_digest.revisions, target_revisions=target_digest.revisions,
        journal_documents=sum(t.journal_documents for t in tables),
        target_documents=sum(t.target_documents for t in tables),
        documents_matching=sum(t.matching for t in tables), documents_missing=sum(t.missing for t in tables),
        documents_extra=sum(t.extra for t in tables), ids_preserved=sum(t.ids_preserved for t in tables),
        tables=tables,
    )


_Document = tuple[str, str, str, int, bytes | None]  # table id, table name, document id, version, content key


def _unit_journal(store: Store, unit: WorkUnit) -> tuple[PackedJournal, list[tuple[str, str, int]], list[_Document]]:
    """A unit verified: its packed digest entries, its redaction keys and, per revision, the document it leaves
    (content key None: a delete). From the C verifier's rows where it reads the unit (`restore.rows`), as a
    restore's worker takes them, else from `load_unit`'s revisions."""
    rows = load_rows(store, unit)
    if rows is not None:
        return pack_history_rows(rows.rows, rows.names), [], [
            (row[0], rows.names[row[0]], row[1], row[2],
             None if row[3] is None and row[8] is None else _content_key(None, row[8], row[3])) for row in rows.rows]
    content = load_unit(store, unit)
    return pack_journal(journal_entries(content.revisions)), [r.key for r in content.redactions], [
        (r.table_id, r.table_name, r.document_id, r.version,
         None if r.deleted else _content_key(r.data, r.data_hash, r.ion)) for r in content.revisions]


def _keep_newest(newest: dict[tuple[str, str], tuple[int, str, bytes | None]], documents: Iterable[_Document]) -> None:
    """Per (table id, document id): the newest version seen, its table's name and its content key (None: a
    delete), updated with these."""
    for table_id, table_name, document_id, version, content in documents:
        known = newest.get((table_id, document_id))
        if known is None or version > known[0]:
            newest[(table_id, document_id)] = (version, table_name, content)


def _target_documents(target: EmbeddedTarget) -> dict[str, dict[str, bytes]]:
    """table name -> {document id: content key} of the target's current documents, keyed from their bytes."""
    out: dict[str, dict[str, bytes]] = {}
    for table_id, name in target.table_names().items():
        for row in target.storage.documents(table_id):
            out.setdefault(name, {})[row.doc_id] = _content_key(None, row.data_hash, row.data)
    return out


def _content_key(data: object, data_hash: bytes | None, ion: bytes | None = None) -> bytes:
    """Ion hash of a document's data, from its Ion binary bytes `ion` where they are known (C; or decoded when that
    reader declines them); a redacted revision's dataHash is that same hash."""
    if ion is not None:
        return binary_ion_hash(ion) or ion_hash(loads(ion))
    return ion_hash(data) if data is not None else bytes(data_hash or b"")


def _compare_table(name: str, journal: dict[str, bytes], target: dict[str, bytes]) -> TableComparison:
    want, have = Counter(journal.values()), Counter(target.values())
    return TableComparison(
        table=name, journal_documents=len(journal), target_documents=len(target),
        matching=sum((want & have).values()), missing=sum((want - have).values()),
        extra=sum((have - want).values()), ids_preserved=len(journal.keys() & target.keys()),
    )
