"""SELECT: the FROM sources (tables, committed views, history, literals, information_schema), joins,
unnesting, WHERE, projection and aggregates, run through a `StatementContext`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from . import expr as ev
from .context import StatementContext
from .syntax import Join, Select, TableRef


def run_select(txn: StatementContext, stmt: Select, params: Sequence[Any], outer: dict | None = None) -> list[Any]:
    """`outer`: the bindings of the enclosing query's row that a correlated subquery refers to."""
    envs = _source_envs(txn, stmt.source, stmt.where, params)
    if outer:
        envs = ({**outer, **env} for env in envs)
    for join in stmt.joins:
        envs = _joined(txn, envs, join, params)
    rows = (env for env in envs if ev.matches(stmt.where, env, params))
    if stmt.is_aggregate:
        return [ev.aggregate(stmt, rows, params)]
    return [ev.project(stmt, env, params) for env in rows]


def _joined(txn: StatementContext, envs: Iterator[dict], join: Join, params: Sequence[Any]) -> Iterator[dict]:
    """Nested-loop inner join: every left row with every row of `join.source` satisfying ON. The right
    side is read once (a full read, recorded for OCC). Unqualified names resolve to no single source in
    a join, so the merged rows have no implicit binding: fields are named through their alias."""
    if join.source.lateral:
        yield from _unnested(envs, join, params)
        return
    right = [{k: v for k, v in env.items() if k is not ev.IMPLICIT}
             for env in _source_envs(txn, join.source, None, params)]
    for left in envs:
        left = {k: v for k, v in left.items() if k is not ev.IMPLICIT}
        for row in right:
            merged = {**left, **row}
            if ev.matches(join.on, merged, params):
                yield merged


def _unnested(envs: Iterator[dict], join: Join, params: Sequence[Any]) -> Iterator[dict]:
    """`FROM t AS x, x.list AS y [AT i]`: each left row with each item of its own collection."""
    source = join.source
    assert source.literal is not None  # an unnested source names its collection
    for left in envs:
        left = {k: v for k, v in left.items() if k is not ev.IMPLICIT}
        for position, item in _items(ev.evaluate(source.literal, left, params)):
            merged = {**left, source.alias: item}
            if source.at_alias is not None:
                merged[source.at_alias] = position
            if ev.matches(join.on, merged, params):
                yield merged


def _items(value: Any) -> list[tuple[int | None, Any]]:
    """A FROM value's items with their positions: a list's or bag's items; MISSING gives none; any other
    value is one item (PartiQL's permissive rule)."""
    if value is ev.MISSING:
        return []
    if isinstance(value, list | tuple):
        return list(enumerate(value))
    return [(None, value)]


def _source_envs(txn: StatementContext, source: TableRef, where: Any, params: Sequence[Any]) -> Iterator[dict]:
    alias, by_id = source.alias, source.by_id_alias
    if source.literal is not None:
        for position, item in _items(ev.evaluate(source.literal, {}, params)):
            env = ev.make_env(item, alias)
            if source.at_alias is not None:
                env[source.at_alias] = position
            yield env
    elif source.information_schema:
        for row in txn.user_tables():
            yield ev.make_env(row, alias)
    elif source.history:
        table = txn.resolve_any(source.name, by_table_id=source.by_table_id)
        start = None if source.history_start is None else ev.evaluate(source.history_start, {}, params)
        end = None if source.history_end is None else ev.evaluate(source.history_end, {}, params)
        for doc_id, revision in txn.history_revisions(table, start, end):
            yield ev.make_env(revision, alias, by_id_alias=by_id, doc_id=doc_id)
    elif source.committed_view:
        table = txn.resolve(source.name)
        for doc_id, revision in txn.committed_revisions(table):
            yield ev.make_env(revision, alias, by_id_alias=by_id, doc_id=doc_id)
    else:
        table = txn.resolve(source.name)
        for doc in txn.candidates(table, where, alias, by_id, params):
            yield ev.make_env(doc.data, alias, by_id_alias=by_id, doc_id=doc.doc_id)
