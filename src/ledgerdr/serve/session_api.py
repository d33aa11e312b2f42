"""`QLDBSession.SendCommand`: sessions, transactions, statements, pages and commit digests.

Each session owns its own connection to its ledger's file (a `Ledger`) for its reads, so sessions
run in parallel; their commits go to the ledger's `GroupCommitter` (committer.py), which commits the
transactions queued together in one SQLite transaction (one fsync), each still checked by the
engine's OCC rules: a loser gets `OccConflictException` and the driver retries its lambda, as
against QLDB.

The commit digest is computed as pyqldb computes it (`pyqldb/util/qldb_hash.py`, `transaction.py`):
`H(transactionId)`, then for every ExecuteStatement sent, `dot` with
`H(statement) dot H(parameter 1) dot …`, where H is the Ion Hash (SHA-256). A CommitTransaction whose
digest differs is refused with BadRequestException and the transaction is aborted: the client and the
server disagree on what the transaction ran.

Limits, as QLDB's: a transaction expires 30 s after it started (InvalidSessionException "Transaction
… has expired", which drivers do not retry); a session expires after 15 idle minutes
(InvalidSessionException, which drivers answer with a new session); each parameter ≤ 128 KiB; pages
of at most 200 values.
"""

from __future__ import annotations

import binascii
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from amazon.ion.core import IonType
from amazon.ion.simple_types import (
    IonPyBool,
    IonPyDecimal,
    IonPyDict,
    IonPyFloat,
    IonPyInt,
    IonPyList,
    IonPyText,
)

from .. import native
from ..errors import LedgerError, OccConflict, QuotaExceeded
from ..journal.hashing import _dict_store, dot, ion_hash
from ..journal.ionload import load_value_hashed, load_walked
from ..ledger.driver import check_parameter_size, ion_binary
from ..ledger.engine import Ledger
from ..ledger.staged import MAX_TRANSACTION_SECONDS
from ..ledger.transaction import Transaction
from . import messages
from .catalog import Catalog
from .committer import GroupCommitter
from .errors import AwsError, bad_request

log = logging.getLogger("ledgerdr.serve")

PAGE_SIZE = 200
SESSION_IDLE_SECONDS = 15 * 60
_COMMANDS = ("StartSession", "StartTransaction", "ExecuteStatement", "FetchPage", "CommitTransaction",
             "AbortTransaction", "EndSession")
_COMMAND_NAMES = frozenset(_COMMANDS)


def _invalid_session(message: str) -> AwsError:
    return AwsError("InvalidSessionException", message, 400)


class _Txn:
    """A session's open transaction: the digest folded so far, the pages not yet fetched, the reads counted.
    (A plain slotted class: one per transaction, and a dataclass's default factory costs a call more.)"""

    __slots__ = ("txn", "digest", "pages", "read_ios")

    def __init__(self, txn: Transaction, digest: bytes) -> None:
        self.txn = txn
        self.digest = digest
        self.pages: dict[str, list[Any]] | None = None  # NextPageToken → the values after that page
        self.read_ios = 0


@dataclass
class Session:
    token: str
    ledger_name: str
    ledger: Ledger
    last_used: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    txn: _Txn | None = None
    closed: bool = False

    def close(self) -> None:
        self.closed = True
        if self.txn is not None:
            self.txn.txn.abort()
            self.txn = None
        self.ledger.close()


def _timing(started: float) -> dict[str, int]:
    return {"ProcessingTimeMilliseconds": int((time.monotonic() - started) * 1000)}


class SessionApi:
    """Answers SendCommand requests. Thread-safe: one session's commands run one at a time."""

    def __init__(self, catalog: Catalog, *, max_sessions: int = 256,
                 idle_seconds: float = SESSION_IDLE_SECONDS, transaction_seconds: float = MAX_TRANSACTION_SECONDS,
                 open_ledger: Callable[[Path], Ledger] | None = None) -> None:
        self.catalog = catalog
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self.transaction_seconds = transaction_seconds
        self._open = open_ledger or (lambda path: Ledger.open(path, durability=catalog.durability))
        self._sessions: dict[str, Session] = {}
        self._committers: dict[str, GroupCommitter] = {}
        self._lock = threading.Lock()
        self._handlers: dict[str, Callable[[Session, dict[str, Any], float], dict[str, Any]]] = {
            "StartTransaction": self._start_transaction, "ExecuteStatement": self._execute_statement,
            "FetchPage": self._fetch_page, "CommitTransaction": self._commit_transaction,
            "AbortTransaction": self._abort_transaction, "EndSession": self._end_session,
        }

    # ------------------------------------------------------------------------------- dispatch
    def send_command(self, request: Any) -> dict[str, Any]:
        """One SendCommand: exactly one command member, plus SessionToken for all but StartSession."""
        if not isinstance(request, dict):
            raise bad_request("SendCommand takes a JSON object")
        # The request's own members (usually two: SessionToken and the command), not all seven names; a plain
        # loop rather than a list comprehension, which is a function call of its own per request.
        name = None
        for member, value in request.items():
            if value is not None and member in _COMMAND_NAMES:
                if name is not None:
                    name = None
                    break
                name = member
        if name is None:
            commands = [name for name in _COMMANDS if request.get(name) is not None]  # in the documented order
            raise bad_request("exactly one command must be set in SendCommand, got "
                              + (", ".join(commands) or "none"))
        body = request[name]
        if not isinstance(body, dict):
            raise bad_request(f"{name} must be a JSON object")
        started = time.monotonic()
        if name == "StartSession":
            return {name: self._start_session(body, started)}
        now = time.time()
        session = self._session(request.get("SessionToken"), now)
        with session.lock:
            if session.closed:
                raise _invalid_session(messages.NO_SUCH_SESSION)
            session.last_used = now
            return {name: self._handlers[name](session, body, started)}

    def _session(self, token: Any, now: float) -> Session:
        if not isinstance(token, str) or not token:
            raise bad_request("SessionToken is required for every command but StartSession")
        session = self._sessions.get(token)  # one dict read, atomic as it is: the lock orders the writers
        if session is None:
            raise _invalid_session(messages.NO_SUCH_SESSION)
        if now - session.last_used > self.idle_seconds:
            self._drop(session)
            raise _invalid_session(messages.session_idle(session.token))
        return session

    def _drop(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.token, None)
        with session.lock:
            if not session.closed:
                session.close()

    def _committer(self, session: Session) -> GroupCommitter:
        with self._lock:
            committer = self._committers.get(session.ledger_name)
            if committer is None:
                committer = GroupCommitter(session.ledger.path, self.catalog.durability)
                self._committers[session.ledger_name] = committer
            return committer

    def close_ledger_sessions(self, ledger_name: str) -> None:
        """End every session on a ledger and stop its writer (before DeleteLedger moves its file)."""
        with self._lock:
            doomed = [s for s in self._sessions.values() if s.ledger_name == ledger_name]
            committer = self._committers.pop(ledger_name, None)
        for session in doomed:
            self._drop(session)
        if committer is not None:
            committer.close()

    def close_all(self) -> None:
        with self._lock:
            names = {s.ledger_name for s in self._sessions.values()} | set(self._committers)
        for name in names:
            self.close_ledger_sessions(name)

    def _reap_idle(self) -> None:
        now = time.time()
        with self._lock:
            idle = [s for s in self._sessions.values() if now - s.last_used > self.idle_seconds]
        for session in idle:
            self._drop(session)

    # ------------------------------------------------------------------------------- commands
    def _start_session(self, body: dict[str, Any], started: float) -> dict[str, Any]:
        name = body.get("LedgerName")
        if not isinstance(name, str):
            raise bad_request("StartSession.LedgerName is required")
        self._reap_idle()
        path = self.catalog.active_path(name, for_session=True)
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                raise AwsError("LimitExceededException",
                               f"Exceeded the limit of {self.max_sessions} active sessions", 400)
        ledger = self._open(path)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token] = Session(token, name, ledger, time.time())
        return {"SessionToken": token, "TimingInformation": _timing(started)}

    def _end_session(self, session: Session, body: dict[str, Any], started: float) -> dict[str, Any]:
        with self._lock:
            self._sessions.pop(session.token, None)
        session.close()
        return {"TimingInformation": _timing(started)}

    def _start_transaction(self, session: Session, body: dict[str, Any], started: float) -> dict[str, Any]:
        if session.txn is not None:
            # QLDB allows one open transaction per session; a driver aborts before it starts another.
            session.txn.txn.abort()
        # A served standby is read-only until `ledgerdr promote` (another process) opens it for writes: re-read
        # its flag. A writable ledger needs no read here (a SQLite read transaction per StartTransaction): the
        # flag can only be set by another process beginning a restore into the file, and the commit re-reads
        # it under the write lock whenever another connection has written (Ledger._chain_state).
        if session.ledger.read_only:
            session.ledger.refresh_read_only()
        txn = session.ledger.begin()
        session.txn = _Txn(txn, _text_hash(txn.id))
        return {"TransactionId": txn.id, "TimingInformation": _timing(started)}

    def _abort_transaction(self, session: Session, body: dict[str, Any], started: float) -> dict[str, Any]:
        if session.txn is not None:
            session.txn.txn.abort()
            session.txn = None
        return {"TimingInformation": _timing(started)}

    def _execute_statement(self, session: Session, body: dict[str, Any], started: float) -> dict[str, Any]:
        current = self._transaction(session, body)
        statement = body.get("Statement")
        if not isinstance(statement, str):
            raise bad_request("ExecuteStatement.Statement is required")
        # One loop, no list comprehensions (each a function call of its own in Python 3.11); every parameter is
        # still decoded before the statement runs, in order, the first bad one refused.
        statement_hash = _text_hash(statement)
        parameters = []
        for index, holder in enumerate(body.get("Parameters") or ()):
            value, value_hash = _parameter(holder, index)
            parameters.append(value)
            statement_hash = _dot(statement_hash, value_hash)
        # Folded in before running, as the driver folds it in before sending.
        current.digest = _dot(current.digest, statement_hash)
        try:
            values = current.txn.execute(statement, *parameters)
        except QuotaExceeded as exc:
            self._expire_if_timed_out(session, current)
            raise bad_request(str(exc)) from None
        except LedgerError as exc:
            raise bad_request(messages.statement_error(exc, statement)) from None
        current.read_ios += len(values)
        page = self._page(current, values)
        return {"FirstPage": page, "TimingInformation": _timing(started),
                "ConsumedIOs": {"ReadIOs": len(values), "WriteIOs": 0}}

    def _fetch_page(self, session: Session, body: dict[str, Any], started: float) -> dict[str, Any]:
        current = self._transaction(session, body)
        values = current.pages.pop(str(body.get("NextPageToken")), None) if current.pages is not None else None
        if values is None:
            raise bad_request("NextPageToken is unknown or was already fetched")
        page = self._page(current, values)
        return {"Page": page, "TimingInformation": _timing(started),
                "ConsumedIOs": {"ReadIOs": 0, "WriteIOs": 0}}

    def _commit_transaction(self, session: Session, body: dict[str, Any], started: float) -> dict[str, Any]:
        current = self._transaction(session, body)
        sent = _blob(body.get("CommitDigest"), "CommitTransaction.CommitDigest")
        session.txn = None
        if sent != current.digest:
            current.txn.abort()
            raise bad_request(f"Transaction {current.txn.id}'s commit digest does not match the statements "
                              "this server ran in it; the transaction was aborted")
        writes = current.txn.pending_writes
        try:
            self._committer(session).commit(current.txn, session.ledger)
        except OccConflict as exc:
            log.info("transaction %s: OCC conflict: %s", current.txn.id, exc)
            raise AwsError("OccConflictException", messages.OCC_CONFLICT, 400) from None
        except QuotaExceeded as exc:
            if self._timed_out(current):
                raise _invalid_session(messages.transaction_expired(current.txn.id)) from None
            raise bad_request(str(exc)) from None
        except LedgerError as exc:
            raise bad_request(str(exc)) from None
        return {"TransactionId": current.txn.id, "CommitDigest": _b64(current.digest),
                "TimingInformation": _timing(started),
                "ConsumedIOs": {"ReadIOs": current.read_ios, "WriteIOs": writes}}

    # ------------------------------------------------------------------------------- helpers
    def _transaction(self, session: Session, body: dict[str, Any]) -> _Txn:
        current = session.txn
        txn_id = body.get("TransactionId")
        if current is None or txn_id != current.txn.id:
            raise bad_request(f"Transaction {txn_id} is not the open transaction of this session")
        self._expire_if_timed_out(session, current)
        return current

    def _timed_out(self, current: _Txn) -> bool:
        return time.monotonic() - current.txn.started > self.transaction_seconds

    def _expire_if_timed_out(self, session: Session, current: _Txn) -> None:
        if self._timed_out(current):
            current.txn.abort()
            session.txn = None
            raise _invalid_session(messages.transaction_expired(current.txn.id))

    @staticmethod
    def _page(current: _Txn, values: list[Any]) -> dict[str, Any]:
        if len(values) <= PAGE_SIZE:  # nearly always: no slicing
            return {"Values": [{"IonBinary": _b64(_value_ion(v))} for v in values]}
        head, rest = values[:PAGE_SIZE], values[PAGE_SIZE:]
        page: dict[str, Any] = {"Values": [{"IonBinary": _b64(_value_ion(v))} for v in head]}
        token = secrets.token_urlsafe(16)
        if current.pages is None:
            current.pages = {}
        current.pages[token] = rest
        page["NextPageToken"] = token
        return page


def _b64(data: bytes) -> str:
    """`base64.b64encode(data).decode()`, without its Python wrapper."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


# What INSERT, UPDATE and DELETE answer, `{documentId: <22 ASCII characters>}`, has one encoding but for
# the id's bytes, which end it: the rest is encoded once (the encoder took ~5 µs per statement for it).
_ID_LENGTH = 22
_ID_RESULT = ion_binary({"documentId": "0" * _ID_LENGTH})[:-_ID_LENGTH]


def _value_ion(value: Any) -> bytes:
    """`ion_binary(value)`, the same bytes."""
    if type(value) is dict and len(value) == 1:
        doc_id = value.get("documentId")
        if type(doc_id) is str and len(doc_id) == _ID_LENGTH and doc_id.isascii():
            return _ID_RESULT + doc_id.encode("ascii")
    return ion_binary(value)


_text_ion_hash = native.ionhash.text_ion_hash if native.ionhash is not None else None
# hashing.dot's C twin where built (tested to give its bytes): the digest folds two or three dots per statement.
_dot: Callable[[bytes, bytes], bytes] = native.ionhash.dot if native.ionhash is not None else dot


def _text_hash(text: str) -> bytes:
    """`ion_hash(text)` of a str (a transaction id, a statement), in C where built (~0.5 µs against ~2.5)."""
    if _text_ion_hash is not None:
        digest: bytes | None = _text_ion_hash(text)
        if digest is not None:
            return digest
    return ion_hash(text)


def _blob(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise bad_request(f"{what} is required (base64)")
    try:
        # strict: what base64.b64decode(value, validate=True) accepts (the alphabet, then at most two '=' of
        # correct padding), without its regular expression (~0.6 µs a call)
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{what} is not valid base64") from None


def _parameter(holder: Any, index: int) -> tuple[Any, bytes]:
    """One ValueHolder: IonBinary (base64) or IonText, ≤ 128 KiB, as (one Ion value, its Ion Hash). The
    hash of an IonBinary parameter is read from its bytes (C), not from the decoded value."""
    if not isinstance(holder, dict):
        raise bad_request(f"Parameters[{index}] must be a ValueHolder object")
    if holder.get("IonBinary") is not None:
        data: bytes | str = _blob(holder["IonBinary"], f"Parameters[{index}].IonBinary")
    elif isinstance(holder.get("IonText"), str):
        data = holder["IonText"]
    else:
        raise bad_request(f"Parameters[{index}] has neither IonBinary nor IonText")
    try:
        check_parameter_size(index, len(data.encode() if isinstance(data, str) else data))
    except QuotaExceeded as exc:
        raise bad_request(str(exc)) from None
    try:
        return _load(data)
    except Exception as exc:  # amazon.ion raises several types (IonException, ValueError, …) on bad input
        raise bad_request(f"Parameters[{index}] is not a single valid Ion value: {exc}") from None


# ledgerdr._ionhash's binary_plain_hashed: the walk that guards amazon.ion's reader and gives the Ion Hash, then
# the value decoded straight to the plain twins `_plain` makes (the same values, tested), where it is in their
# subset; amazon.ion's reader then `_plain` otherwise. None without the C extension.
_binary_plain_hashed = native.ionhash.binary_plain_hashed if native.ionhash is not None else None


def _load(data: bytes | str) -> tuple[Any, bytes]:
    """A parameter's one Ion value (plain twins where they exist) and its Ion Hash; a client's bytes are never
    handed to a reader that can hang on them (journal/ionload.py): the guarding walk gives the hash."""
    if _binary_plain_hashed is not None and data.__class__ is bytes:
        read = _binary_plain_hashed(data)
        if read is not None:
            value_hash, value = read
            if value is Ellipsis:  # walked and hashed, but outside the plain subset somewhere
                value = _plain(load_walked(data))
            return value, value_hash
    value, walked_hash = load_value_hashed(data)
    return _plain(value), ion_hash(value) if walked_hash is None else walked_hash


# A parameter decodes to amazon.ion's IonPy* types, which the C encoder (ledgerdr._ionhash) hands back to the
# Python encoder node by node: a document sent through the server cost the ledger's staging and block encoding
# ~2× what the same document costs from the embedded driver, which passes plain dicts, strs and ints. Each
# kind below, unannotated, has a plain Python twin with the same Ion encoding and Ion Hash (tested); anything
# else (annotations, nulls, symbols, timestamps, blobs, s-expressions, a struct with a repeated field name, NaN)
# stays as decoded, and a tree may mix the two. Bounded depth: a deeper value stays as it is below.
_PLAIN_DEPTH = 32
_SCALARS: dict[type, tuple[IonType, type]] = {
    IonPyText: (IonType.STRING, str), IonPyInt: (IonType.INT, int), IonPyBool: (IonType.BOOL, bool),
    IonPyFloat: (IonType.FLOAT, float), IonPyDecimal: (IonType.DECIMAL, Decimal),
}


def _plain(value: Any, depth: int = 0) -> Any:
    """`value` with its IonPy nodes that have a plain twin of the same encoding replaced by that twin."""
    cls = value.__class__
    if getattr(value, "ion_annotations", None):
        return value
    scalar = _SCALARS.get(cls)
    if scalar is not None:
        if value.ion_type is not scalar[0] or value != value:  # a NaN keeps its IonPyFloat: the encoders differ
            return value
        return scalar[1](value)
    if depth >= _PLAIN_DEPTH:
        return value
    if cls is IonPyDict and value.ion_type is IonType.STRUCT:
        plain = {}
        for name, items in _dict_store(value).items():
            if len(items) != 1 or name.__class__ is not str:
                return value
            plain[name] = _plain(items[0], depth + 1)
        return plain
    if cls is IonPyList and value.ion_type is IonType.LIST:
        return [_plain(item, depth + 1) for item in value]
    return value

