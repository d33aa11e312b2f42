"""Which exit codes each command can return: one table, rendered into docs/cli.md.

The meaning of each code is `ledgerdr.errors.EXIT_CODES` (the one table of codes); this table says which of
them each command returns, and why, so a cron job or an alarm can be written against a command's
contract. tests/test_cli_exits.py checks it against the commands: every command has a row, and every
literal `sys.exit(N)` in a command's code is listed for it.
"""

from __future__ import annotations

# Every command can also end with these: they come from the command-line layer, not from the flow.
EXIT_INTERRUPTED = 130  # Ctrl-C: work done so far is kept
EXIT_BROKEN_PIPE = 141  # stdout's reader went away (`ledgerdr status | head`): as if killed by SIGPIPE
ALWAYS: dict[int, str] = {
    0: "success",
    1: "unexpected error",
    2: "invalid configuration or command line (also: a repository URL that cannot be a repository)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): work done so far is kept, run the same command again to resume",
    EXIT_BROKEN_PIPE: "stdout closed by its reader (`| head`): the output was cut short",
}

# command path (as typed after `ledgerdr`) → {code: why this command returns it}, codes other than ALWAYS.
COMMAND_EXITS: dict[str, dict[int, str]] = {
    "init": {},
    "backup": {3: "a repository or export object cannot be read or written",
               4: "an export failed verification (it stays an unrecorded orphan attempt)",
               5: "the embedded source ledger cannot be read",
               6: "the source refused the export, or a foreign lineage writes to the repository"},
    "status": {3: "a repository cannot be listed or read",
               4: "a repository's windows have a gap, overlap, fork or unreadable record",
               8: "`--max-rpo`: a repository's RPO is past the limit"},
    "check": {3: "a repository cannot be reached"},
    "info": {3: "a repository cannot be listed or read"},
    "metrics": {3: "--textfile cannot be written"},
    "replicate": {3: "a repository cannot be read or written",
                  4: "a replica's copy does not verify and cannot be repaired"},
    "verify": {3: "the location is missing, not a folder, or cannot be read",
               4: "verification failed: a problem is named by key and block address"},
    "restore": {3: "an object cannot be read", 4: "an object or the chain does not verify",
                5: "the embedded target refused a statement",
                7: "restore refused (gap, fork, other lineage) or incomplete (dead letters, digest mismatch)"},
    "worker": {3: "an object cannot be read", 5: "the embedded target refused a statement",
               7: "the target belongs to another restore or lineage"},
    "standby": {3: "an object cannot be read", 4: "an object or the chain does not verify",
                5: "the embedded target refused a statement", 7: "a gap, fork or other lineage: the standby stops"},
    "promote": {3: "an object cannot be read", 4: "an object or the chain does not verify",
                5: "the embedded target refused a statement", 7: "the standby cannot be promoted (not verified)"},
    "detach": {5: "the target is not a ledger", 7: "the target cannot be opened for writes (not an embedded ledger)"},
    "aws": {},
    "aws template": {},
    "aws package": {3: "the artifact cannot be written"},
    "aws check": {1: "a function's errors alarm is firing (its JSON log lines name the error and its exit code)",
                  7: "the dead-letter alarm is firing: restore or standby units failed",
                  8: "the RPO alarm is firing"},
    "compact": {3: "an object cannot be read or written", 4: "an object or the chain does not verify"},
    "prune": {3: "an object cannot be listed or deleted (retention)"},
    "serve": {3: "the data folder cannot be read or written",
              5: "a ledger file in the data folder cannot be opened"},
    "replay": {3: "an object cannot be read", 5: "the embedded target refused a statement",
               7: "the replayed ledger differs from the journal"},
    "drill": {3: "a repository cannot be read or written", 4: "the drill's restores did not verify",
              5: "the embedded ledger refused a statement", 6: "the source export failed",
              7: "a restore was refused or incomplete"},
    "ledger": {},
    "ledger create": {3: "the ledger file cannot be written", 5: "the file is not a ledger, or the ledger exists"},
    "ledger digest": {5: "the file is not a ledger"},
    "ledger exec": {5: "the statement failed (syntax, unknown table, quota, concurrency)"},
    "ledger export": {3: "the export location cannot be written", 5: "the file is not a ledger"},
    "ledger load": {5: "a statement of the workload failed"},
}


def exits_of(command: str) -> dict[int, str]:
    """Every exit code of `command` (its path after `ledgerdr`), with why, ordered by code."""
    return dict(sorted({**ALWAYS, **COMMAND_EXITS[command]}.items()))


def render_table() -> list[str]:
    """The Markdown table of docs/cli.md: the codes every command shares, then each command's own."""
    def cell(codes: dict[int, str]) -> str:
        return "; ".join(f"**{code}** {why}" for code, why in sorted(codes.items())).replace("|", "\\|") or "—"

    lines = ["| command | exit codes |", "|---|---|", f"| every command | {cell(ALWAYS)} |"]
    lines += [f"| `ledgerdr {command}` | {cell(COMMAND_EXITS[command])} |" for command in sorted(COMMAND_EXITS)]
    return lines
