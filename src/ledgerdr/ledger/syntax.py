"""The PartiQL syntax tree the parser (partiql.py) builds and the evaluator (expr.py) and statement runners
read: frozen dataclasses, one per expression and statement kind, and PartiQL's MISSING."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class _Missing:
    """PartiQL's MISSING: an absent value, distinct from NULL. Use the one instance, `MISSING`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:  # copy and pickle keep the identity (`is MISSING` checks stay true)
        return "MISSING"


MISSING = _Missing()

# ---------------------------------------------------------------------------------------------- AST


class Expr:
    """Base of every expression node."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Lit(Expr):
    value: Any  # int, Decimal, float, str, bool, None (NULL), MISSING, or an Ion value from backticks


@dataclass(frozen=True, slots=True)
class Param(Expr):
    index: int  # 0-based, in order of appearance


@dataclass(frozen=True, slots=True)
class Var(Expr):
    name: str


@dataclass(frozen=True, slots=True)
class Path(Expr):
    """`root.a[0]['b']`: a `str` step is a field (`['b']` is the same as `."b"`), an Expr step an index."""

    root: Expr
    steps: tuple[str | Expr, ...]


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: str  # 'NOT', '-', '+'
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    op: str  # 'OR', 'AND', '=', '<>', '<', '<=', '>', '>=', '||', '+', '-', '*', '/', '%'
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class In(Expr):
    value: Expr
    collection: Expr  # a ListExpr for `IN (a, b)`, else any expression (`IN ?`)
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Between(Expr):
    value: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Like(Expr):
    value: Expr
    pattern: Expr
    escape: Expr | None = None
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Is(Expr):
    value: Expr
    kind: str  # 'NULL' or 'MISSING'
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Call(Expr):
    name: str  # lower case, one of FUNCTIONS
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Aggregate(Expr):
    name: str  # 'count', 'sum', 'min', 'max', 'avg'
    arg: Expr | None  # None for COUNT(*)


@dataclass(frozen=True, slots=True)
class AllFields(Expr):
    """`x.*` as a SELECT item: every field of the struct `x` names (a FROM alias)."""

    of: Expr


@dataclass(frozen=True, slots=True)
class Subquery(Expr):
    """`(SELECT …)` in FROM, after IN, or as a value: its results as a bag. Uncorrelated: it sees the
    statement's parameters but not the outer query's aliases."""

    select: Select


@dataclass(frozen=True, slots=True)
class StructExpr(Expr):
    fields: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class ListExpr(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class BagExpr(Expr):
    items: tuple[Expr, ...]


DocPath = tuple[str | int, ...]  # a path inside one document, alias stripped: ('a', 0, 'b')


@dataclass(frozen=True, slots=True)
class Statement:
    """Base of every statement. `param_count` is the number of `?` in the text (set by parse)."""

    param_count: int = field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class CreateTable(Statement):
    name: str
    tags: Expr | None = None  # WITH (aws_tags = `{...}`)


@dataclass(frozen=True, slots=True)
class DropTable(Statement):
    name: str


@dataclass(frozen=True, slots=True)
class UndropTable(Statement):
    table_id: str


@dataclass(frozen=True, slots=True)
class CreateIndex(Statement):
    table: str
    path: tuple[str, ...]  # always one top-level field: QLDB indexes nothing else


@dataclass(frozen=True, slots=True)
class DropIndex(Statement):
    index_id: str
    table: str


@dataclass(frozen=True, slots=True)
class Insert(Statement):
    table: str
    values: Expr  # evaluates to one struct or a list/bag of structs


@dataclass(frozen=True, slots=True)
class SetOp:
    path: DocPath
    value: Expr


@dataclass(frozen=True, slots=True)
class RemoveOp:
    path: DocPath


@dataclass(frozen=True, slots=True)
class InsertOp:
    """`INSERT INTO x.path VALUE v [AT pos]` in a FROM-first statement: `path` names a struct (then `at`
    is the new field's name) or a list (`at` an index; none: append); an empty path is the document."""

    path: DocPath
    value: Expr
    at: Expr | None = None


@dataclass(frozen=True, slots=True)
class Update(Statement):
    """`operations` keep the written order of SET and REMOVE; `alias` is the table name if none given."""

    table: str
    alias: str
    by_id_alias: str | None
    operations: tuple[SetOp | RemoveOp | InsertOp, ...]
    where: Expr | None

    @property
    def assignments(self) -> list[tuple[DocPath, Expr]]:
        return [(op.path, op.value) for op in self.operations if isinstance(op, SetOp)]

    @property
    def removals(self) -> list[DocPath]:
        return [op.path for op in self.operations if isinstance(op, RemoveOp)]


@dataclass(frozen=True, slots=True)
class Delete(Statement):
    table: str
    alias: str
    by_id_alias: str | None
    where: Expr | None


@dataclass(frozen=True, slots=True)
class TableRef:
    """A FROM source. `alias` is the binding name: the explicit alias, else the name as written.

    `name` is the table name without the `_ql_committed_` prefix; for `history('id')` it is the table
    id and `by_table_id` is set; for `information_schema.user_tables` it is `user_tables`.
    """

    name: str
    alias: str
    by_id_alias: str | None = None
    committed_view: bool = False
    history: bool = False
    history_start: Expr | None = None
    history_end: Expr | None = None
    by_table_id: bool = False
    information_schema: bool = False
    literal: Expr | None = None  # `FROM << 0 >>`, `FROM [1, 2]`, `FROM ?`: a value's items, not a table
    lateral: bool = False  # `literal` is a path over an earlier alias (`FROM t AS x, x.list AS y`): unnesting
    at_alias: str | None = None  # `AT i`: binds each item's position (literal and lateral sources)


@dataclass(frozen=True, slots=True)
class Star:
    pass


@dataclass(frozen=True, slots=True)
class SelectValue:
    expr: Expr


@dataclass(frozen=True, slots=True)
class ProjectionItem:
    expr: Expr
    name: str  # the explicit alias, else the last field name, else `_N` (1-based position)


@dataclass(frozen=True, slots=True)
class Join:
    """A further FROM source: `, t` and `CROSS JOIN t` (no condition), `[INNER] JOIN t ON cond`."""

    source: TableRef
    on: Expr | None = None


@dataclass(frozen=True, slots=True)
class Select(Statement):
    projection: tuple[ProjectionItem, ...] | Star | SelectValue
    source: TableRef
    where: Expr | None
    joins: tuple[Join, ...] = ()  # QLDB runs inner and cross joins only

    @property
    def sources(self) -> tuple[TableRef, ...]:
        return (self.source, *(join.source for join in self.joins))

    @property
    def is_aggregate(self) -> bool:
        """True when the projection is made of aggregates (then it yields exactly one row)."""
        items = (self.projection,) if isinstance(self.projection, SelectValue) else self.projection
        return isinstance(items, tuple) and any(isinstance(i.expr, Aggregate) for i in items)


@dataclass(frozen=True, slots=True)
class Exec(Statement):
    name: str
    args: tuple[Expr, ...]
