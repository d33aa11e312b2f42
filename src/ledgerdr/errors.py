"""Every error ledgerdr raises on purpose, and the one table of exit codes.

Errors carry the address of what went wrong (object key, block address) so that an operator can
find it without a stack trace. Each class carries its `ExitCode`; the CLI and the Lambda handlers map
errors to exit codes through `exit_code_for`, and name every other code they end with by `ExitCode`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The one table of exit codes (their meanings: EXIT_CODES). The values are a contract: never renumber."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    STORAGE = 3
    VERIFICATION = 4
    LEDGER = 5
    SOURCE = 6
    RESTORE = 7
    RPO_EXCEEDED = 8
    INTERRUPTED = 130  # Ctrl-C: work done so far is kept
    BROKEN_PIPE = 141  # stdout's reader went away (`ledgerdr status | head`): as if killed by SIGPIPE


class LedgerDRError(Exception):
    """Base class. `hint` is a sentence telling the operator what to do next."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} (hint: {self.hint})" if self.hint else base


class ConfigError(LedgerDRError):
    """The configuration or the command line is invalid. Raised before any work starts."""

    exit_code = ExitCode.USAGE


class StoreError(LedgerDRError):
    """A storage operation failed on `key` of `store` during `op`."""

    exit_code = ExitCode.STORAGE
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


class QueueError(LedgerDRError):
    """A queue operation `op` failed on `queue` (its URL), for message `message_id` when one is involved."""

    exit_code = ExitCode.STORAGE
    retryable = False

    def __init__(
        self,
        queue: str,
        op: str,
        message: str = "",
        *,
        message_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.queue, self.op, self.message_id = queue, op, message_id
        detail = f"{op} {queue}" + (f" message {message_id}" if message_id else "")
        super().__init__(detail + (f": {message}" if message else ""), hint=hint)


class QueueNotFound(QueueError):
    """The queue (or its dead-letter queue) does not exist."""


class StaleReceipt(QueueError):
    """The receipt no longer holds the message: its visibility timed out and it was delivered again
    (possibly to another worker), or it was acked or dead-lettered already. The work may have been done
    twice; idempotent consumers just log this and carry on."""


class MessageTooLarge(QueueError):
    """A body exceeds `properties.max_message_bytes`. Raised before anything of the batch is sent."""


class QueueUnavailable(QueueError):
    """A transient failure (locked database, throttling, network, 5xx). Safe to retry."""

    retryable = True


class SendIncomplete(QueueError):
    """Part of a `send_batch` went through. `sent` maps the index of each body that was sent to its id;
    `failed` maps the others to the backend's error. Re-sending everything is safe (delivery is at least
    once anyway); re-sending only the failed indexes avoids duplicates."""

    retryable = True

    def __init__(self, queue: str, sent: dict[int, str], failed: dict[int, str]) -> None:
        self.sent, self.failed = sent, failed
        first = min(failed)
        super().__init__(
            queue, "send", f"{len(failed)} of {len(sent) + len(failed)} bodies not sent (first: #{first}: "
            f"{failed[first]})", hint="retry the bodies listed in `failed`"
        )


class VerificationError(LedgerDRError):
    """The journal failed a check. `problems` lists every finding (see journal.verify.Problem)."""

    exit_code = ExitCode.VERIFICATION

    def __init__(self, message: str, problems: list | None = None, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or []


class LedgerError(LedgerDRError):
    """The embedded ledger refused a statement (syntax, unknown table, quota)."""

    exit_code = ExitCode.LEDGER


class OccConflict(LedgerError):
    """Optimistic concurrency control rejected a commit; the driver retries the transaction."""


class QuotaExceeded(LedgerError):
    """A QLDB quota (documents or bytes per transaction, document size, tables, indexes) was hit."""


class SourceError(LedgerDRError):
    """The source ledger failed to export or to answer (export CANCELLED/FAILED, throttled too long)."""

    exit_code = ExitCode.SOURCE


class RestoreError(LedgerDRError):
    """The restore cannot proceed: a gap, another lineage in the target, dead letters."""

    exit_code = ExitCode.RESTORE


class CheckpointHeldBack(RestoreError):
    """The target's write-ahead log could not be checkpointed: a reader of an older snapshot held it back
    through every wait. Nothing is lost and nothing is wrong with the data; the checkpoint (which makes the
    restored state durable before a verdict) is simply not done yet. A restore stops (incomplete, exit 7); a
    following standby retries it in its next round."""

    retryable = True


EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.UNEXPECTED: "unexpected error (run with --debug for the stack trace)",
    ExitCode.USAGE: "invalid configuration or command line",
    ExitCode.STORAGE: "storage error (missing object, access denied, retention, unavailable)",
    ExitCode.VERIFICATION: "verification failed (hash mismatch, gap, overlap, altered or missing object)",
    ExitCode.LEDGER: "embedded ledger error (statement, quota, concurrency)",
    ExitCode.SOURCE: "source ledger error (export failed or cancelled)",
    ExitCode.RESTORE: "restore refused or incomplete (gap, other lineage, dead letters)",
    ExitCode.RPO_EXCEEDED: "recovery point objective exceeded (status --max-rpo)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
    ExitCode.BROKEN_PIPE: "output closed by its reader (| head)",
}


def exit_code_for(exc: BaseException) -> ExitCode:
    return exc.exit_code if isinstance(exc, LedgerDRError) else ExitCode.UNEXPECTED
