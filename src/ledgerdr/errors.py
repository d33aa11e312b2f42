"""Every error ledgerdr raises on purpose, and the one table of exit codes.

Errors carry the address of what went wrong (object key, block address) so that an operator can
find it without a stack trace. The CLI and the Lambda handlers map these classes to exit codes
through `exit_code_for`; nothing else decides an exit code.
"""

from __future__ import annotations


class LedgerDRError(Exception):
    """Base class. `hint` is a sentence telling the operator what to do next."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} (hint: {self.hint})" if self.hint else base


class ConfigError(LedgerDRError):
    """The configuration or the command line is invalid. Raised before any work starts."""

    exit_code = 2


class StoreError(LedgerDRError):
    """A storage operation failed on `key` of `store` during `op`."""

    exit_code = 3
    retryable = False

    def __init__(self, store: str, key: str, op: str, message: str = "", *, hint: str | None = None) -> None:
        self.store, self.key, self.op = store, key, op
        detail = f"{op} {store}:{key}" + (f": {message}" if message else "")
        super().__init__(detail, hint=hint)


class ObjectNotFound(StoreError):
    pass


class ObjectExists(StoreError):
    """put-if-absent found the key taken: write-once storage never overwrites."""


class RetentionViolation(StoreError):
    """A delete or overwrite was attempted on an object under retention (Object Lock)."""


class AccessDenied(StoreError):
    pass


class ChecksumMismatch(StoreError):
    """The bytes read or written do not match the checksum that was expected."""


class StoreUnavailable(StoreError):
    """A transient failure (network, throttling, 5xx). `RetryingStore` retries these."""

    retryable = True


class VerificationError(LedgerDRError):
    """The journal failed a check. `problems` lists every finding (see journal.verify.Problem)."""

    exit_code = 4

    def __init__(self, message: str, problems: list | None = None, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or []


class LedgerError(LedgerDRError):
    """The embedded ledger refused a statement (syntax, unknown table, quota)."""

    exit_code = 5


class OccConflict(LedgerError):
    """Optimistic concurrency control rejected a commit; the driver retries the transaction."""


class QuotaExceeded(LedgerError):
    """A QLDB quota (documents or bytes per transaction, document size, tables, indexes) was hit."""


class SourceError(LedgerDRError):
    """The source ledger failed to export or to answer (export CANCELLED/FAILED, throttled too long)."""

    exit_code = 6


class RestoreError(LedgerDRError):
    """The restore cannot proceed: a gap, another lineage in the target, dead letters."""

    exit_code = 7


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected error (run with --debug for the stack trace)",
    2: "invalid configuration or command line",
    3: "storage error (missing object, access denied, retention, unavailable)",
    4: "verification failed (hash mismatch, gap, overlap, altered or missing object)",
    5: "embedded ledger error (statement, quota, concurrency)",
    6: "source ledger error (export failed or cancelled)",
    7: "restore refused or incomplete (gap, other lineage, dead letters)",
    8: "recovery point objective exceeded (status --max-rpo)",
}


def exit_code_for(exc: BaseException) -> int:
    return exc.exit_code if isinstance(exc, LedgerDRError) else 1
