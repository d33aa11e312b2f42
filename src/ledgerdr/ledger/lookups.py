"""Index planning: which top-level fields (or the document id) a WHERE clause fixes to a constant, so a
transaction can fetch candidates through an index or by id instead of scanning the table. The WHERE is still
evaluated on every candidate (expr.py); this only narrows what is read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from typing import Any

from ledgerdr.ledger import syntax as pq


def _children(node: Any) -> Iterable[pq.Expr]:
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, pq.Expr):
            yield value
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, pq.Expr):
                    yield item
                elif isinstance(item, tuple):  # struct fields: (key, expr)
                    yield item[1]


def _is_constant(node: pq.Expr) -> bool:
    """No variable, path, aggregate or subquery inside: the value depends on the parameters only (and index
    planning may evaluate it up front)."""
    if isinstance(node, (pq.Var, pq.Path, pq.Aggregate, pq.Subquery)):
        return False
    return all(_is_constant(child) for child in _children(node)) if is_dataclass(node) else True


def _conjuncts(where: pq.Expr | None) -> Iterable[pq.Expr]:
    if isinstance(where, pq.Binary) and where.op == "AND":
        yield from _conjuncts(where.left)
        yield from _conjuncts(where.right)
    elif where is not None:
        yield where


def _equalities(where: pq.Expr | None) -> Iterable[tuple[pq.Expr, pq.Expr]]:
    """(operand, constant) for each top-level `operand = constant` conjunct, either side round."""
    for conj in _conjuncts(where):
        if isinstance(conj, pq.Binary) and conj.op == "=":
            if _is_constant(conj.right):
                yield conj.left, conj.right
            elif _is_constant(conj.left):
                yield conj.right, conj.left


def equality_lookups(where: pq.Expr | None, alias: str, by_id_alias: str | None = None) -> dict[str, pq.Expr]:
    """Top-level fields fixed by WHERE's `alias.f = const` / `f = const` conjuncts -> the constant Expr.

    Evaluate each constant with `evaluate(expr, {}, params)`. The first equality on a field wins; the
    engine must still check the whole WHERE on the candidates it fetches through an index.
    """
    found: dict[str, pq.Expr] = {}
    for operand, constant in _equalities(where):
        name = None
        if isinstance(operand, pq.Path) and operand.root == pq.Var(alias) and len(operand.steps) == 1:
            name = operand.steps[0] if isinstance(operand.steps[0], str) else None
        elif isinstance(operand, pq.Var) and operand.name not in (alias, by_id_alias):
            name = operand.name
        if name is not None:
            found.setdefault(name, constant)
    return found


def id_lookup(where: pq.Expr | None, by_id_alias: str | None) -> pq.Expr | None:
    """The constant of a top-level `<by_id_alias> = const` conjunct (a document-id lookup), else None."""
    if by_id_alias is None:
        return None
    target = pq.Var(by_id_alias)
    return next((constant for operand, constant in _equalities(where) if operand == target), None)
