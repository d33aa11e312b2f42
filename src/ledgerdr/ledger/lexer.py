"""Tokenizer for the PartiQL subset of the embedded ledger (see `partiql.py` for the grammar).

One compiled regular expression does the common tokens; backtick Ion literals are scanned by hand
because their content is Ion text, which may itself contain backticks inside strings or comments.
The lexer knows nothing about keywords: a bare word is a `word` token and the parser decides whether
it is a keyword (case-insensitive) or an identifier (case-preserving, as QLDB names are
case-sensitive).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NamedTuple

from amazon.ion import simpleion
from amazon.ion.exceptions import IonException

# Token kinds. `value` holds: word -> upper-cased text (for keyword checks), qident/string -> the
# decoded text, numbers -> int/Decimal/float, ion -> the loaded Ion value, others -> the text.
WORD, QIDENT, STRING, INT, DECIMAL, FLOAT, ION, PARAM, OP, EOF = (
    "word", "qident", "string", "int", "decimal", "float", "ion", "param", "op", "eof",
)


class LexError(Exception):
    """Raised for text that is not a token; `pos` is the 0-based offset. partiql.py re-raises it."""

    def __init__(self, message: str, pos: int, near: str) -> None:
        super().__init__(message)
        self.message, self.pos, self.near = message, pos, near


class Token(NamedTuple):  # a NamedTuple: several times cheaper to build than a frozen dataclass
    kind: str
    text: str
    value: Any
    pos: int


# Each match eats the whitespace and comments before one token, halving the number of matches.
_TOKEN_RE = re.compile(
    r"""
    (?:\s+|--[^\n]*|/\*.*?\*/)*
    (?:
      (?P<float>\d+(?:\.\d*)?[eE][+-]?\d+)
    | (?P<decimal>\d+\.\d+)
    | (?P<int>\d+)
    | (?P<word>[A-Za-z_$][A-Za-z0-9_$]*)
    | (?P<string>'(?:[^']|'')*')
    | (?P<qident>"(?:[^"]|"")*")
    | (?P<param>\?)
    | (?P<op><<|>>|<=|>=|<>|!=|\|\||[-+*/%=<>()\[\]{},.:;])
    | (?P<backtick>`)
    | (?P<end>\Z)
    )
    """,
    re.VERBOSE | re.DOTALL,
)

# Inside Ion text, these delimit spans in which a backtick does not end the literal.
_ION_SKIP_RE = re.compile(
    r"'''(?:[^'\\]|\\.|'(?!''))*'''|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|//[^\n]*|/\*.*?\*/", re.DOTALL
)


_CONVERT: dict[str, Any] = {
    WORD: str.upper,
    STRING: lambda text: text[1:-1].replace("''", "'"),
    QIDENT: lambda text: text[1:-1].replace('""', '"'),
    INT: int,
    DECIMAL: Decimal,
    FLOAT: float,
}


def _scan_ion(sql: str, start: int) -> tuple[Token, int]:
    """Scan a backtick literal starting at `start` (the opening backtick); return it and the end offset."""
    i = start + 1
    while i < len(sql):
        ch = sql[i]
        if ch == "`":
            text = sql[start + 1 : i]
            try:
                value = simpleion.loads(text)
            except (IonException, ValueError, TypeError) as exc:
                raise LexError(f"invalid Ion literal: {exc}", start, sql[start : i + 1]) from None
            return Token(ION, sql[start : i + 1], value, start), i + 1
        skip = _ION_SKIP_RE.match(sql, i) if ch in "'\"/" else None
        i = skip.end() if skip else i + 1
    raise LexError("unterminated Ion literal (missing closing backtick)", start, sql[start : start + 20])


def _unterminated(sql: str, pos: int) -> LexError:
    what = {"'": "string literal", '"': "quoted identifier"}.get(sql[pos])
    if what is not None:
        return LexError(f"unterminated {what}", pos, sql[pos : pos + 20])
    if sql.startswith("/*", pos):
        return LexError("unterminated comment", pos, "/*")
    return LexError(f"unexpected character {sql[pos]!r}", pos, sql[pos])


def tokenize(sql: str) -> list[Token]:
    """Split `sql` into tokens ending with an `eof` token. Raises LexError on text that is no token."""
    tokens: list[Token] = []
    append, match, convert, pos = tokens.append, _TOKEN_RE.match, _CONVERT.get, 0
    while True:
        m = match(sql, pos)
        if m is None:  # only the whitespace/comment prefix can be left unmatched: find where it stops
            prefix = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL).match(sql, pos)
            assert prefix is not None  # it matches the empty string too
            raise _unterminated(sql, prefix.end())
        kind = m.lastgroup
        assert kind is not None  # every alternative of _TOKEN_RE is a named group
        start = m.start(kind)
        if kind == "end":
            append(Token(EOF, "", None, start))
            return tokens
        if kind == "backtick":
            token, pos = _scan_ion(sql, start)
            append(token)
            continue
        text = m.group(kind)
        if text == "/" and sql.startswith("/*", start):
            raise LexError("unterminated comment", start, "/*")
        fn = convert(kind)
        append(Token(kind, text, fn(text) if fn else text, start))
        pos = m.end()


# Bare words that cannot be identifiers (quote them to use them as names). After a `.` any word is a
# field name, so `x.value` works.
RESERVED = frozenset("""
    ALL AND AS AT BETWEEN BY CASE CAST CREATE CROSS DELETE DISTINCT DROP ELSE END ESCAPE EXCEPT EXEC EXISTS
    FALSE FROM FULL GROUP HAVING IN INDEX INNER INSERT INTERSECT INTO IS JOIN LEFT LET LIKE LIMIT MISSING
    NOT NULL OFFSET ON OR ORDER OUTER PIVOT REMOVE RIGHT SELECT SET TABLE THEN TRUE UNDROP UNION UNPIVOT
    UPDATE VALUE VALUES WHEN WHERE WITH
""".split())


class TokenCursor:
    """A position in a token list with the accept/expect helpers a recursive-descent parser needs.

    Failures are LexError too (message, offset, offending text), so callers handle one exception type.
    """

    def __init__(self, tokens: list[Token]) -> None:
        self.toks, self.i = tokens, 0

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.toks[max(0, min(self.i + ahead, len(self.toks) - 1))]

    def advance(self) -> Token:
        tok = self.toks[self.i]
        if tok.kind != EOF:
            self.i += 1
        return tok

    def fail(self, detail: str, token: Token | None = None) -> LexError:
        token = token or self.tok
        return LexError(detail, token.pos, token.text)

    def at_kw(self, *words: str, tok: Token | None = None) -> bool:
        tok = tok or self.tok
        return tok.kind == WORD and tok.value in words

    def accept_kw(self, word: str) -> bool:
        if self.at_kw(word):
            self.i += 1
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.accept_kw(word):
            raise self.fail(f"expected {word}")

    def at_op(self, op: str) -> bool:
        return self.tok.kind == OP and self.tok.text == op

    def accept_op(self, op: str) -> bool:
        if self.at_op(op):
            self.i += 1
            return True
        return False

    def expect_op(self, op: str) -> None:
        if not self.accept_op(op):
            raise self.fail(f"expected '{op}'")

    @staticmethod
    def is_identifier(tok: Token) -> bool:
        return tok.kind == QIDENT or (tok.kind == WORD and tok.value not in RESERVED)

    def identifier(self, what: str = "an identifier") -> str:
        """Consume a bare (non-reserved) or quoted identifier and return its case-preserved text."""
        tok = self.tok
        if not self.is_identifier(tok):
            raise self.fail(f"expected {what}" + (" (reserved word: quote it)" if tok.kind == WORD else ""))
        self.i += 1
        return tok.value if tok.kind == QIDENT else tok.text

    def optional_alias(self) -> str | None:
        if self.accept_kw("AS"):
            return self.identifier("an alias")
        return self.identifier() if self.is_identifier(self.tok) else None

    def comma_list(self, item: Callable[[], Any], close: str) -> tuple:
        """Items separated by commas up to `close` (consumed); empty when `close` comes first."""
        items = []
        if not self.accept_op(close):
            items.append(item())
            while self.accept_op(","):
                items.append(item())
            self.expect_op(close)
        return tuple(items)
