"""Tests for the embedded ledger's PartiQL subset: tokenizer, parser (ledger/partiql.py) and evaluator
(ledger/expr.py). Values are real amazon.ion values wherever the ledger would see them."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from amazon.ion import simpleion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerdr.errors import LedgerError
from ledgerdr.ledger import expr as ev
from ledgerdr.ledger.lexer import RESERVED
from ledgerdr.ledger.lookups import equality_lookups, id_lookup
from ledgerdr.ledger.partiql import FUNCTIONS, PartiQLSyntaxError, parse, parse_expression
from ledgerdr.ledger.syntax import (
    MISSING,
    Aggregate,
    BagExpr,
    Between,
    Binary,
    Call,
    CreateIndex,
    CreateTable,
    Delete,
    DropIndex,
    DropTable,
    Exec,
    Expr,
    In,
    Insert,
    InsertOp,
    Is,
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
    StructExpr,
    TableRef,
    Unary,
    UndropTable,
    Update,
    Var,
)


def ion(text: str):
    return simpleion.loads(text)


def where_of(sql: str) -> Expr:
    stmt = parse(sql)
    assert isinstance(stmt, Select | Update | Delete)
    return stmt.where


# ============================================================================ parser: statements


def test_create_drop_undrop_table_and_index():
    assert parse("CREATE TABLE Person") == CreateTable("Person")
    assert parse("DROP TABLE Person") == DropTable("Person")
    assert parse('UNDROP TABLE "5PLf9SXwndd63lPaSIa0O6"') == UndropTable("5PLf9SXwndd63lPaSIa0O6")
    assert parse("CREATE INDEX ON Person (GovId)") == CreateIndex("Person", ("GovId",))
    assert parse('DROP INDEX "4tPW3fUhaVhDinRgKRLhGU" ON Person WITH (purge = true)') == DropIndex(
        "4tPW3fUhaVhDinRgKRLhGU", "Person")
    tagged = parse("CREATE TABLE t WITH (aws_tags = `{environment: \"dev\"}`)")
    assert isinstance(tagged, CreateTable) and tagged.tags == Lit({"environment": "dev"})


def test_keywords_are_case_insensitive_but_names_keep_their_case():
    assert parse("create TABLE VehicleRegistration") == CreateTable("VehicleRegistration")
    assert parse("cReAtE iNdEx oN Person (govId)") == CreateIndex("Person", ("govId",))
    lower = parse("select * from t as X where X.a = 1")
    upper = parse("SELECT * FROM t AS X WHERE X.a = 1")
    assert lower == upper and lower.source.alias == "X"


def test_quoted_identifiers_preserve_case_allow_reserved_words_and_escape_quotes():
    assert parse('CREATE TABLE "Select"') == CreateTable("Select")
    assert parse('DROP TABLE "my ""odd"" table"') == DropTable('my "odd" table')
    stmt = parse('SELECT "value" FROM "Order" AS "o" WHERE "o"."Total" > 1')
    assert stmt.source == TableRef("Order", "o")
    assert stmt.projection == (ProjectionItem(Var("value"), "value"),)
    assert stmt.where == Binary(">", Path(Var("o"), ("Total",)), Lit(1))


def test_any_word_is_a_field_name_after_a_dot():
    assert parse_expression("x.value.index") == Path(Var("x"), ("value", "index"))


def test_create_index_accepts_one_top_level_field_only():
    with pytest.raises(PartiQLSyntaxError, match="top-level"):
        parse("CREATE INDEX ON t (a.b)")
    with pytest.raises(PartiQLSyntaxError, match="exactly one field"):
        parse("CREATE INDEX ON t (a, b)")


def test_insert_forms():
    assert parse("INSERT INTO Person ?") == Insert("Person", Param(0))
    assert parse("INSERT INTO Person VALUE ?") == Insert("Person", Param(0))
    value = parse("INSERT INTO t VALUE {'a': 1, \"B\": [1, {'c': <<2>>}], 'd': ?}")
    assert value == Insert("t", StructExpr((
        ("a", Lit(1)),
        ("B", ListExpr((Lit(1), StructExpr((("c", BagExpr((Lit(2),))),))))),
        ("d", Param(0)),
    )))
    bag = parse("INSERT INTO t << {'a': 1}, ? >>")
    assert bag == Insert("t", BagExpr((StructExpr((("a", Lit(1)),)), Param(0))))


def test_update_set_remove_where_with_alias_and_by():
    stmt = parse("UPDATE Person AS p BY pid SET p.Address.City = ?, p.tags[0] = 'x', age = 3 "
                 "REMOVE p.old WHERE pid = ?")
    assert stmt == Update(
        "Person", "p", "pid",
        (SetOp(("Address", "City"), Param(0)), SetOp(("tags", 0), Lit("x")), SetOp(("age",), Lit(3)),
         RemoveOp(("old",))),
        Binary("=", Var("pid"), Param(1)),
    )
    assert stmt.assignments == [(("Address", "City"), Param(0)), (("tags", 0), Lit("x")), (("age",), Lit(3))]
    assert stmt.removals == [("old",)]


def test_update_without_alias_binds_the_table_name_and_paths_are_document_relative():
    stmt = parse("UPDATE Person SET Person.a = 1, b['c'] = 2 REMOVE d")
    assert stmt.alias == "Person" and stmt.by_id_alias is None and stmt.where is None
    assert stmt.operations == (SetOp(("a",), Lit(1)), SetOp(("b", "c"), Lit(2)), RemoveOp(("d",)))


def test_update_needs_an_operation_and_a_real_path():
    with pytest.raises(PartiQLSyntaxError, match="expected SET, REMOVE or INSERT INTO"):
        parse("UPDATE t WHERE a = 1")
    with pytest.raises(PartiQLSyntaxError, match="whole document"):
        parse("UPDATE t AS x SET x = {'a': 1}")
    with pytest.raises(PartiQLSyntaxError, match="integer literals"):
        parse("UPDATE t SET a[?] = 1")


def test_qldb_from_first_dml_maps_onto_update():
    stmt = parse("FROM Person AS p WHERE p.GovId = ? SET p.Name = ? REMOVE p.Nick")
    assert stmt == Update("Person", "p", None, (SetOp(("Name",), Param(1)), RemoveOp(("Nick",))),
                          Binary("=", Path(Var("p"), ("GovId",)), Param(0)))
    assert parse("FROM Person AS p INSERT INTO p VALUE 1 AT 'x'").operations == (InsertOp((), Lit(1), Lit("x")),)


def test_delete_forms():
    assert parse("DELETE FROM t AS x BY id WHERE id = ?") == Delete(
        "t", "x", "id", Binary("=", Var("id"), Param(0)))
    assert parse("delete from t") == Delete("t", "t", None, None)


def test_select_projections():
    assert parse("SELECT * FROM t").projection == Star()
    items = parse("SELECT x.a.b AS n, c, x.d, x['e'] f, 1 + 2, x.l[0] FROM t AS x").projection
    assert [i.name for i in items] == ["n", "c", "d", "f", "_5", "_6"]
    assert items[0].expr == Path(Var("x"), ("a", "b"))
    assert items[3].expr == Path(Var("x"), ("e",))
    assert parse("SELECT VALUE x.a FROM t x").projection == SelectValue(Path(Var("x"), ("a",)))


def test_select_count_star_and_aggregates():
    stmt = parse("SELECT COUNT(*) FROM Person")
    assert stmt.projection == (ProjectionItem(Aggregate("count", None), "_1"),) and stmt.is_aggregate
    stmt = parse("SELECT count(x.a) AS n, SUM(x.b) FROM t x")
    assert [i.expr for i in stmt.projection] == [Aggregate("count", Path(Var("x"), ("a",))),
                                                 Aggregate("sum", Path(Var("x"), ("b",)))]
    assert not parse("SELECT a FROM t").is_aggregate


def test_from_sources():
    committed = parse("SELECT * FROM _ql_committed_Person AS c WHERE c.metadata.id = ?").source
    assert committed == TableRef("Person", "c", committed_view=True)
    assert parse("SELECT * FROM _ql_committed_Person").source.alias == "_ql_committed_Person"
    hist = parse("SELECT * FROM history(Person, `2019-06-05T00:00:00Z`, ?) AS h BY hid").source
    assert hist.history and hist.name == "Person" and hist.alias == "h" and hist.by_id_alias == "hid"
    assert hist.history_start == Lit(datetime(2019, 6, 5, tzinfo=UTC)) and hist.history_end == Param(0)
    by_id = parse("SELECT * FROM history('5PLf9SXwndd63lPaSIa0O6')").source
    assert by_id.by_table_id and by_id.name == "5PLf9SXwndd63lPaSIa0O6" and by_id.history_start is None
    info = parse("SELECT VALUE name FROM information_schema.user_tables WHERE status = 'ACTIVE'").source
    assert info == TableRef("user_tables", "user_tables", information_schema=True)


def test_exec_statement():
    assert parse("EXEC redact_revision ?, '5PLf9SXwndd63lPaSIa0O6', 'JdxjkR9bSYB5jMHWcI464T'") == Exec(
        "redact_revision", (Param(0), Lit("5PLf9SXwndd63lPaSIa0O6"), Lit("JdxjkR9bSYB5jMHWcI464T")))


def test_one_statement_with_optional_semicolon_and_comments():
    assert parse("SELECT * FROM t;") == parse("SELECT * FROM t")
    assert parse("SELECT * -- all\nFROM /* the table */ t") == parse("SELECT * FROM t")
    with pytest.raises(PartiQLSyntaxError, match="one statement per call"):
        parse("SELECT * FROM t; SELECT * FROM u")


# ============================================================================ parser: literals


def test_number_literals_follow_partiql_types():
    assert parse_expression("1") == Lit(1)
    value = parse_expression("1.50").value
    assert isinstance(value, Decimal) and str(value) == "1.50"
    assert parse_expression("1e3") == Lit(1000.0) and isinstance(parse_expression("1.5E-1").value, float)
    assert parse_expression("-1") == Unary("-", Lit(1))


def test_word_literals_and_strings():
    assert [parse_expression(w).value for w in ("TRUE", "false", "Null")] == [True, False, None]
    assert parse_expression("missing").value is MISSING
    assert parse_expression("'it''s'") == Lit("it's")


def test_backtick_ion_literals():
    ts = parse_expression("`2019-01-01T`").value
    assert isinstance(ts, datetime) and ts.year == 2019
    assert parse_expression("`{{aGVsbG8=}}`").value == b"hello"
    nested = parse_expression("`{a: \"has ` backtick\", b: [1, 2e0]}`").value
    assert nested["a"] == "has ` backtick" and nested["b"][1] == 2.0
    assert parse_expression("`'quoted sym'`").value.text == "quoted sym"


def test_parameters_are_numbered_in_order_of_appearance():
    stmt = parse("SELECT x.a FROM t AS x WHERE x.b = ? AND x.c IN (?, 1, ?) OR x.d BETWEEN ? AND ?")
    params: list[int] = []

    def walk(node):
        if isinstance(node, Param):
            params.append(node.index)
        elif dataclasses.is_dataclass(node):
            for f in dataclasses.fields(node):
                walk(getattr(node, f.name))
        elif isinstance(node, tuple):
            for item in node:
                walk(item)

    walk(stmt.where)
    assert params == [0, 1, 2, 3, 4] and stmt.param_count == 5
    assert parse("UPDATE t SET a = ? WHERE b = ?").param_count == 2
    assert parse("CREATE TABLE t").param_count == 0


# ============================================================================ parser: precedence


@pytest.mark.parametrize(("text", "expected"), [
    ("a OR b AND c", Binary("OR", Var("a"), Binary("AND", Var("b"), Var("c")))),
    ("NOT a AND b", Binary("AND", Unary("NOT", Var("a")), Var("b"))),
    ("NOT a = b", Unary("NOT", Binary("=", Var("a"), Var("b")))),
    ("a = b + c * d", Binary("=", Var("a"), Binary("+", Var("b"), Binary("*", Var("c"), Var("d"))))),
    ("a - b - c", Binary("-", Binary("-", Var("a"), Var("b")), Var("c"))),
    ("-a.b * c", Binary("*", Unary("-", Path(Var("a"), ("b",))), Var("c"))),
    ("(a OR b) AND c", Binary("AND", Binary("OR", Var("a"), Var("b")), Var("c"))),
    ("a || b = c", Binary("=", Binary("||", Var("a"), Var("b")), Var("c"))),
    ("a BETWEEN 1 AND 2 AND b", Binary("AND", Between(Var("a"), Lit(1), Lit(2)), Var("b"))),
    ("a NOT IN (1) OR b IS NOT MISSING",
     Binary("OR", In(Var("a"), ListExpr((Lit(1),)), True), Is(Var("b"), "MISSING", True))),
    ("a != b", Binary("<>", Var("a"), Var("b"))),
    ("a IN ?", In(Var("a"), Param(0))),
    ("a NOT LIKE 'x%' ESCAPE '!'", Like(Var("a"), Lit("x%"), Lit("!"), True)),
    ("x[0]['k'].y", Path(Var("x"), (Lit(0), "k", "y"))),
    ("(x.a).b[?]", Path(Var("x"), ("a", "b", Param(0)))),
    ("size(x.l) > 0", Binary(">", Call("size", (Path(Var("x"), ("l",)),)), Lit(0))),
])
def test_precedence_and_shapes(text, expected):
    assert parse_expression(text) == expected


# ============================================================================ parser: errors


@pytest.mark.parametrize(("sql", "line", "column", "near", "detail"), [
    ("SELECT * FORM t", 1, 10, "FORM", "expected FROM"),
    ("SELECT * FROM a LEFT JOIN b ON a.x = b.y", 1, 17, "LEFT", "only inner and cross joins"),
    ("SELECT * FROM a FULL OUTER JOIN b ON a.x = b.y", 1, 17, "FULL", "only inner and cross joins"),
    ("SELECT * FROM a JOIN b", 1, 23, "", "expected ON"),
    ("SELECT * FROM a, a", 1, 16, ",", "used twice"),
    ("SELECT * FROM t WHERE a IN (SELECT b FROM u", 1, 44, "", "expected ')'"),
    ("SELECT * FROM SELECT", 1, 15, "SELECT", "goes in parentheses"),
    ("SELECT *\nFROM t\nWHERE a = = 1", 3, 11, "=", "expected an expression"),
    ("SELECT 'abc FROM t", 1, 8, "'abc FROM t", "unterminated string literal"),
    ("SELECT * FROM t WHERE a = `{a:`", 1, 27, "`{a:`", "invalid Ion literal"),
    ("SELECT * FROM t WHERE a = `2019", 1, 27, "`2019", "unterminated Ion literal"),
    ("SELECT * FROM t WHERE a = #", 1, 27, "#", "unexpected character"),
    ("SELECT a, COUNT(*) FROM t", 1, 11, "COUNT", "cannot mix aggregates"),
    ("SELECT COUNT(*) + 1 FROM t", 1, 17, "+", "whole SELECT item"),
    ("SELECT * FROM t WHERE COUNT(*) > 1", 1, 23, "COUNT", "only allowed as a whole SELECT item"),
    ("SELECT * FROM t AS x WHERE x.* = 1", 1, 30, "*", "only as a whole SELECT item"),
    ("SELECT * FROM t ORDER BY a", 1, 17, "ORDER", "ORDER is not supported"),
    ("SELECT nope(a) FROM t", 1, 8, "nope", "unknown function"),
    ("SELECT size(a, b) FROM t", 1, 8, "size", "takes 1 argument"),
    ("SELECT * FROM table", 1, 15, "table", "reserved word: quote it"),
    ("INSERT t ?", 1, 8, "t", "expected INTO"),
    ("GRANT ALL", 1, 1, "GRANT", "expected a statement: SELECT"),
    ("SELECT * FROM t WHERE", 1, 22, "", "expected an expression"),
])
def test_syntax_errors_name_position_and_token(sql, line, column, near, detail):
    with pytest.raises(PartiQLSyntaxError) as info:
        parse(sql)
    err = info.value
    assert isinstance(err, LedgerError) and err.exit_code == 5
    assert (err.line, err.column) == (line, column)
    lines = sql.split("\n")
    assert err.position == sum(len(x) + 1 for x in lines[: line - 1]) + column - 1
    where = f"near '{near}'" if near else "at end of input"
    assert str(err).startswith(f"syntax error at line {line}, column {column} {where}: ")
    assert detail in str(err)


# ============================================================================ round trip (hypothesis)

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _quote(text: str, mark: str) -> str:
    return mark + text.replace(mark, mark * 2) + mark


def _name(name: str) -> str:
    bare = _IDENT_RE.match(name) and name.upper() not in RESERVED
    return name if bare else _quote(name, '"')


def _literal(value) -> str:
    if value is MISSING:
        return "MISSING"
    if value is None or isinstance(value, bool):
        return {None: "NULL", True: "TRUE", False: "FALSE"}[value]
    if isinstance(value, str):
        return _quote(value, "'")
    if isinstance(value, float):
        text = repr(value)
        return text if "e" in text else text + "e0"
    return str(value)


_LEVEL = {"OR": 1, "AND": 2, "||": 5, "+": 6, "-": 6, "*": 7, "/": 7, "%": 7}  # comparisons: 4


def level(node: Expr) -> int:
    """PartiQL binding strength: OR 1, AND 2, NOT 3, predicates 4, || 5, + - 6, * / % 7, sign 8, atoms 9."""
    if isinstance(node, Binary):
        return _LEVEL.get(node.op, 4)
    if isinstance(node, Unary):
        return 3 if node.op == "NOT" else 8
    return 4 if isinstance(node, In | Between | Like | Is) else 9


def show(node: Expr, minimal: bool = False) -> str:
    """A tiny printer. minimal=False parenthesises every compound operand; minimal=True only where
    precedence and left-associativity require it, so parsing it back checks the precedence table."""

    def sub(child: Expr, at_least: int = 0) -> str:
        text = show(child, minimal)
        needs = level(child) < at_least if minimal else level(child) < 9 and at_least > 0
        return f"({text})" if needs else text

    items = lambda xs: ", ".join(sub(x) for x in xs)  # noqa: E731
    neg = lambda n: "NOT " if n.negated else ""  # noqa: E731
    match node:
        case Lit(value):
            return _literal(value)
        case Param():
            return "?"
        case Var(name):
            return _name(name)
        case Path(root, steps):
            return sub(root, 9) + "".join("." + _quote(s, '"') if isinstance(s, str) else f"[{sub(s)}]"
                                          for s in steps)
        case Unary(op, operand):
            return f"{op} {sub(operand, level(node))}"
        case Binary(op, left, right):
            return f"{sub(left, level(node))} {op} {sub(right, level(node) + 1)}"
        case In(value, collection):
            return f"{sub(value, 4)} {neg(node)}IN {sub(collection, 5)}"
        case Between(value, low, high):
            return f"{sub(value, 4)} {neg(node)}BETWEEN {sub(low, 5)} AND {sub(high, 5)}"
        case Like(value, pattern, escape):
            tail = f" ESCAPE {sub(escape, 5)}" if escape is not None else ""
            return f"{sub(value, 4)} {neg(node)}LIKE {sub(pattern, 5)}{tail}"
        case Is(value, kind):
            return f"{sub(value, 4)} IS {neg(node)}{kind}"
        case Call(name, args):
            return f"{name}({items(args)})"
        case StructExpr(fields):
            return "{" + ", ".join(_quote(k, "'") + ": " + sub(v) for k, v in fields) + "}"
        case ListExpr(xs):
            return f"[{items(xs)}]"
        case BagExpr(xs):
            return f"<< {items(xs)} >>"
    raise AssertionError(node)


def renumber(node, counter: list[int]):
    """Number parameters in printing order (dataclass field order is printing order)."""
    if isinstance(node, Param):
        counter[0] += 1
        return Param(counter[0] - 1)
    if isinstance(node, tuple):
        return tuple(renumber(x, counter) for x in node)
    if isinstance(node, Expr):
        return dataclasses.replace(node, **{f.name: renumber(getattr(node, f.name), counter)
                                            for f in dataclasses.fields(node)})
    return node


names = st.one_of(st.text(string.ascii_letters + "_", min_size=1, max_size=6),
                  st.text(min_size=1, max_size=4))  # the second kind needs quoting
leaves = st.one_of(
    st.integers(0, 10**20).map(Lit),
    st.tuples(st.integers(0, 10**6), st.integers(0, 10**4)).map(lambda t: Lit(Decimal(f"{t[0]}.{t[1]}"))),
    st.floats(0, 1e300, allow_nan=False).map(Lit),
    st.text(max_size=6).map(Lit),
    st.sampled_from([True, False, None, MISSING]).map(Lit),
    st.just(Param(0)),
    names.map(Var),
)
_ops = ["OR", "AND", "=", "<>", "<", "<=", ">", ">=", "||", "+", "-", "*", "/", "%"]
_fn_arities = [(n, lo) for n, (lo, hi) in FUNCTIONS.items()] + [("coalesce", 3)]


def _extend(kids):
    # An IN collection printed as "(...)" would read back as a one-item list: use what QLDB users write.
    collections = st.one_of(st.lists(kids, max_size=3).map(lambda xs: ListExpr(tuple(xs))), st.just(Param(0)),
                            st.lists(kids, max_size=2).map(lambda xs: BagExpr(tuple(xs))))
    index = kids.filter(lambda e: not (isinstance(e, Lit) and isinstance(e.value, str)))
    return st.one_of(
        st.builds(Binary, st.sampled_from(_ops), kids, kids),
        st.builds(Unary, st.sampled_from(["NOT", "-", "+"]), kids),
        st.builds(In, kids, collections, st.booleans()),
        st.builds(Between, kids, kids, kids, st.booleans()),
        st.builds(Like, kids, kids, st.none() | kids, st.booleans()),
        st.builds(Is, kids, st.sampled_from(["NULL", "MISSING"]), st.booleans()),
        st.builds(Path, names.map(Var), st.lists(names | index, min_size=1, max_size=3).map(tuple)),
        st.sampled_from(_fn_arities).flatmap(
            lambda fa: st.lists(kids, min_size=fa[1], max_size=fa[1]).map(lambda a: Call(fa[0], tuple(a)))),
        st.lists(st.tuples(st.text(max_size=4), kids), max_size=3).map(lambda f: StructExpr(tuple(f))),
        st.lists(kids, max_size=3).map(lambda xs: ListExpr(tuple(xs))),
        st.lists(kids, max_size=3).map(lambda xs: BagExpr(tuple(xs))),
    )


trees = st.recursive(leaves, _extend, max_leaves=12).map(lambda t: renumber(t, [0]))


# Operators grouped by precedence level, so every level is drawn equally often.
_ops_by_level = [["OR"], ["AND"], ["=", "<>", "<", "<=", ">", ">="], ["||"], ["+", "-"], ["*", "/", "%"]]


def _operators(kids):
    binary = st.builds(Binary, st.sampled_from(_ops_by_level).flatmap(st.sampled_from), kids, kids)
    return st.one_of(
        binary, binary, binary,
        st.builds(Unary, st.sampled_from(["NOT", "-"]), kids),
        st.builds(Between, kids, kids, kids, st.booleans()),
        st.builds(Like, kids, kids, st.none() | kids, st.booleans()),
        st.builds(Is, kids, st.sampled_from(["NULL", "MISSING"]), st.booleans()),
        st.builds(In, kids, st.just(Param(0)), st.booleans()),
    )


# Operator-only trees over short names: dense in the operator nestings that precedence decides.
operator_trees = st.recursive(st.sampled_from("abcd").map(Var), _operators, max_leaves=8).map(
    lambda t: renumber(t, [0]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees, st.booleans())
def test_printed_expression_trees_parse_back_to_the_same_ast(tree, minimal):
    text = show(tree, minimal)
    parsed = parse_expression(text)
    assert parsed == tree, text
    assert repr(parsed) == repr(tree), text  # also catches Lit(True) == Lit(1) and Decimal digit loss


@settings(max_examples=400, deadline=None)
@given(operator_trees)
def test_minimally_parenthesised_operator_trees_parse_back(tree):
    text = show(tree, minimal=True)
    assert parse_expression(text) == tree, text


_SHAPES = [(lambda *k, op=op: Binary(op, *k), 2) for op in _ops] + [
    (lambda k: Unary("NOT", k), 1), (lambda k: Unary("-", k), 1), (lambda k: Is(k, "NULL", True), 1),
    (lambda k: In(k, Param(0)), 1), (lambda *k: Between(*k, negated=True), 3), (lambda *k: Like(*k), 2),
    (lambda *k: Like(*k), 3),
]


def test_every_two_level_operator_nesting_parses_back_from_minimal_parentheses():
    leaves_ = [Var("a"), Var("b"), Var("c")]
    checked = 0
    for outer, outer_arity in _SHAPES:
        for slot in range(outer_arity):
            for inner, inner_arity in _SHAPES:
                kids = list(leaves_[:outer_arity])
                kids[slot] = inner(*leaves_[:inner_arity])
                tree = renumber(outer(*kids), [0])
                text = show(tree, minimal=True)
                assert parse_expression(text) == tree, text
                checked += 1
    assert checked == sum(arity for _, arity in _SHAPES) * len(_SHAPES)


def test_minimal_printer_relies_on_precedence():
    tree = parse_expression("(a OR b) AND NOT c = d + e * -f")
    assert show(tree, minimal=True) == "(a OR b) AND NOT c = d + e * - f"
    assert show(tree) == "(a OR b) AND (NOT (c = (d + (e * (- f)))))"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees, st.lists(st.one_of(st.integers(), st.text(max_size=3), st.none()), min_size=4, max_size=4))
def test_evaluation_of_any_tree_returns_a_value_or_raises_ledger_error(tree, params):
    doc = ion("{a: 1, b: [1, 2.5, \"x\"], c: {d: null}, t: 2020-01-01T}")
    try:
        result = ev.evaluate(tree, ev.make_env(doc, "x"), params)
    except LedgerError:
        return
    if result is not MISSING:  # MISSING never leaks into a value: whatever comes back can be stored as Ion
        simpleion.dumps(result)


# ============================================================================ evaluator

DOC = """{
  VIN: "1N4AL11D75C109151", Year: 2011, Price: 90.25, Ratio: 0.5e0, Kind: sedan, Missing: null,
  Owners: {PrimaryOwner: {PersonId: "294jJ3YUoH1IEEm8GSabOs"},
           Secondary: [{PersonId: "5Ufg"}, {PersonId: "6X"}]},
  ValidFrom: 2017-08-21T, Stamp: 2019-06-05T20:53:32.123+02:00, Tags: ["a", "b"], Bytes: {{aGVsbG8=}}
}"""


@pytest.fixture(scope="module")
def env():
    return ev.make_env(ion(DOC), "r", by_id_alias="rid", doc_id="3Qv67yjXEwB9SjmvkuG6Cp")


def run(text: str, env, params=()):
    return ev.evaluate(parse_expression(text), env, list(params))


@pytest.mark.parametrize(("text", "expected"), [
    ("r.Year = 2011", True),
    ("Year = 2011.0", True),  # unqualified field of the single source; int = decimal
    ("Year = 2011e0", True),
    ("r.Price = 90.25e0", True),  # decimal = float, exactly representable
    ("r.Ratio = 0.5", True),
    ("r.Price > 90", True),
    ("r.Kind = 'sedan'", True),  # symbol and string compare by text
    ("r.Year = '2011'", False),  # different types are simply unequal
    ("r.Year <> '2011'", True),
    ("r.Owners.PrimaryOwner.PersonId", "294jJ3YUoH1IEEm8GSabOs"),
    ("r.Owners.Secondary[1].PersonId", "6X"),
    ("r['Owners']['Secondary'][0]['PersonId']", "5Ufg"),
    ("rid = '3Qv67yjXEwB9SjmvkuG6Cp'", True),
    ("r.Tags = ['a', 'b']", True),
    ("r.Owners.PrimaryOwner = {'PersonId': '294jJ3YUoH1IEEm8GSabOs'}", True),
    ("r.Bytes = `{{aGVsbG8=}}`", True),
    ("r.Year IN (2010, 2011)", True),
    ("r.Year NOT IN (2010, 2012)", True),
    ("r.Year IN [1, null]", None),
    ("r.Year BETWEEN 2010 AND 2011.5", True),
    ("r.Year NOT BETWEEN 2000 AND 2005", True),
    ("r.VIN LIKE '1N4%'", True),
    ("r.VIN LIKE '_N4AL11D75C10915_'", True),
    ("'50%' LIKE '50!%' ESCAPE '!'", True),
    ("'50x' LIKE '50!%' ESCAPE '!'", False),
    ("'a' LIKE 'a' ESCAPE NULL", None),
    ("'a\nb' LIKE 'a%'", True),
    ("r.Year LIKE '2%'", MISSING),
    ("size(r.Owners.Secondary)", 2),
    ("exists(r.Tags)", True),
    ("upper(r.Kind) || '!'", "SEDAN!"),
    ("char_length(r.VIN)", 17),
    ("coalesce(r.nope, r.Missing, 'z')", "z"),
    ("nullif(r.Year, 2011) IS NULL", True),
    ("7 / 2", 3),
    ("-7 / 2", -3),
    ("-7 % 3", -1),
    ("1 + 1.5", Decimal("2.5")),
    ("2 * 1.5e0", 3.0),
    ("r.Year + 1 = 2012 AND NOT r.Year < 2000", True),
])
def test_expressions(env, text, expected):
    result = run(text, env)
    assert result == expected and isinstance(result, type(expected)) or (
        expected is None and ev.is_null(result) and result is not MISSING)


def test_missing_is_distinct_from_null(env):
    assert run("r.nope", env) is MISSING
    assert run("r.Owners.nope.deeper[3]", env) is MISSING
    assert run("r.VIN.notastruct", env) is MISSING
    assert run("r.Tags[5]", env) is MISSING and run("r.Tags[-1]", env) is MISSING
    null = run("r.Missing", env)
    assert null is not MISSING and ev.is_null(null)
    assert run("r.nope IS MISSING", env) is True and run("r.Missing IS MISSING", env) is False
    assert run("r.nope IS NULL", env) is True and run("r.Missing IS NULL", env) is True  # PartiQL rule
    assert run("r.Missing IS NOT NULL", env) is False
    assert run("r.nope = 1", env) is MISSING and run("r.Missing = 1", env) is None
    assert run("NULL = MISSING", env) is MISSING


def test_three_valued_logic(env):
    assert run("r.nope = 1 AND FALSE", env) is False
    assert run("r.nope = 1 OR TRUE", env) is True
    assert run("r.Missing = 1 OR FALSE", env) is None
    assert run("r.nope = 1 OR FALSE", env) is MISSING
    assert run("NOT (r.Missing = 1)", env) is None
    assert run("1 AND TRUE", env) is MISSING  # non-boolean operand is a type mismatch


def test_ordering_on_mismatched_types_is_missing_and_where_rejects_it(env):
    assert run("r.Year < 'abc'", env) is MISSING
    assert run("r.Tags > 1", env) is MISSING
    assert not ev.matches(parse_expression("r.Year < 'abc'"), env, [])
    assert not ev.matches(parse_expression("NOT (r.Year < 'abc')"), env, [])
    assert ev.matches(None, env, [])
    assert not ev.matches(parse_expression("r.Year"), env, [])  # only a boolean true passes


def test_timestamps_compare_by_instant(env):
    assert run("r.Stamp = `2019-06-05T18:53:32.123Z`", env) is True
    assert run("r.Stamp < `2019-06-05T20:53:32.123+01:00`", env) is True
    assert run("r.ValidFrom = `2017-08-21T00:00:00Z`", env) is True  # no offset reads as UTC
    aware = datetime(2019, 6, 5, 18, 53, 32, 123000, tzinfo=timezone(timedelta(hours=0)))
    assert run("r.Stamp = ?", env, [aware]) is True
    assert run("r.ValidFrom BETWEEN ? AND ?", env, [datetime(2017, 1, 1), datetime(2018, 1, 1)]) is True


def test_parameters_accept_ion_and_python_values(env):
    assert run("r.Year IN ?", env, [ion("[2011, 2012]")]) is True
    assert run("r.Year IN ?", env, [[2010]]) is False
    assert run("r.Year = ?", env, [ion("2011.000")]) is True
    assert run("r.Kind = ?", env, [ion("sedan")]) is True  # Ion symbol parameter
    assert run("? IS NULL", env, [ion("null.struct")]) is True


def test_evaluation_errors_are_ledger_errors(env):
    with pytest.raises(LedgerError, match="parameter 2"):
        run("r.Year = ? OR r.Year = ?", env, [1])
    with pytest.raises(LedgerError, match="division by zero"):
        run("r.Year / 0", env)
    with pytest.raises(LedgerError, match="unbound variable 'a'"):
        ev.evaluate(parse_expression("a"), {}, [])


def test_constructors_drop_or_coerce_missing(env):
    assert run("{'a': r.nope, 'b': r.Year}", env) == {"b": 2011}
    assert run("[r.nope, 1]", env) == [None, 1]
    bag = run("<<1, 2>>", env)
    assert isinstance(bag, ev.Bag) and run("<<1, 2>> = <<2, 1>>", env) is True
    assert run("[1, 2] = [2, 1]", env) is False


def test_missing_sentinel_survives_copy_and_pickle():
    assert copy.deepcopy(MISSING) is MISSING and pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert ev.MISSING is MISSING and not MISSING


# ============================================================================ SELECT helpers


def test_project_items_star_and_value(env):
    items = parse("SELECT rid, r.VIN, r.nope, r.Year + 1 AS next FROM t AS r BY rid")
    assert ev.project(items, env, []) == {"rid": "3Qv67yjXEwB9SjmvkuG6Cp", "VIN": "1N4AL11D75C109151",
                                          "next": 2012}
    star = ev.project(parse("SELECT * FROM t AS r BY rid"), env, [])
    assert star["rid"] == "3Qv67yjXEwB9SjmvkuG6Cp" and star["VIN"] == "1N4AL11D75C109151"
    assert "rid" not in env["r"]  # the document itself is untouched
    assert ev.project(parse("SELECT * FROM t AS r"), env, []) is env["r"]
    assert ev.project(parse("SELECT VALUE r.Year FROM t AS r"), env, []) == 2011


def test_aggregates_over_rows():
    rows = [ev.make_env(ion(f"{{a: {i}, b: {'null' if i == 2 else i * 1.5}}}"), "x") for i in range(5)]
    stmt = parse("SELECT COUNT(*), COUNT(x.b) AS nb, SUM(a), AVG(x.a), MIN(x.b), MAX(x.b) FROM t AS x")
    result = ev.aggregate(stmt, rows, [])
    assert result == {"_1": 5, "nb": 4, "_3": 10, "_4": Decimal(2), "_5": Decimal("0.0"),
                      "_6": Decimal("6.0")}
    assert ev.aggregate(parse("SELECT VALUE COUNT(*) FROM t"), [], []) == 0
    assert ev.aggregate(parse("SELECT SUM(a) FROM t"), [], []) == {"_1": None}


# ============================================================================ index lookups


def test_equality_lookups_find_top_level_constant_equalities():
    where = where_of("SELECT * FROM t AS x BY id WHERE x.a = ? AND b = 'k' AND ? = x.c AND id = ? "
                     "AND x.d.e = 1 AND x.f = x.g AND (x.h = 1 OR x.i = 2) AND x.j = -1")
    assert equality_lookups(where, "x", "id") == {"a": Param(0), "b": Lit("k"), "c": Param(1),
                                                     "j": Unary("-", Lit(1))}
    assert equality_lookups(where_of("SELECT * FROM t WHERE t.a = 1"), "t") == {"a": Lit(1)}
    assert equality_lookups(None, "t") == {}
    assert ev.evaluate(equality_lookups(where, "x", "id")["j"], {}, []) == -1
    assert id_lookup(where, "id") == Param(2) and id_lookup(where, None) is None
    assert equality_lookups(where_of("SELECT * FROM t AS x WHERE x.a = 1 OR x.b = 2"), "x") == {}


# ============================================================================ document updates


def test_set_path_returns_a_copy_and_keeps_ion_types():
    doc = ion("a::{x: 1, n: {m: [1, 2]}, dup: 1, dup: 2}")
    before = simpleion.dumps(doc, binary=False)
    new = ev.set_path(doc, ("n", "m", 1), 20)
    new = ev.set_path(new, ("dup",), 3)
    new = ev.set_path(new, ("p", "q"), "created")
    assert simpleion.dumps(doc, binary=False) == before
    assert simpleion.dumps(new, binary=False).endswith('a::{x:1,n:{m:[1,20]},dup:3,p:{q:"created"}}')
    plain = {"a": {"b": 1}}
    assert ev.set_path(plain, ("a", "b"), 2) == {"a": {"b": 2}} and plain == {"a": {"b": 1}}
    assert ev.set_path(plain, ("a",), MISSING) == {}


def test_set_path_refuses_impossible_paths():
    with pytest.raises(LedgerError, match="is not a struct"):
        ev.set_path({"a": 1}, ("a", "b"), 2)
    with pytest.raises(LedgerError, match="no element 5"):
        ev.set_path({"a": [1]}, ("a", 5), 2)
    with pytest.raises(LedgerError, match="whole document"):
        ev.set_path({"a": 1}, (), 2)


def test_remove_path_is_a_copy_and_idempotent():
    doc = ion("{a: {b: 1, c: [1, 2, 3]}, d: 4}")
    before = simpleion.dumps(doc, binary=False)
    new = ev.remove_path(ev.remove_path(doc, ("a", "c", 0)), ("d",))
    assert simpleion.dumps(new, binary=False).endswith("{a:{b:1,c:[2,3]}}")
    assert simpleion.dumps(doc, binary=False) == before
    assert ev.remove_path(new, ("zz", "y")) is new and ev.remove_path(new, ("a", "c", 9)) is new
    assert ev.remove_path(ev.remove_path(new, ("a", "b")), ("a", "b")) == {"a": {"c": [2, 3]}}


def test_apply_update_evaluates_against_the_original_row():
    stmt = parse("UPDATE t AS x BY id SET x.n = x.n + 1, x.old = x.n, x.who = id REMOVE x.gone WHERE id = ?")
    doc = ion("{n: 1, gone: true}")
    env = ev.make_env(doc, stmt.alias, by_id_alias=stmt.by_id_alias, doc_id="D1")
    assert ev.matches(stmt.where, env, ["D1"])
    new = ev.apply_update(stmt, doc, env, ["D1"])
    assert dict(new) == {"n": 2, "old": 1, "who": "D1"} and dict(doc) == {"n": 1, "gone": True}
