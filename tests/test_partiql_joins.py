"""Inner and cross joins and `x.*` in the embedded ledger, with the shapes of QLDB's tutorial queries
(vehicle registration: a committed view joined to a user view included), and OCC across joined tables."""

from __future__ import annotations

import pytest

from ledgerdr.errors import LedgerError, OccConflict
from ledgerdr.ledger.engine import Ledger


@pytest.fixture
def dmv(tmp_path):
    with Ledger.create(tmp_path / "dmv.db") as ledger:
        for table in ("Vehicle", "VehicleRegistration", "Person"):
            ledger.execute(f"CREATE TABLE {table}")
        ledger.execute("CREATE INDEX ON Vehicle (VIN)")
        [owner] = ledger.execute("INSERT INTO Person ?", {"FirstName": "Raul", "GovId": "P626-168-229-765"})
        ledger.execute("INSERT INTO Vehicle ?", [{"VIN": "1N4AL11D75C109151", "Make": "Tesla", "Year": 2011},
                                                  {"VIN": "KM8SRDHF6EU074761", "Make": "Volvo", "Year": 2015}])
        ledger.execute("INSERT INTO VehicleRegistration ?", [
            {"VIN": "1N4AL11D75C109151", "State": "WA", "Owners": {"PrimaryOwner": {"PersonId": owner["documentId"]}}},
            {"VIN": "KM8SRDHF6EU074761", "State": "CA", "Owners": {"PrimaryOwner": {"PersonId": "nobody"}}},
            {"VIN": "3HGGK5G53FM761765", "State": "NY", "Owners": {"PrimaryOwner": {"PersonId": "nobody"}}}])
        yield ledger


def test_inner_join_on(dmv):
    rows = dmv.execute("SELECT v.Make, r.State FROM VehicleRegistration AS r INNER JOIN Vehicle AS v "
                       "ON r.VIN = v.VIN WHERE v.Year > ?", 2010)
    assert sorted((r["Make"], r["State"]) for r in rows) == [("Tesla", "WA"), ("Volvo", "CA")]


def test_comma_join_with_the_tutorials_owner_lookup(dmv):
    # The tutorial's "find vehicles of an owner": a BY id alias on one side, a nested path on the other.
    rows = dmv.execute("SELECT r.VIN FROM Person AS p BY pid, VehicleRegistration AS r "
                       "WHERE r.Owners.PrimaryOwner.PersonId = pid AND p.GovId = ?", "P626-168-229-765")
    assert rows == [{"VIN": "1N4AL11D75C109151"}]


def test_a_committed_view_joined_to_a_user_view_and_all_fields(dmv):
    rows = dmv.execute("SELECT r.metadata.version AS version, v.* FROM _ql_committed_VehicleRegistration AS r "
                       "JOIN Vehicle AS v ON r.data.VIN = v.VIN WHERE r.data.State = 'CA'")
    assert rows == [{"version": 0, "VIN": "KM8SRDHF6EU074761", "Make": "Volvo", "Year": 2015}]


def test_cross_join_star_and_count(dmv):
    assert dmv.execute("SELECT COUNT(*) AS n FROM Vehicle AS v CROSS JOIN VehicleRegistration AS r") == [{"n": 6}]
    [row] = dmv.execute("SELECT * FROM Vehicle AS v, Person AS p WHERE v.Make = 'Tesla'")
    assert row == {"VIN": "1N4AL11D75C109151", "Make": "Tesla", "Year": 2011, "FirstName": "Raul",
                   "GovId": "P626-168-229-765"}


def test_unqualified_names_in_a_join_are_refused_and_the_join_reads_are_checked_by_occ(dmv, tmp_path):
    with pytest.raises(LedgerError, match="unbound variable 'Make'"):
        dmv.execute("SELECT Make FROM Vehicle AS v, Person AS p")
    with Ledger.open(dmv.path) as other:
        txn = dmv.begin()
        txn.execute("SELECT v.Make FROM VehicleRegistration AS r JOIN Vehicle AS v ON r.VIN = v.VIN")
        txn.execute("INSERT INTO Person ?", {"FirstName": "Late"})
        other.execute("UPDATE Vehicle AS v SET v.Year = 2020 WHERE v.Make = 'Volvo'")  # changes the joined side
        with pytest.raises(OccConflict):
            txn.commit()


def test_unnesting_a_list_with_at(dmv):
    where = "FROM VehicleRegistration AS r WHERE r.VIN = '1N4AL11D75C109151' "
    dmv.execute(where + "INSERT INTO r.Owners VALUE [] AT 'SecondaryOwners'")
    for person in ("s1", "s2"):
        dmv.execute(where + "INSERT INTO r.Owners.SecondaryOwners VALUE { 'PersonId' : ? }", person)
    rows = dmv.execute("SELECT r.VIN, o.PersonId, i FROM VehicleRegistration AS r, "
                       "r.Owners.SecondaryOwners AS o AT i")
    assert sorted((row["PersonId"], row["i"]) for row in rows) == [("s1", 0), ("s2", 1)]
    # documents without the list (MISSING) give no row; a join condition applies per item
    assert dmv.execute("SELECT VALUE o.PersonId FROM VehicleRegistration AS r "
                       "INNER JOIN r.Owners.SecondaryOwners AS o ON o.PersonId = 's2'") == ["s2"]
    assert dmv.execute("SELECT VALUE [v, i] FROM [10, 20] AS v AT i") == [[10, 0], [20, 1]]
    with pytest.raises(LedgerError, match="AT is available on unnested paths and literals only"):
        dmv.execute("SELECT * FROM Vehicle AS v AT i")


def test_subqueries_in_in_from_exists_and_as_values(dmv):
    # uncorrelated, after IN: compared with its single column's values
    assert dmv.execute("SELECT VALUE v.Make FROM Vehicle AS v WHERE v.VIN IN "
                       "(SELECT r.VIN FROM VehicleRegistration AS r WHERE r.State = ?)", "CA") == ["Volvo"]
    assert dmv.execute("SELECT VALUE v.Make FROM Vehicle AS v WHERE v.VIN NOT IN "
                       "(SELECT VALUE r.VIN FROM VehicleRegistration AS r WHERE r.State <> 'WA')") == ["Tesla"]
    # in FROM, with aggregates inside
    assert dmv.execute("SELECT s.n FROM (SELECT COUNT(*) AS n FROM VehicleRegistration) AS s") == [{"n": 3}]
    # correlated: EXISTS and a value per outer row
    assert dmv.execute("SELECT VALUE p.FirstName FROM Person AS p BY pid WHERE EXISTS("
                       "SELECT * FROM VehicleRegistration AS r WHERE r.Owners.PrimaryOwner.PersonId = pid)") == ["Raul"]
    rows = dmv.execute("SELECT v.Make, (SELECT VALUE r.State FROM VehicleRegistration AS r WHERE r.VIN = v.VIN) "
                       "AS states FROM Vehicle AS v")
    assert sorted((row["Make"], list(row["states"])) for row in rows) == [("Tesla", ["WA"]), ("Volvo", ["CA"])]
    # a DML statement may use one too, and the subquery's reads are part of the transaction's read set
    [deleted] = dmv.execute("DELETE FROM VehicleRegistration AS r WHERE r.VIN NOT IN (SELECT VALUE v.VIN FROM Vehicle AS v)")
    assert dmv.execute("SELECT VALUE r.VIN FROM VehicleRegistration AS r WHERE r.State = 'NY'") == []
    assert len(deleted["documentId"]) == 22


def test_a_subquerys_reads_are_checked_by_occ(dmv):
    with Ledger.open(dmv.path) as other:
        txn = dmv.begin()
        txn.execute("SELECT * FROM Person AS p WHERE p.GovId IN (SELECT VALUE v.VIN FROM Vehicle AS v)")
        txn.execute("INSERT INTO Person ?", {"FirstName": "Late"})
        other.execute("INSERT INTO Vehicle ?", {"VIN": "P626-168-229-765"})  # would change the subquery's answer
        with pytest.raises(OccConflict):
            txn.commit()
