"""QLDB's own wording for the errors a driver or a person sees, where QLDB's documentation or its own tools
show it; ledgerdr's engine words its errors for ledgerdr's CLI, and the session API rewords them here.

Sources (carried over as facts, not copied code): the QLDB developer guide's "Common errors from the Amazon
QLDB driver" (Capacity exceeded; Transaction … has expired; Exceeded the session idle time limit: Session …;
No such session), QLDB's answers shown in the amazon-qldb-shell issue tracker (`Semantic Error: at line 1,
column 15: No such variable named 'Vehicles'; No such variable named 'Vehicles'`, `Parser Error: at line 3,
column 1: …`), and QLDB's OCC message as its drivers print it. A syntax error's position and wording after
the `Parser Error: at line L, column C:` prefix are ledgerdr's parser's: PartiQL's own parser messages are
not reproduced one by one.
"""

from __future__ import annotations

from ..errors import LedgerError
from ..ledger import lexer
from ..ledger.context import UnknownTable
from ..ledger.partiql import PartiQLSyntaxError

OCC_CONFLICT = "Optimistic concurrency control (OCC) failure encountered while committing the transaction"
CAPACITY_EXCEEDED = "Capacity exceeded"
NO_SUCH_SESSION = "No such session"


def transaction_expired(transaction_id: str) -> str:
    return f"Transaction {transaction_id} has expired"


def session_idle(session_id: str) -> str:
    return f"Exceeded the session idle time limit: Session {session_id}"


def statement_error(exc: LedgerError, statement: str) -> str:
    """The message QLDB gives for `exc` raised by `statement` (ledgerdr's own for what QLDB never says)."""
    if isinstance(exc, UnknownTable):
        line, column = _first_mention(statement, exc.name)
        detail = f"No such variable named '{exc.name}'"
        return f"Semantic Error: at line {line}, column {column}: {detail}; {detail}"
    if isinstance(exc, PartiQLSyntaxError):
        ours = str(exc)
        prefix = f"syntax error at line {exc.line}, column {exc.column} "
        detail = ours[len(prefix):] if ours.startswith(prefix) else ours
        return f"Parser Error: at line {exc.line}, column {exc.column}: {detail}"
    return str(exc)


def _first_mention(statement: str, name: str) -> tuple[int, int]:
    """1-based line and column of the first identifier token spelling `name` (QLDB points at the table)."""
    try:
        tokens = lexer.tokenize(statement)
    except lexer.LexError:
        tokens = []
    pos = next((t.pos for t in tokens if t.kind in ("word", "qident") and _spells(t, name)), 0)
    line = statement.count("\n", 0, pos) + 1
    return line, pos - (statement.rfind("\n", 0, pos) + 1) + 1


def _spells(token: lexer.Token, name: str) -> bool:
    return token.value == name if token.kind == "qident" else token.text == name
