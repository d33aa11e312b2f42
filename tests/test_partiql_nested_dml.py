"""QLDB's FROM-first DML: `FROM t AS x WHERE … INSERT INTO x.path VALUE v [AT pos]`, with SET and REMOVE,
as QLDB's tutorial adds a secondary owner."""

from __future__ import annotations

import pytest

from ledgerdr.errors import LedgerError
from ledgerdr.ledger.engine import Ledger


@pytest.fixture
def registrations(tmp_path):
    with Ledger.create(tmp_path / "r.db") as ledger:
        ledger.execute("CREATE TABLE VehicleRegistration")
        ledger.execute("INSERT INTO VehicleRegistration ?", {
            "VIN": "1N4AL11D75C109151", "Owners": {"PrimaryOwner": {"PersonId": "p1"}, "SecondaryOwners": []}})
        yield ledger


def _doc(ledger: Ledger) -> dict:
    [doc] = ledger.execute("SELECT * FROM VehicleRegistration")
    return doc


def test_the_tutorials_secondary_owner_insert_and_positions(registrations):
    where = "FROM VehicleRegistration AS r WHERE r.VIN = '1N4AL11D75C109151' "
    [changed] = registrations.execute(where + "INSERT INTO r.Owners.SecondaryOwners VALUE { 'PersonId' : ? }", "p2")
    assert len(changed["documentId"]) == 22
    registrations.execute(where + "INSERT INTO r.Owners.SecondaryOwners VALUE { 'PersonId' : 'p0' } AT 0")
    registrations.execute(where + "INSERT INTO r VALUE 'WA' AT 'State'")
    assert _doc(registrations)["Owners"]["SecondaryOwners"] == [{"PersonId": "p0"}, {"PersonId": "p2"}]
    assert _doc(registrations)["State"] == "WA"
    registrations.execute(where + "SET r.City = 'Seattle' REMOVE r.State")
    doc = _doc(registrations)
    assert doc["City"] == "Seattle" and "State" not in doc
    [version] = registrations.execute("SELECT VALUE r.metadata.version FROM _ql_committed_VehicleRegistration AS r")
    assert version == 4


@pytest.mark.parametrize("statement,message", [
    ("FROM VehicleRegistration AS r INSERT INTO r VALUE 'x' AT 'VIN'", "already exists"),
    ("FROM VehicleRegistration AS r INSERT INTO r.VIN VALUE 1", "not a struct or a list"),
    ("FROM VehicleRegistration AS r INSERT INTO r.Owners.SecondaryOwners VALUE 1 AT 9", "not a position"),
    ("FROM VehicleRegistration AS r INSERT INTO r VALUE 1", "AT 'field name'"),
    ("FROM VehicleRegistration AS r INSERT INTO r.Owners VALUE 1 AT", "expected an expression"),
])
def test_bad_nested_inserts_change_nothing(registrations, statement, message):
    before = _doc(registrations)
    with pytest.raises(LedgerError, match=message):
        registrations.execute(statement)
    assert _doc(registrations) == before
