"""Evaluate PartiQL expressions (the syntax tree of `syntax.py`, built by `partiql.py`) over Ion values and plain Python values.

Values: amazon.ion's IonPy* types or plain Python (dict, list, str, int, Decimal, float, bool, None,
datetime, bytes). `None` and Ion typed nulls are NULL; `MISSING` (an absent field) is distinct.
`Bag` marks a PartiQL bag (`<< >>`).

Semantics chosen for QLDB use (PartiQL "permissive" mode):
- `=`/`<>`: numbers compare by value across int/Decimal/float; strings and symbols by text;
  timestamps by instant (no offset = UTC); lists, structs and bags deeply. Values of different types
  are simply not equal (`false`). NULL operand -> NULL, MISSING operand -> MISSING.
- `< <= > >=`: only between two numbers, two texts, two timestamps, two bools or two lobs; any other
  pair yields MISSING (a type mismatch is not an error), so such rows never satisfy WHERE.
- AND/OR/NOT are three-valued; an unknown result is MISSING if an operand was MISSING, else NULL.
  Non-boolean operands count as MISSING. WHERE keeps a row only for a true result.
- `x IS NULL` is true for NULL and for MISSING (as in PartiQL); `x IS MISSING` only for MISSING.
- Navigating into a missing field, a non-struct, or past a list's end yields MISSING.
- Arithmetic mixes int/Decimal/float (float wins, then Decimal); int `/` truncates toward zero;
  dividing by zero raises LedgerError.

Name resolution: `make_env` binds the alias (and the BY id alias) and marks the document as the
implicit source, so an unqualified `a` means the document's field `a` when it is not a variable.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, cast

from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyBool, IonPyDict, IonPyList, IonPyNull
from amazon.ion.symbols import SymbolToken

from ledgerdr.errors import LedgerError
from ledgerdr.ledger import syntax as pq
from ledgerdr.ledger.functions import SCALARS
from ledgerdr.ledger.syntax import MISSING

__all__ = [
    "IMPLICIT", "MISSING", "Bag", "aggregate", "apply_update", "equals", "evaluate", "is_null", "make_env",
    "matches", "project", "remove_path", "set_path",
]


class Bag(list):
    """A PartiQL bag: a list whose order carries no meaning (equality ignores it; indexing yields MISSING)."""

    __slots__ = ()


class _Implicit:
    def __repr__(self) -> str:
        return "IMPLICIT"


# The env key under which the single FROM source is bound for unqualified names. Not a string, so no
# identifier (quoted identifiers can hold any text) can collide with it.
IMPLICIT: Any = _Implicit()

# ----------------------------------------------------------------------------------- value kinds

_MISS, _NULL, _BOOL, _NUM, _TEXT, _TS, _LOB, _STRUCT, _LIST, _BAG, _OTHER = range(11)
_KINDS: dict[type, int] = {}
_ORDERABLE = frozenset({_BOOL, _NUM, _TEXT, _TS, _LOB})


def _classify(t: type) -> int:
    checks: tuple[tuple[Any, int], ...] = (
        (type(MISSING), _MISS), ((type(None), IonPyNull), _NULL), ((bool, IonPyBool), _BOOL),
        (SymbolToken, _TEXT), ((int, float, Decimal), _NUM), (str, _TEXT), (datetime, _TS),
        ((bytes, bytearray), _LOB), (Mapping, _STRUCT), (Bag, _BAG), ((list, tuple), _LIST),
    )  # order matters: bool and IonPyBool before int, SymbolToken (a tuple) before list
    return next((kind for types, kind in checks if issubclass(t, types)), _OTHER)


def _kind(value: Any) -> int:
    t = type(value)
    kind = _KINDS.get(t)
    if kind is None:
        kind = _KINDS[t] = _classify(t)
    return kind


def is_null(value: Any) -> bool:
    """True for NULL (None or any Ion typed null) and for MISSING."""
    return _kind(value) <= _NULL


def _text(value: Any) -> str:
    return value.text if isinstance(value, SymbolToken) else value


def _instant(value: datetime) -> datetime:
    # Ion's unknown offset (-00:00) and date-only timestamps denote UTC instants.
    return value if value.tzinfo is not None else datetime.combine(value.date(), value.time(), UTC)


def _order_key(value: Any, kind: int) -> Any:
    if kind == _TEXT:
        return _text(value)
    if kind == _TS:
        return _instant(value)
    if kind == _BOOL:
        return bool(value)
    return bytes(value) if kind == _LOB else value


# ------------------------------------------------------------------------------ equality, order


def _same(a: Any, b: Any) -> bool:
    """Deep value equality where NULL equals NULL (used inside collections and by `equals`)."""
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        return False
    if ka in _ORDERABLE:
        return _order_key(a, ka) == _order_key(b, kb)
    if ka == _LIST:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if ka == _BAG:
        return _same_multiset(list(a), list(b))
    if ka == _STRUCT:
        return _same_multiset(_struct_items(a), _struct_items(b))
    return ka <= _NULL or a == b


def _struct_items(struct: Mapping) -> list[tuple[str, Any]]:
    return [(_text(k), v) for k, v in struct.items()]


def _same_multiset(left: list, right: list) -> bool:
    if len(left) != len(right):
        return False
    remaining = list(right)
    for item in left:
        match = next((i for i, other in enumerate(remaining) if _same(item, other)), None)
        if match is None:
            return False
        del remaining[match]
    return True


def equals(a: Any, b: Any) -> Any:
    """PartiQL `=`: True/False, NULL (None) if an operand is NULL, MISSING if one is MISSING."""
    ka, kb = _kind(a), _kind(b)
    if ka == _MISS or kb == _MISS:
        return MISSING
    if ka == _NULL or kb == _NULL:
        return None
    return _same(a, b)


_ORDER_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _compare(op: str, a: Any, b: Any) -> Any:
    if op in ("=", "<>"):
        result = equals(a, b)
        return (not result) if op == "<>" and isinstance(result, bool) else result
    ka, kb = _kind(a), _kind(b)
    if ka == _MISS or kb == _MISS:
        return MISSING
    if ka == _NULL or kb == _NULL:
        return None
    if ka != kb or ka not in _ORDERABLE:
        return MISSING
    try:
        return _ORDER_OPS[op](_order_key(a, ka), _order_key(b, kb))
    except ArithmeticError:  # Decimal against a float NaN signals instead of answering: NaN orders nowhere
        return False


# ------------------------------------------------------------------------------------- logic


def _truth(value: Any) -> Any:
    kind = _kind(value)
    if kind == _BOOL:
        return bool(value)
    return None if kind == _NULL else MISSING


def _unknown(*values: Any) -> Any:
    return MISSING if any(v is MISSING for v in values) else None


def _and(left: Any, right_thunk: Any) -> Any:
    left = _truth(left)
    if left is False:
        return False
    right = _truth(right_thunk())
    if right is False:
        return False
    return True if left is True and right is True else _unknown(left, right)


def _or(left: Any, right_thunk: Any) -> Any:
    left = _truth(left)
    if left is True:
        return True
    right = _truth(right_thunk())
    if right is True:
        return True
    return False if left is False and right is False else _unknown(left, right)


def _not(value: Any) -> Any:
    value = _truth(value)
    return (not value) if isinstance(value, bool) else value


# -------------------------------------------------------------------------------- arithmetic


def _int_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _int_mod(a: int, b: int) -> int:
    r = abs(a) % abs(b)
    return -r if a < 0 else r


_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _arith(op: str, a: Any, b: Any) -> Any:
    ka, kb = _kind(a), _kind(b)
    if ka == _MISS or kb == _MISS:
        return MISSING
    if ka == _NULL or kb == _NULL:
        return None
    if op == "||":
        return _text(a) + _text(b) if ka == kb == _TEXT else MISSING
    if ka != _NUM or kb != _NUM:
        return MISSING
    try:
        return _numeric(op, a, b)
    except ArithmeticError as exc:  # float() of a huge int, Decimal % whose quotient is too large
        raise LedgerError(f"arithmetic error in '{op}': {exc.__class__.__name__}") from None


def _numeric(op: str, a: Any, b: Any) -> Any:
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
    elif isinstance(a, Decimal) or isinstance(b, Decimal):
        a, b = Decimal(a), Decimal(b)
    else:
        a, b = int(a), int(b)
    if op in _ARITH:
        return _ARITH[op](a, b)
    if b == 0:
        raise LedgerError(f"division by zero in '{op}'")
    if isinstance(a, int):
        return _int_div(a, b) if op == "/" else _int_mod(a, b)
    if op == "/":
        return a / b
    return math.fmod(a, b) if isinstance(a, float) else a % b  # Decimal % truncates, like SQL


def _negate(op: str, value: Any) -> Any:
    kind = _kind(value)
    if kind <= _NULL:
        return MISSING if kind == _MISS else None
    if kind != _NUM:
        return MISSING
    return -value if op == "-" else value


# --------------------------------------------------------------------------------- predicates


def _in(value: Any, collection: Any) -> Any:
    kc = _kind(collection)
    if kc == _MISS or _kind(value) == _MISS:
        return MISSING
    if kc == _NULL:
        return None
    if kc not in (_LIST, _BAG):
        return MISSING
    unknown = False
    for item in collection:
        result = equals(value, item)
        if result is True:
            return True
        unknown = unknown or result is not False
    return None if unknown else False


@lru_cache(maxsize=256)
def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    parts, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if escape is not None and ch == escape and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(parts), re.DOTALL)


def _like(value: Any, pattern: Any, *escape: Any) -> Any:
    """`value LIKE pattern [ESCAPE e]`; `escape` is empty without an ESCAPE clause (NULL is a value)."""
    operands = (value, pattern, *escape)
    kinds = [_kind(v) for v in operands]
    if _MISS in kinds:
        return MISSING
    if _NULL in kinds:
        return None
    if any(kind != _TEXT for kind in kinds):
        return MISSING
    escape_char = _text(escape[0]) if escape else None
    if escape_char is not None and len(escape_char) != 1:
        raise LedgerError("LIKE ... ESCAPE needs exactly one character")
    return _like_regex(_text(pattern), escape_char).fullmatch(_text(value)) is not None


# ---------------------------------------------------------------------------------- functions


def _size(value: Any) -> Any:
    kind = _kind(value)
    if kind in (_LIST, _BAG, _STRUCT):
        return len(value)
    return None if kind == _NULL else MISSING


def _text_fn(fn: Any) -> Any:
    def apply(value: Any) -> Any:
        kind = _kind(value)
        if kind == _TEXT:
            return fn(_text(value))
        return None if kind == _NULL else MISSING

    return apply


_FUNCTIONS: dict[str, Any] = {
    "size": _size,
    "exists": lambda v: _kind(v) in (_LIST, _BAG, _STRUCT) and len(v) > 0,
    "upper": _text_fn(str.upper),
    "lower": _text_fn(str.lower),
    "char_length": _text_fn(len),
    "character_length": _text_fn(len),
    "coalesce": lambda *vs: next((v for v in vs if not is_null(v)), None),
    "nullif": lambda a, b: None if equals(a, b) is True else a,
    **SCALARS,
}

# ------------------------------------------------------------------------------------ evaluate


def _field(value: Any, name: str) -> Any:
    return value.get(name, MISSING) if _kind(value) == _STRUCT else MISSING


def _index(value: Any, index: Any) -> Any:
    kind = _kind(index)
    if kind == _TEXT:
        return _field(value, _text(index))
    if kind == _NUM and isinstance(index, int) and _kind(value) == _LIST and 0 <= index < len(value):
        return value[index]
    return MISSING


# Runs a subquery's SELECT in the transaction executing the statement (set by Transaction.execute), given
# the outer row's bindings that the subquery refers to (empty for an uncorrelated one).
SUBQUERIES: ContextVar[Callable[[pq.Select, Sequence[Any], dict], list] | None] = ContextVar(
    "ledgerdr_subqueries", default=None)


def _subquery(node: pq.Subquery, env: Mapping, params: Sequence) -> Bag:
    run = SUBQUERIES.get()
    if run is None:
        raise LedgerError("a subquery needs a transaction to run in")
    outer = {name: env[name] for name in free_names(node.select) if name in env}
    return Bag(run(node.select, params, outer))


def free_names(select: pq.Select) -> frozenset[str]:
    """Names a SELECT uses that none of its own FROM sources binds: an outer query's aliases, if the subquery
    is correlated (other names are fields, resolved through the implicit binding)."""
    bound: set[str] = set()
    for source in select.sources:
        bound.update(n for n in (source.alias, source.by_id_alias, source.at_alias) if n)
    return frozenset(_var_names(select) - bound)


def _var_names(node: Any) -> set[str]:
    if isinstance(node, pq.Var):
        return {node.name}
    if isinstance(node, tuple):
        return set().union(*(_var_names(item) for item in node)) if node else set()
    if is_dataclass(node) and not isinstance(node, type):
        return set().union(*(_var_names(getattr(node, f.name)) for f in fields(node)))
    return set()


def _in_collection(node: pq.Expr, env: Mapping, params: Sequence) -> Any:
    """IN's right side; `IN (SELECT a FROM …)` compares with the values of its single column, as SQL does."""
    value = evaluate(node, env, params)
    if isinstance(node, pq.Subquery) and isinstance(node.select.projection, tuple) \
            and len(node.select.projection) == 1 and not isinstance(node.select.projection[0].expr, pq.AllFields):
        name = node.select.projection[0].name
        return Bag(_field(row, name) for row in value)
    return value


def _eval_var(node: pq.Var, env: Mapping, params: Sequence) -> Any:
    if node.name in env:
        return env[node.name]
    if IMPLICIT in env:
        return _field(env[IMPLICIT], node.name)
    raise LedgerError(f"unbound variable '{node.name}'")


def _eval_param(node: pq.Param, env: Mapping, params: Sequence) -> Any:
    if node.index >= len(params):
        raise LedgerError(f"the statement uses parameter {node.index + 1} but only {len(params)} were given")
    return params[node.index]


def _eval_path(node: pq.Path, env: Mapping, params: Sequence) -> Any:
    value = evaluate(node.root, env, params)
    for step in node.steps:
        value = _field(value, step) if isinstance(step, str) else _index(value, evaluate(step, env, params))
        if value is MISSING:
            break
    return value


def _eval_binary(node: pq.Binary, env: Mapping, params: Sequence) -> Any:
    left = evaluate(node.left, env, params)
    op = node.op
    if op == "AND":
        return _and(left, lambda: evaluate(node.right, env, params))
    if op == "OR":
        return _or(left, lambda: evaluate(node.right, env, params))
    right = evaluate(node.right, env, params)
    if op in _ORDER_OPS or op in ("=", "<>"):
        return _compare(op, left, right)
    return _arith(op, left, right)


def _eval_unary(node: pq.Unary, env: Mapping, params: Sequence) -> Any:
    value = evaluate(node.operand, env, params)
    return _not(value) if node.op == "NOT" else _negate(node.op, value)


def _negatable(negated: bool, result: Any) -> Any:
    return _not(result) if negated else result


def _eval_between(node: pq.Between, env: Mapping, params: Sequence) -> Any:
    value = evaluate(node.value, env, params)
    low, high = evaluate(node.low, env, params), evaluate(node.high, env, params)
    result = _and(_compare(">=", value, low), lambda: _compare("<=", value, high))
    return _negatable(node.negated, result)


def _eval_is(node: pq.Is, env: Mapping, params: Sequence) -> bool:
    kind = _kind(evaluate(node.value, env, params))
    result = kind == _MISS if node.kind == "MISSING" else kind <= _NULL
    return result != node.negated


def _eval_struct(node: pq.StructExpr, env: Mapping, params: Sequence) -> dict:
    out = {}
    for key, value_expr in node.fields:
        value = evaluate(value_expr, env, params)
        if value is not MISSING:  # PartiQL drops a struct field whose value is MISSING
            out[key] = value
    return out


def _eval_items(items: tuple[pq.Expr, ...], env: Mapping, params: Sequence) -> list:
    values = (evaluate(item, env, params) for item in items)
    return [None if v is MISSING else v for v in values]  # collections coerce MISSING to NULL


def _eval_aggregate(node: pq.Aggregate, env: Mapping, params: Sequence) -> Any:
    raise LedgerError(f"aggregate {node.name.upper()} evaluated per row: use aggregate() over all rows")


_EVAL: dict[type, Any] = {
    pq.Lit: lambda n, env, params: n.value,
    pq.Param: _eval_param,
    pq.Var: _eval_var,
    pq.Path: _eval_path,
    pq.Binary: _eval_binary,
    pq.Unary: _eval_unary,
    pq.In: lambda n, env, params: _negatable(
        n.negated, _in(evaluate(n.value, env, params), _in_collection(n.collection, env, params))),
    pq.Subquery: _subquery,
    pq.Between: _eval_between,
    pq.Like: lambda n, env, params: _negatable(n.negated, _like(
        *(evaluate(e, env, params) for e in (n.value, n.pattern, n.escape) if e is not None))),
    pq.Is: _eval_is,
    pq.Call: lambda n, env, params: _FUNCTIONS[n.name](*(evaluate(a, env, params) for a in n.args)),
    pq.Aggregate: _eval_aggregate,
    pq.StructExpr: _eval_struct,
    pq.ListExpr: lambda n, env, params: _eval_items(n.items, env, params),
    pq.BagExpr: lambda n, env, params: Bag(_eval_items(n.items, env, params)),
}


def evaluate(expr: pq.Expr, env: Mapping[Any, Any], params: Sequence[Any]) -> Any:
    """Evaluate `expr` with variables from `env` (see make_env) and `?` values from `params`.

    Returns the value: NULL is None or an Ion typed null, an absent value is MISSING. Literal values
    from the AST (backtick Ion) are returned as the same object each time: treat results as read-only.
    Pure: never mutates env, params or documents. Raises
    LedgerError for an unbound variable, a missing parameter, division by zero or an aggregate.
    """
    return _EVAL[expr.__class__](expr, env, params)


def make_env(binding: Any, alias: str, *, by_id_alias: str | None = None, doc_id: Any = None) -> dict:
    """The env for one row: `alias` (and IMPLICIT, for unqualified names) -> binding; BY alias -> doc id."""
    env = {alias: binding, IMPLICIT: binding}
    if by_id_alias is not None:
        env[by_id_alias] = doc_id
    return env


def matches(where: pq.Expr | None, env: Mapping[Any, Any], params: Sequence[Any]) -> bool:
    """WHERE semantics: True only when `where` is absent or evaluates to true (NULL/MISSING -> False)."""
    if where is None:
        return True
    result = evaluate(where, env, params)
    return _kind(result) == _BOOL and bool(result)


# ------------------------------------------------------------------------------- SELECT helpers


def project(select: pq.Select, env: Mapping[Any, Any], params: Sequence[Any]) -> Any:
    """One output value of a non-aggregate SELECT for the row in `env`.

    `*` gives the source binding, plus the BY alias field when there is one; items give a struct
    without the MISSING ones; SELECT VALUE gives the bare value.
    """
    proj = select.projection
    if isinstance(proj, pq.Star):
        if select.joins:  # `*` over a join: the fields of every source's row, in FROM order
            out: dict = {}
            for source in select.sources:
                _merge_fields(out, _with_id(env[source.alias], source.by_id_alias, env))
            return out
        return _with_id(env[select.source.alias], select.source.by_id_alias, env)
    if isinstance(proj, pq.SelectValue):
        return evaluate(proj.expr, env, params)
    out = {}
    for item in proj:
        if isinstance(item.expr, pq.AllFields):
            _merge_fields(out, evaluate(item.expr.of, env, params))
            continue
        value = evaluate(item.expr, env, params)
        if value is not MISSING:
            out[item.name] = value
    return out


def _with_id(binding: Any, by_id_alias: str | None, env: Mapping[Any, Any]) -> Any:
    return binding if by_id_alias is None else _with_field(binding, by_id_alias, env[by_id_alias])


def _merge_fields(out: dict, value: Any) -> None:
    """`x.*`: a struct's fields into the output row (anything else contributes nothing, as in PartiQL)."""
    if _kind(value) == _STRUCT:
        out.update(value.items())


def _fold(agg: pq.Aggregate, values: list) -> Any:
    if agg.name == "count":
        return len(values)
    if not values:
        return None
    kinds = {_kind(v) for v in values}
    if agg.name in ("min", "max"):
        if len(kinds) != 1 or not kinds <= _ORDERABLE:
            raise LedgerError(f"{agg.name.upper()} over values of different or unordered types")
        pick = min if agg.name == "min" else max
        return pick(values, key=lambda v: _order_key(v, _kind(v)))
    if kinds != {_NUM}:
        raise LedgerError(f"{agg.name.upper()} over a non-numeric value")
    total = values[0]
    for v in values[1:]:
        total = _arith("+", total, v)
    if agg.name == "sum":
        return total
    return total / len(values) if isinstance(total, float) else Decimal(total) / len(values)


def aggregate(select: pq.Select, envs: Iterable[Mapping[Any, Any]], params: Sequence[Any]) -> Any:
    """The single result of an aggregate SELECT (`select.is_aggregate`) over all matching rows.

    COUNT(*) counts rows; other aggregates skip NULL and MISSING; SUM/AVG/MIN/MAX of nothing is NULL;
    AVG of integers is a Decimal. Returns a struct, or the bare value for SELECT VALUE.
    """
    projection = select.projection
    assert not isinstance(projection, pq.Star)  # an aggregate SELECT names its aggregates
    named = [(None, projection.expr)] if isinstance(projection, pq.SelectValue) else [
        (item.name, item.expr) for item in projection]
    items = [(name, cast(pq.Aggregate, agg)) for name, agg in named]  # select.is_aggregate: all of them are
    collected: list[list[Any]] = [[] for _ in items]
    for env in envs:
        for (_, agg), bucket in zip(items, collected, strict=True):
            value = True if agg.arg is None else evaluate(agg.arg, env, params)
            if not is_null(value):
                bucket.append(value)
    results = [_fold(agg, bucket) for (_, agg), bucket in zip(items, collected, strict=True)]
    if isinstance(select.projection, pq.SelectValue):
        return results[0]
    return {name: value for (name, _), value in zip(items, results, strict=True)}


# ---------------------------------------------------------------------------------- documents


def _with_field(struct: Mapping, key: str, value: Any) -> Mapping:
    """A copy of `struct` with `key` set (replacing every duplicate); keeps Ion type and annotations."""
    if not isinstance(struct, IonPyDict):
        out = dict(struct)
        out[key] = value
        return out
    copy = IonPyDict.from_value(IonType.STRUCT, {}, struct.ion_annotations)
    placed = False
    for k, v in struct.items():
        if _text(k) != key:
            copy.add_item(k, v)
        elif not placed:
            copy.add_item(k, value)
            placed = True
    if not placed:
        copy.add_item(key, value)
    return copy


def _without_field(struct: Mapping, key: str) -> Mapping:
    if not isinstance(struct, IonPyDict):
        return {k: v for k, v in struct.items() if k != key}
    copy = IonPyDict.from_value(IonType.STRUCT, {}, struct.ion_annotations)
    for k, v in struct.items():
        if _text(k) != key:
            copy.add_item(k, v)
    return copy


def _with_items(original: Sequence, items: list) -> list:
    if isinstance(original, IonPyList):
        return IonPyList.from_value(original.ion_type, items, original.ion_annotations)
    return Bag(items) if isinstance(original, Bag) else items


def _describe(path: pq.DocPath) -> str:
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in path).lstrip(".") or "the document"


def _set(node: Any, path: pq.DocPath, depth: int, value: Any) -> Any:
    step = path[depth]
    last = depth == len(path) - 1
    if isinstance(step, str):
        if _kind(node) != _STRUCT:
            raise LedgerError(f"cannot SET {_describe(path)}: {_describe(path[:depth])} is not a struct")
        child = _field(node, step)
        if not last and _kind(child) <= _NULL:
            child = {}  # SET creates missing intermediate structs
        return _with_field(node, step, value if last else _set(child, path, depth + 1, value))
    if _kind(node) != _LIST or not 0 <= step < len(node):
        raise LedgerError(f"cannot SET {_describe(path)}: no element {step} in {_describe(path[:depth])}")
    items = list(node)
    items[step] = value if last else _set(items[step], path, depth + 1, value)
    return _with_items(node, items)


def set_path(doc: Mapping, path: pq.DocPath, value: Any) -> Mapping:
    """A copy of `doc` with the value at `path` set; the input is never mutated.

    Missing intermediate struct fields are created; an index must exist. Setting MISSING removes the
    field. Raises LedgerError when a step meets a non-struct (field step) or a short list (index step).
    """
    if not path:
        raise LedgerError("cannot SET the whole document")
    if value is MISSING:
        return remove_path(doc, path)
    return _set(doc, tuple(path), 0, value)


def remove_path(doc: Any, path: pq.DocPath) -> Any:
    """A copy of `doc` (a struct, or a list below it) without the value at `path` (a list element is deleted,
    shifting the rest).

    Idempotent: a path that does not exist leaves the document as it is (the same object is returned).
    """
    if not path:
        raise LedgerError("cannot REMOVE the whole document (use DELETE)")
    step, rest = path[0], path[1:]
    if isinstance(step, str):
        child = _field(doc, step)
        if child is MISSING:
            return doc
        if not rest:
            return _without_field(doc, step)
        new_child = remove_path(child, rest) if _kind(child) in (_STRUCT, _LIST) else child
        return doc if new_child is child else _with_field(doc, step, new_child)
    if _kind(doc) != _LIST or not 0 <= step < len(doc):
        return doc
    items = list(doc)
    if rest:
        new_child = remove_path(items[step], rest) if _kind(items[step]) in (_STRUCT, _LIST) else items[step]
        if new_child is items[step]:
            return doc
        items[step] = new_child
    else:
        del items[step]
    return _with_items(doc, items)


def insert_into(doc: Mapping, path: pq.DocPath, value: Any, at: Any) -> Mapping:
    """A copy of `doc` with `value` inserted into the struct or list at `path` (the document when empty):
    into a struct as the new field `at` (which must not exist yet), into a list at index `at` (None:
    appended). Raises LedgerError naming the path otherwise."""
    container: Any = doc
    for step in path:
        container = _field(container, step) if isinstance(step, str) else _index(container, step)
    kind = _kind(container)
    if kind == _STRUCT:
        if not isinstance(at, str):
            raise LedgerError(f"INSERT INTO {_describe(path)}: a struct takes AT 'field name'")
        if _field(container, at) is not MISSING:
            raise LedgerError(f"INSERT INTO {_describe(path)}: field '{at}' already exists (use SET)")
        new: Any = _with_field(container, at, value)
    elif kind == _LIST:
        items = list(container)
        if at is None:
            items.append(value)
        elif isinstance(at, int) and not isinstance(at, bool) and 0 <= at <= len(items):
            items.insert(at, value)
        else:
            raise LedgerError(f"INSERT INTO {_describe(path)}: AT {at!r} is not a position in its {len(items)} items")
        new = _with_items(container, items)
    else:
        raise LedgerError(f"INSERT INTO {_describe(path)}: not a struct or a list")
    return new if not path else set_path(doc, path, new)


def apply_update(update: pq.Update, doc: Mapping, env: Mapping[Any, Any], params: Sequence[Any]) -> Mapping:
    """The new version of `doc` after `update`'s SET/REMOVE/INSERT INTO operations, in written order.

    Every value is evaluated against the original row (`env`), as in SQL, before any change.
    """
    ops = update.operations
    values = [None if isinstance(op, pq.RemoveOp) else evaluate(op.value, env, params) for op in ops]
    for op, value in zip(ops, values, strict=True):
        if isinstance(op, pq.SetOp):
            doc = set_path(doc, op.path, value)
        elif isinstance(op, pq.InsertOp):
            doc = insert_into(doc, op.path, value, None if op.at is None else evaluate(op.at, env, params))
        else:
            doc = remove_path(doc, op.path)
    return doc
