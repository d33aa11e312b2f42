"""Which exit codes each command can return: one table, rendered into docs/cli.md.

The codes are `ledgerdr.errors.ExitCode`, their meanings `ledgerdr.errors.EXIT_CODES` (the one table of
codes); this table says which of them each command returns, and why, so a cron job or an alarm can be
written against a command's contract. tests/test_cli_exits.py checks it against the commands: every
command has a row, and every `sys.exit(ExitCode.X)` in a command's code is listed for it.
"""

from __future__ import annotations

from ..errors import ExitCode

# Every command can also end with these: they come from the command-line layer, not from the flow.
ALWAYS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.UNEXPECTED: "unexpected error",
    ExitCode.USAGE: ("invalid configuration or command line (also: a repository URL that cannot be a "
                     "repository, a repository name the configuration does not have, an environment variable "
                     "the configuration names that is not set)"),
    ExitCode.INTERRUPTED: ("interrupted (Ctrl-C): work done so far is kept, run the same command again to "
                           "resume"),
    ExitCode.BROKEN_PIPE: "stdout closed by its reader (`| head`): the output was cut short",
}

# command path (as typed after `ledgerdr`) → {code: why this command returns it}, codes other than ALWAYS.
COMMAND_EXITS: dict[str, dict[ExitCode, str]] = {
    "init": {},
    "backup": {
        ExitCode.STORAGE: "a repository or export object cannot be read or written",
        ExitCode.VERIFICATION: "an export failed verification (it stays an unrecorded orphan attempt)",
        ExitCode.LEDGER: "the embedded source ledger cannot be read",
        ExitCode.SOURCE: "the source refused the export, or a foreign lineage writes to the repository",
    },
    "status": {
        ExitCode.STORAGE: "a repository cannot be listed or read",
        ExitCode.VERIFICATION: "a repository's windows have a gap, overlap, fork or unreadable record",
        ExitCode.RPO_EXCEEDED: "`--max-rpo`: a repository's RPO is past the limit",
    },
    "check": {
        ExitCode.STORAGE: "a repository cannot be reached",
    },
    "replicate": {
        ExitCode.STORAGE: "a repository cannot be read or written",
        ExitCode.VERIFICATION: "a replica's copy does not verify and cannot be repaired",
    },
    "verify": {
        ExitCode.STORAGE: "the location is missing, not a folder, or cannot be read",
        ExitCode.VERIFICATION: ("verification failed: a problem is named by key and block address (with "
                                "`--trusted-key`: also a record unsigned, signed by another key, or altered); `--digest`: "
                                "the digest at its tip block differs, naming the block; `--certificate`: a "
                                "claim does not hold, naming the field"),
        ExitCode.RESTORE: ("`--digest` / `--certificate`: the repository does not reach the digest's tip block "
                           "or the certificate's last block (or lacks the blocks from 0), so it cannot prove it"),
    },
    "restore": {
        ExitCode.STORAGE: "an object cannot be read",
        ExitCode.VERIFICATION: "an object or the chain does not verify",
        ExitCode.LEDGER: "the embedded target refused a statement",
        ExitCode.RESTORE: ("restore refused (gap, fork, other lineage; with `--trusted-key`: a record not "
                           "signed by a trusted key) or incomplete (dead letters, digest mismatch)"),
    },
    "worker": {
        ExitCode.STORAGE: "an object cannot be read",
        ExitCode.LEDGER: "the embedded target refused a statement",
        ExitCode.RESTORE: "the target belongs to another restore or lineage",
    },
    "standby": {
        ExitCode.STORAGE: "an object cannot be read",
        ExitCode.VERIFICATION: "an object or the chain does not verify",
        ExitCode.LEDGER: "the embedded target refused a statement",
        ExitCode.RESTORE: ("a gap, fork or other lineage: the standby stops; with `--once`, also a checkpoint held "
                           "back by a reader of an older snapshot (nothing lost: run it again; a following standby "
                           "retries in its next round)"),
    },
    "promote": {
        ExitCode.STORAGE: "an object cannot be read",
        ExitCode.VERIFICATION: "an object or the chain does not verify",
        ExitCode.LEDGER: "the embedded target refused a statement",
        ExitCode.RESTORE: ("the standby cannot be promoted (not verified; with `--trusted-key`: a record not "
                           "signed by a trusted key)"),
    },
    "detach": {
        ExitCode.LEDGER: "the target is not a ledger",
        ExitCode.RESTORE: "the target cannot be opened for writes (not an embedded ledger)",
    },
    "info": {
        ExitCode.STORAGE: "a repository cannot be listed or read",
    },
    "metrics": {
        ExitCode.STORAGE: "--textfile cannot be written",
    },
    "aws": {},
    "aws template": {},
    "aws package": {
        ExitCode.STORAGE: "the artifact cannot be written",
    },
    "aws check": {
        ExitCode.UNEXPECTED: ("a function's errors alarm is firing (its JSON log lines name the error and its "
                              "exit code)"),
        ExitCode.RESTORE: "the dead-letter alarm is firing: restore or standby units failed",
        ExitCode.RPO_EXCEEDED: "the RPO alarm is firing",
    },
    "compact": {
        ExitCode.STORAGE: "an object cannot be read or written",
        ExitCode.VERIFICATION: "an object or the chain does not verify",
    },
    "attest": {
        ExitCode.STORAGE: "a record cannot be listed, read or written",
    },
    "prune": {
        ExitCode.STORAGE: "an object cannot be listed or deleted (retention)",
    },
    "serve": {
        ExitCode.STORAGE: "the data folder cannot be read or written",
        ExitCode.LEDGER: "a ledger file in the data folder cannot be opened",
    },
    "replay": {
        ExitCode.STORAGE: "an object cannot be read",
        ExitCode.LEDGER: "the embedded target refused a statement",
        ExitCode.RESTORE: "the replayed ledger differs from the journal",
    },
    "drill": {
        ExitCode.STORAGE: "a repository cannot be read or written",
        ExitCode.VERIFICATION: "the drill's restores did not verify",
        ExitCode.LEDGER: "the embedded ledger refused a statement",
        ExitCode.SOURCE: "the source export failed",
        ExitCode.RESTORE: "a restore was refused or incomplete",
    },
    "ledger": {},
    "ledger create": {
        ExitCode.STORAGE: "the ledger file cannot be written",
        ExitCode.LEDGER: "the file is not a ledger, or the ledger exists",
    },
    "ledger digest": {
        ExitCode.LEDGER: "the file is not a ledger",
    },
    "ledger exec": {
        ExitCode.LEDGER: "the statement failed (syntax, unknown table, quota, concurrency)",
    },
    "ledger export": {
        ExitCode.STORAGE: "the export location cannot be written",
        ExitCode.LEDGER: "the file is not a ledger",
    },
    "ledger load": {
        ExitCode.LEDGER: "a statement of the workload failed",
    },
}


def exits_of(command: str) -> dict[ExitCode, str]:
    """Every exit code of `command` (its path after `ledgerdr`), with why, ordered by code."""
    return dict(sorted({**ALWAYS, **COMMAND_EXITS[command]}.items()))


def render_table() -> list[str]:
    """The Markdown table of docs/cli.md: the codes every command shares, then each command's own."""
    def cell(codes: dict[ExitCode, str]) -> str:
        return "; ".join(f"**{code}** {why}" for code, why in sorted(codes.items())).replace("|", "\\|") or "—"

    lines = ["| command | exit codes |", "|---|---|", f"| every command | {cell(ALWAYS)} |"]
    lines += [f"| `ledgerdr {command}` | {cell(COMMAND_EXITS[command])} |" for command in sorted(COMMAND_EXITS)]
    return lines
