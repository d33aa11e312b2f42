"""The PartiQL subset that the embedded ledger accepts: a recursive-descent parser.

`parse(sql)` turns one statement into a frozen syntax tree (`syntax.py`); it never touches storage. Keywords are
case-insensitive; identifiers, bare or "double-quoted", keep their case because QLDB names (tables,
fields) are case-sensitive. `'single'` quotes are strings and backticks hold Ion literals.

Expression precedence follows PartiQL's grammar, lowest first: OR, AND, NOT, predicates (comparison,
IS, IN, LIKE, BETWEEN; left-associative), `||`, `+ -`, `* / %`, unary `+ -`, then path steps.

Joins: inner and cross only (`, t`, `CROSS JOIN t`, `[INNER] JOIN t ON c`), as in QLDB; `x.*` as a SELECT
item; bag/list literals and uncorrelated `(SELECT …)` subqueries as FROM sources, after IN, or as values;
unnesting a path over an earlier alias (`FROM t AS x, x.l AS y AT i`). QLDB's FROM-first SET / REMOVE /
`INSERT INTO x.p VALUE v [AT pos]` map onto `Update`. Not supported (clear syntax errors): outer joins, AT on a
table, GROUP/ORDER BY, LIMIT, DISTINCT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ledgerdr.errors import LedgerError
from ledgerdr.ledger import lexer
from ledgerdr.ledger.lexer import RESERVED, Token
from ledgerdr.ledger.syntax import (
    MISSING,
    Aggregate,
    AllFields,
    BagExpr,
    Between,
    Binary,
    Call,
    CreateIndex,
    CreateTable,
    Delete,
    DocPath,
    DropIndex,
    DropTable,
    Exec,
    Expr,
    In,
    Insert,
    InsertOp,
    Is,
    Join,
    Like,
    ListExpr,
    Lit,
    Param,
    Path,
    ProjectionItem,
    RemoveOp,
    Select,
    SelectValue,
    SetOp,
    Star,
    Statement,
    StructExpr,
    Subquery,
    TableRef,
    Unary,
    UndropTable,
    Update,
    Var,
)


class PartiQLSyntaxError(LedgerError):
    """A statement that does not parse. `position` is the 0-based offset; `line`/`column` are 1-based."""

    def __init__(self, message: str, position: int, line: int, column: int) -> None:
        super().__init__(message)
        self.position, self.line, self.column = position, line, column


# Supported scalar functions and their (min, max) argument counts; max None = any number.
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "size": (1, 1), "exists": (1, 1), "upper": (1, 1), "lower": (1, 1), "char_length": (1, 1),
    "character_length": (1, 1), "coalesce": (1, None), "nullif": (2, 2),
    # ledger/functions.py
    "utcnow": (0, 0), "txid": (0, 0), "to_string": (2, 2), "to_timestamp": (1, 2),
}
# Functions with their own argument syntax (ledger/functions.py): a date part or type name as a bare word,
# parsed into a string literal argument: DATE_ADD(day, n, t), DATE_DIFF(day, t1, t2), EXTRACT(day FROM t),
# CAST(v AS int); SUBSTRING(s, i[, n]) or SUBSTRING(s FROM i [FOR n]); TRIM(s) or
# TRIM([LEADING|TRAILING|BOTH] [chars] FROM s).
SPECIAL_FUNCTIONS = frozenset({"date_add", "date_diff", "extract", "cast", "substring", "trim"})
_DATE_PARTS = ("year", "month", "day", "hour", "minute", "second")
_CAST_TYPES = frozenset("""int integer decimal numeric float real double bool boolean string symbol varchar char
    timestamp""".split())
AGGREGATES = frozenset({"count", "sum", "min", "max", "avg"})

# ------------------------------------------------------------------------------------------- parser

_UNSUPPORTED_TAIL = frozenset({"ORDER", "GROUP", "HAVING", "LIMIT", "OFFSET", "UNION", "INTERSECT", "EXCEPT"})
_COMPARISONS = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_LITERAL_KINDS = frozenset({lexer.STRING, lexer.INT, lexer.DECIMAL, lexer.FLOAT, lexer.ION})
_WORD_LITERALS = {"TRUE": True, "FALSE": False, "NULL": None, "MISSING": MISSING}
_COMMITTED_PREFIX = "_ql_committed_"


class _Parser(lexer.TokenCursor):
    """One parser per statement; `params` counts the `?` seen so far to number them."""

    def __init__(self, tokens: list[Token]) -> None:
        super().__init__(tokens)
        self.params = 0

    # -- statements
    def statement(self) -> Statement:
        tok = self.tok
        handler = {
            "SELECT": self.select, "INSERT": self.insert, "UPDATE": self.update, "DELETE": self.delete,
            "CREATE": self.create, "DROP": self.drop, "UNDROP": self.undrop, "EXEC": self.exec_,
            "FROM": self.from_first_update,
        }.get(tok.value if tok.kind == lexer.WORD else "")
        if handler is None:
            raise self.fail("expected a statement: SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, EXEC, ...")
        self.advance()
        return replace(handler(), param_count=self.params)

    def create(self) -> Statement:
        if self.accept_kw("TABLE"):
            name = self.identifier("a table name")
            return CreateTable(name, self.with_option("aws_tags"))
        if self.accept_kw("INDEX"):
            self.expect_kw("ON")
            table = self.identifier("a table name")
            self.expect_op("(")
            column = self.identifier("a field name")
            if self.at_op(".") or self.at_op("["):
                raise self.fail("QLDB indexes only top-level fields")
            if self.at_op(","):
                raise self.fail("an index covers exactly one field")
            self.expect_op(")")
            return CreateIndex(table, (column,))
        raise self.fail("expected TABLE or INDEX")

    def drop(self) -> Statement:
        if self.accept_kw("TABLE"):
            return DropTable(self.identifier("a table name"))
        if self.accept_kw("INDEX"):
            index_id = self.name_or_string("an index id")
            self.expect_kw("ON")
            table = self.identifier("a table name")
            self.with_option("purge")  # QLDB demands `WITH (purge = true)`; dropping purges here anyway
            return DropIndex(index_id, table)
        raise self.fail("expected TABLE or INDEX")

    def with_option(self, option: str) -> Expr | None:
        """`WITH (option = expr)`, the one option QLDB allows on CREATE TABLE / DROP INDEX; None if absent."""
        if not self.accept_kw("WITH"):
            return None
        self.expect_op("(")
        if self.identifier(option).lower() != option:
            raise self.fail(f"expected {option} (the only option here)", self.peek(-1))
        self.expect_op("=")
        value = self.expr()
        self.expect_op(")")
        return value

    def optional_where(self) -> Expr | None:
        return self.expr() if self.accept_kw("WHERE") else None

    def undrop(self) -> Statement:
        self.expect_kw("TABLE")
        return UndropTable(self.name_or_string("a table id"))

    def name_or_string(self, what: str) -> str:
        if self.tok.kind == lexer.STRING:
            return self.advance().value
        return self.identifier(what)

    def exec_(self) -> Statement:
        name = self.identifier("a procedure name")
        args: list[Expr] = []
        if self.tok.kind != lexer.EOF and not self.at_op(";"):
            args.append(self.expr())
            while self.accept_op(","):
                args.append(self.expr())
        return Exec(name, tuple(args))

    def insert(self) -> Statement:
        self.expect_kw("INTO")
        table = self.identifier("a table name")
        self.accept_kw("VALUE")
        return Insert(table, self.expr())

    def table_binding(self) -> tuple[str, str, str | None]:
        table = self.identifier("a table name")
        alias = self.optional_alias() or table
        by_id = self.identifier("an id alias") if self.accept_kw("BY") else None
        return table, alias, by_id

    def delete(self) -> Statement:
        self.expect_kw("FROM")
        table, alias, by_id = self.table_binding()
        return Delete(table, alias, by_id, self.optional_where())

    def update(self) -> Statement:
        table, alias, by_id = self.table_binding()
        ops = self.update_operations(alias)
        return Update(table, alias, by_id, ops, self.optional_where())

    def from_first_update(self) -> Statement:
        table, alias, by_id = self.table_binding()
        where = self.optional_where()
        return Update(table, alias, by_id, self.update_operations(alias), where)

    def update_operations(self, alias: str) -> tuple[SetOp | RemoveOp | InsertOp, ...]:
        ops: list[SetOp | RemoveOp | InsertOp] = []
        while True:
            if self.accept_kw("SET"):
                ops.append(self.assignment(alias))
                while self.accept_op(","):
                    ops.append(self.assignment(alias))
            elif self.accept_kw("REMOVE"):
                ops.append(RemoveOp(self.doc_path(alias)))
            elif self.accept_kw("INSERT"):
                self.expect_kw("INTO")
                path = self.doc_path(alias, allow_document=True)
                self.expect_kw("VALUE")
                value = self.expr()
                ops.append(InsertOp(path, value, self.expr() if self.accept_kw("AT") else None))
            else:
                break
        if not ops:
            raise self.fail("expected SET, REMOVE or INSERT INTO")
        return tuple(ops)

    def assignment(self, alias: str) -> SetOp:
        path = self.doc_path(alias)
        self.expect_op("=")
        return SetOp(path, self.expr())

    def doc_path(self, alias: str, *, allow_document: bool = False) -> DocPath:
        """A SET/REMOVE/INSERT INTO target, made relative to the document by dropping a leading `alias`
        (only INSERT INTO may name the document itself)."""
        start = self.tok
        target = self.postfix()
        root, steps = (target.root, target.steps) if isinstance(target, Path) else (target, ())
        if not isinstance(root, Var):
            raise self.fail("expected a field path", start)
        parts: list[str | int] = [] if root.name == alias else [root.name]
        for step in steps:
            if isinstance(step, Lit) and isinstance(step.value, int) and not isinstance(step.value, bool):
                parts.append(step.value)
            elif isinstance(step, str):
                parts.append(step)
            else:
                raise self.fail("path steps in SET/REMOVE must be names or integer literals", start)
        if not parts and not allow_document:
            raise self.fail("cannot SET or REMOVE the whole document (use INSERT or DELETE)", start)
        return tuple(parts)

    def select(self) -> Select:
        if self.at_kw("DISTINCT", "ALL"):
            raise self.fail(f"SELECT {self.tok.value} is not supported")
        if self.accept_kw("VALUE"):
            projection: Any = SelectValue(self.projection_expr())
        elif self.accept_op("*"):
            projection = Star()
        else:
            projection = self.projection_items()
        self.expect_kw("FROM")
        source = self.from_source()
        joins = self.joins(source)
        where = self.optional_where()
        if self.at_kw(*_UNSUPPORTED_TAIL):
            raise self.fail(f"{self.tok.value} is not supported")
        return Select(projection, source, where, joins)

    def joins(self, first: TableRef) -> tuple[Join, ...]:
        joins: list[Join] = []
        aliases = {first.alias} | ({first.at_alias} if first.at_alias else set())
        while True:
            tok = self.tok
            if self.accept_op(","):
                join = Join(self.from_source(aliases))
            elif self.at_kw("CROSS") and self.peek().value == "JOIN":
                self.i += 2
                join = Join(self.from_source(aliases))
            elif self.at_kw("JOIN", "INNER"):
                if self.accept_kw("INNER") and not self.at_kw("JOIN"):
                    raise self.fail("expected JOIN after INNER")
                self.expect_kw("JOIN")
                source = self.from_source(aliases)
                self.expect_kw("ON")
                join = Join(source, self.expr())
            elif self.at_kw("LEFT", "RIGHT", "FULL", "OUTER"):
                raise self.fail("only inner and cross joins are supported (as in QLDB)")
            else:
                return tuple(joins)
            for alias in (join.source.alias, join.source.at_alias):
                if alias in aliases:
                    raise self.fail(f"the alias '{alias}' is used twice in FROM", tok)
                if alias is not None:
                    aliases.add(alias)
            joins.append(join)

    def projection_expr(self) -> Expr:
        """An expression, or an aggregate call that must make up the whole SELECT item."""
        tok = self.tok
        if tok.kind == lexer.WORD and tok.value.lower() in AGGREGATES and self.peek().text == "(":
            self.i += 2
            arg = None if tok.value == "COUNT" and self.accept_op("*") else self.expr()
            self.expect_op(")")
            if not (self.at_op(",") or self.at_kw("FROM", "AS") or self.is_identifier(self.tok)):
                raise self.fail("an aggregate must be a whole SELECT item")
            return Aggregate(tok.value.lower(), arg)
        return self.expr()

    def projection_items(self) -> tuple[ProjectionItem, ...]:
        items: list[ProjectionItem] = []
        while True:
            start = self.tok
            if self.is_identifier(start) and self.peek().text == "." and self.peek(2).text == "*":
                if items and isinstance(items[0].expr, Aggregate):
                    raise self.fail("cannot mix aggregates and plain values without GROUP BY", start)
                self.i += 3
                items.append(ProjectionItem(AllFields(Var(start.value if start.kind == lexer.QIDENT else start.text)),
                                            "*"))
                if not self.accept_op(","):
                    return tuple(items)
                continue
            expr = self.projection_expr()
            name = self.optional_alias() or _default_name(expr, len(items) + 1)
            if items and isinstance(expr, Aggregate) != isinstance(items[0].expr, Aggregate):
                raise self.fail("cannot mix aggregates and plain values without GROUP BY", start)
            items.append(ProjectionItem(expr, name))
            if not self.accept_op(","):
                return tuple(items)

    def from_source(self, earlier: set[str] | frozenset[str] = frozenset()) -> TableRef:
        """One FROM source; `earlier` holds the aliases bound before it (a path over one unnests it)."""
        tok = self.tok
        if self.at_kw("SELECT"):
            raise self.fail("a subquery in FROM goes in parentheses: FROM (SELECT …) AS s")
        if self.at_op("(") and self.at_kw("SELECT", tok=self.peek()):
            ref = TableRef("", "_1", literal=self.primary())
        elif self.at_op("<<") or self.at_op("[") or self.tok.kind in (lexer.ION, lexer.PARAM):
            ref = TableRef("", "_1", literal=self.primary())  # QLDB's docs run functions `FROM << 0 >>`
        elif self.is_identifier(tok) and self.peek().text in (".", "[") and self.identifier_text(tok) in earlier:
            path = self.postfix()
            last = path.steps[-1] if isinstance(path, Path) else None
            ref = TableRef("", last if isinstance(last, str) else "_2", literal=path, lateral=True)
        elif self.at_kw("HISTORY") and self.peek().text == "(":
            ref = self.history_source()
        elif self.at_kw("INFORMATION_SCHEMA") and self.peek().text == ".":
            self.i += 2
            if self.identifier("user_tables").lower() != "user_tables":
                raise self.fail("only information_schema.user_tables is supported", self.peek(-1))
            ref = TableRef("user_tables", "user_tables", information_schema=True)
        else:
            name = self.identifier("a table name")
            committed = name.startswith(_COMMITTED_PREFIX) and len(name) > len(_COMMITTED_PREFIX)
            table = name[len(_COMMITTED_PREFIX) :] if committed else name
            ref = TableRef(table, name, committed_view=committed)
        alias = self.optional_alias()
        at_alias = None
        if self.accept_kw("AT"):
            if ref.literal is None:
                raise self.fail("AT is available on unnested paths and literals only (FROM t AS x, x.list AS y AT i)",
                                self.peek(-1))
            at_alias = self.identifier("an AT alias")
        by_id = self.identifier("an id alias") if self.accept_kw("BY") else None
        if by_id is not None and (ref.information_schema or ref.literal is not None):
            raise self.fail("BY is available on tables only", tok)
        return replace(ref, alias=alias or ref.alias, by_id_alias=by_id, at_alias=at_alias)

    def identifier_text(self, tok: Token) -> str:
        return tok.value if tok.kind == lexer.QIDENT else tok.text

    def history_source(self) -> TableRef:
        self.i += 2  # HISTORY (
        by_table_id = self.tok.kind == lexer.STRING
        name = self.name_or_string("a table name or table id")
        bounds: list[Expr] = []
        while len(bounds) < 2 and self.accept_op(","):
            bounds.append(self.expr())
        self.expect_op(")")
        start, end = (bounds + [None, None])[:2]
        return TableRef(name, name, history=True, history_start=start, history_end=end,
                        by_table_id=by_table_id)

    # -- expressions, lowest precedence first
    def expr(self) -> Expr:
        left = self.and_expr()
        while self.accept_kw("OR"):
            left = Binary("OR", left, self.and_expr())
        return left

    def and_expr(self) -> Expr:  # NOT binds tighter than AND: `NOT a AND b` is `(NOT a) AND b`
        left = self.not_expr()
        while self.accept_kw("AND"):
            left = Binary("AND", left, self.not_expr())
        return left

    def not_expr(self) -> Expr:
        if self.accept_kw("NOT"):
            return Unary("NOT", self.not_expr())
        return self.predicate()

    def predicate(self) -> Expr:
        left = self.concat()
        while True:
            tok = self.tok
            if tok.kind == lexer.OP and tok.text in _COMPARISONS:
                self.i += 1
                left = Binary(_COMPARISONS[tok.text], left, self.concat())
            elif self.accept_kw("IS"):
                negated = self.accept_kw("NOT")
                if not self.at_kw("NULL", "MISSING"):
                    raise self.fail("expected NULL or MISSING")
                left = Is(left, self.advance().value, negated)
            elif self.at_kw("IN", "LIKE", "BETWEEN") or (
                self.at_kw("NOT") and self.at_kw("IN", "LIKE", "BETWEEN", tok=self.peek())
            ):
                negated = self.accept_kw("NOT")
                left = self.special_predicate(self.advance().value, left, negated)
            else:
                return left

    def special_predicate(self, word: str, left: Expr, negated: bool) -> Expr:
        if word == "IN":
            if self.at_op("(") and not self.at_kw("SELECT", tok=self.peek()):
                self.i += 1
                return In(left, ListExpr(self.comma_list(self.expr, ")")), negated)
            return In(left, self.concat(), negated)
        if word == "LIKE":
            pattern = self.concat()
            escape = self.concat() if self.accept_kw("ESCAPE") else None
            return Like(left, pattern, escape, negated)
        low = self.concat()
        self.expect_kw("AND")
        return Between(left, low, self.concat(), negated)

    def binary_level(self, ops: tuple[str, ...], operand: Any) -> Expr:
        left = operand()
        while self.tok.kind == lexer.OP and self.tok.text in ops:
            op = self.advance().text
            left = Binary(op, left, operand())
        return left

    def concat(self) -> Expr:
        return self.binary_level(("||",), self.additive)

    def additive(self) -> Expr:
        return self.binary_level(("+", "-"), self.multiplicative)

    def multiplicative(self) -> Expr:
        return self.binary_level(("*", "/", "%"), self.unary)

    def unary(self) -> Expr:
        if self.tok.kind == lexer.OP and self.tok.text in ("-", "+"):
            return Unary(self.advance().text, self.unary())
        return self.postfix()

    def postfix(self) -> Expr:
        node = self.primary()
        steps: list[str | Expr] = []
        while True:
            if self.at_op("."):
                nxt = self.peek()
                if nxt.kind == lexer.QIDENT or nxt.kind == lexer.WORD:
                    self.i += 2
                    steps.append(nxt.value if nxt.kind == lexer.QIDENT else nxt.text)
                    continue
                if nxt.text == "*":
                    raise self.fail("x.* is supported only as a whole SELECT item (SELECT x.* FROM …)", nxt)
                raise self.fail("expected a field name after '.'", nxt)
            elif self.at_op("["):
                self.i += 1
                if self.at_op("*"):
                    raise self.fail("path wildcards ([*]) are not supported")
                index = self.expr()
                self.expect_op("]")
                steps.append(index.value if isinstance(index, Lit) and isinstance(index.value, str) else index)
                continue
            if not steps:
                return node
            if isinstance(node, Path):  # `(x.a).b` is `x.a.b`: one flat path keeps index lookups simple
                return Path(node.root, node.steps + tuple(steps))
            return Path(node, tuple(steps))

    def primary(self) -> Expr:
        tok = self.tok
        kind = tok.kind
        if kind in _LITERAL_KINDS:
            self.i += 1
            return Lit(tok.value)
        if kind == lexer.PARAM:
            self.i += 1
            self.params += 1
            return Param(self.params - 1)
        if kind == lexer.QIDENT:
            self.i += 1
            return Var(tok.value)
        if kind == lexer.WORD:
            return self.word_primary(tok)
        if kind == lexer.OP:
            if tok.text == "(":
                return self.parenthesized()
            closer = {"{": "}", "[": "]", "<<": ">>"}.get(tok.text)
            if closer is not None:
                self.i += 1
                if closer == "}":
                    return StructExpr(self.comma_list(self.struct_field, "}"))
                items = self.comma_list(self.expr, closer)
                return ListExpr(items) if closer == "]" else BagExpr(items)
        raise self.fail("expected an expression")

    def parenthesized(self) -> Expr:
        self.i += 1
        if self.accept_kw("SELECT"):
            inner: Expr = Subquery(self.select())
            self.expect_op(")")
            return inner
        inner = self.expr()
        self.expect_op(")")
        return inner

    def word_primary(self, tok: Token) -> Expr:
        if tok.value in _WORD_LITERALS:
            self.i += 1
            return Lit(_WORD_LITERALS[tok.value])
        nxt = self.peek()
        if nxt.kind == lexer.OP and nxt.text == "(" and (tok.value not in RESERVED or tok.value in ("EXISTS", "CAST")):
            return self.call(tok)
        if tok.value == "SELECT":
            raise self.fail("subqueries are not supported")
        if tok.value in RESERVED:
            raise self.fail("expected an expression (reserved word: quote it to use it as a name)")
        self.i += 1
        return Var(tok.text)

    def call(self, tok: Token) -> Expr:
        name = tok.text.lower()
        self.i += 2
        if name in AGGREGATES:
            raise self.fail(f"aggregate {name.upper()} is only allowed as a whole SELECT item", tok)
        if name not in FUNCTIONS and name not in SPECIAL_FUNCTIONS:
            supported = ", ".join(sorted({*FUNCTIONS, *SPECIAL_FUNCTIONS}))
            raise self.fail(f"unknown function '{tok.text}' (supported: {supported})", tok)
        if name == "exists" and self.accept_kw("SELECT"):  # EXISTS(SELECT …)
            subquery = Subquery(self.select())
            self.expect_op(")")
            return Call(name, (subquery,))
        special = _SPECIAL_FORMS.get(name)
        if special is not None:
            return Call(name, special(self, tok))
        args = self.comma_list(self.expr, ")")
        low, high = FUNCTIONS[name]
        if len(args) < low or (high is not None and len(args) > high):
            raise self.fail(f"{name} takes {low if low == high else f'at least {low}'} argument(s)", tok)
        return Call(name, args)

    def keyword_literal(self, allowed: tuple[str, ...] | frozenset[str], what: str) -> Lit:
        """A bare word from `allowed` (a date part, a type name) as a lower-case string literal."""
        tok = self.tok
        if tok.kind != lexer.WORD or tok.text.lower() not in allowed:
            raise self.fail(f"expected {what} ({', '.join(sorted(allowed))})")
        self.i += 1
        return Lit(tok.text.lower())

    def date_part_args(self, tok: Token) -> tuple[Expr, ...]:
        """DATE_ADD(part, n, ts) / DATE_DIFF(part, ts1, ts2): the part is a bare word."""
        part = self.keyword_literal(_DATE_PARTS, "a date part")
        self.expect_op(",")
        rest = self.comma_list(self.expr, ")")
        if len(rest) != 2:
            raise self.fail(f"{tok.text} takes a date part and two arguments", tok)
        return (part, *rest)

    def extract_args(self, tok: Token) -> tuple[Expr, ...]:
        """EXTRACT(part FROM ts)."""
        part = self.keyword_literal((*_DATE_PARTS, "timezone_hour", "timezone_minute"), "a date part")
        self.expect_kw("FROM")
        value = self.expr()
        self.expect_op(")")
        return (part, value)

    def substring_args(self, tok: Token) -> tuple[Expr, ...]:
        """SUBSTRING(s, start[, length]) or SUBSTRING(s FROM start [FOR length])."""
        value = self.expr()
        if self.accept_kw("FROM"):
            args = [value, self.expr()]
            if self.accept_word("FOR"):
                args.append(self.expr())
            self.expect_op(")")
            return tuple(args)
        self.expect_op(",")
        rest = self.comma_list(self.expr, ")")
        if len(rest) not in (1, 2):
            raise self.fail("substring takes 2 or 3 argument(s)", tok)
        return (value, *rest)

    def trim_args(self, tok: Token) -> tuple[Expr, ...]:
        """TRIM(s) or TRIM([LEADING|TRAILING|BOTH] [chars] FROM s): (s, where, chars)."""
        where = "both"
        if self.tok.kind == lexer.WORD and self.tok.text.lower() in ("leading", "trailing", "both"):
            where = self.advance().text.lower()
            chars: Expr = Lit(" ")
            if not self.at_kw("FROM"):
                chars = self.expr()
            self.expect_kw("FROM")
            value = self.expr()
        else:
            value = self.expr()
            chars = Lit(" ")
            if self.accept_kw("FROM"):  # TRIM(chars FROM s)
                value, chars = self.expr(), value
        self.expect_op(")")
        return (value, Lit(where), chars)

    def accept_word(self, word: str) -> bool:
        """Accept a non-reserved keyword such as FOR."""
        if self.tok.kind == lexer.WORD and self.tok.text.upper() == word:
            self.i += 1
            return True
        return False

    def cast_args(self, tok: Token) -> tuple[Expr, ...]:
        """CAST(value AS type)."""
        value = self.expr()
        self.expect_kw("AS")
        type_name = self.keyword_literal(_CAST_TYPES, "a type")
        self.expect_op(")")
        return (value, type_name)

    def struct_field(self) -> tuple[str, Expr]:
        tok = self.tok
        if tok.kind not in (lexer.STRING, lexer.QIDENT):
            raise self.fail("expected a struct key ('string' or \"quoted name\")")
        self.i += 1
        self.expect_op(":")
        return tok.value, self.expr()


_SPECIAL_FORMS: dict[str, Callable[[_Parser, Token], tuple[Expr, ...]]] = {
    "date_add": _Parser.date_part_args, "date_diff": _Parser.date_part_args,
    "extract": _Parser.extract_args, "cast": _Parser.cast_args,
    "substring": _Parser.substring_args, "trim": _Parser.trim_args,
}


def _default_name(expr: Expr, position: int) -> str:
    """PartiQL's implied projection name: a path's last field, a variable's name, else `_N`."""
    if isinstance(expr, Var):
        return expr.name
    if isinstance(expr, Path) and isinstance(expr.steps[-1], str):
        return expr.steps[-1]
    return f"_{position}"


def _line_col(sql: str, pos: int) -> tuple[int, int]:
    line = sql.count("\n", 0, pos) + 1
    return line, pos - (sql.rfind("\n", 0, pos) + 1) + 1


def _run(text: str, rule: Callable[[_Parser], Any]) -> Any:
    try:
        parser = _Parser(lexer.tokenize(text))
        node = rule(parser)
        parser.accept_op(";")
        if parser.tok.kind != lexer.EOF:
            raise parser.fail("expected end of statement (one statement per call)")
        return node
    except lexer.LexError as exc:
        line, column = _line_col(text, exc.pos)
        where = f"near '{exc.near}'" if exc.near else "at end of input"
        raise PartiQLSyntaxError(f"syntax error at line {line}, column {column} {where}: {exc.message}",
                                 exc.pos, line, column) from None


def parse(sql: str) -> Statement:
    """Parse one PartiQL statement (an optional trailing `;` is allowed) into a frozen AST.

    Raises PartiQLSyntaxError naming the line, column and offending token. Pure and deterministic, so
    callers may cache results by statement text.
    """
    return _run(sql, _Parser.statement)


def parse_expression(text: str) -> Expr:
    """Parse a lone expression (for tests and tools that evaluate a WHERE fragment); same errors as parse."""
    return _run(text, _Parser.expr)
