"""Rules 4, 5 and 9: which persons go to which approver (``PERSON_ROLES``), row by row."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from services.classifier.annex import AnnexRow, HouseNumberLevel
from services.classifier.policy import (
    PERSON_ROLES,
    REQUESTS,
    Condition,
    PersonRole,
    PolicyConfig,
    classify_incident,
)
from tests.samples import incident

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
CONFIG = PolicyConfig("GM0344", frozenset({"DC01"}), b"test-key")
ROLES = ("SUSPECT", "VICTIM", "WITNESS", "REPORTER", "INVOLVED")


def test_the_table_as_the_covenant_says() -> None:
    assert dict(PERSON_ROLES) == {
        "SUSPECT": PersonRole(
            category="SUSPECT",
            approver_role="OM",
            conditions=frozenset({Condition.SUSPECTS_SHARED, Condition.TEAM_DISTRICT}),
        ),
        "VICTIM": PersonRole(
            category="VICTIM",
            approver_role="POLICE_BURGLARY_TEAM",
            conditions=frozenset({Condition.VICTIMS_SHARED}),
        ),
    }


def test_annex_conditions_are_named_after_bijlage_1_columns() -> None:
    columns = {f.name for f in dataclasses.fields(AnnexRow)}
    assert {Condition.SUSPECTS_SHARED, Condition.VICTIMS_SHARED} <= columns


def _requests(role: str, *, suspects: bool, victims: bool, team_district: bool) -> list[Any]:
    """The requests of an incident with one person of ``role``, under a one-row annex."""
    annex = {"X10": AnnexRow("X10", "TEST", True, HouseNumberLevel.NO, False, suspects, victims)}
    event = incident("PL0900-2026000042", mk_code="X10")
    event["location"]["district_code"] = "DC01" if team_district else "DC09"
    (person,) = (p for p in event["persons"] if p["role"] == "VICTIM")
    event["persons"] = [{**person, "role": role}]
    decision = classify_incident(event, CONFIG, annex, now=NOW)
    return [o.value for o in decision.outputs if o.topic == REQUESTS]


def _expected(role: str, suspects: bool, victims: bool, team_district: bool) -> tuple | None:
    """The covenant, independently of the table: category, approver, phone, modus operandi."""
    if role == "SUSPECT" and suspects and team_district:
        return ("SUSPECT", "OM", None, None)
    if role == "VICTIM" and victims:
        return ("VICTIM", "POLICE_BURGLARY_TEAM", "0600000000", "Achterdeur geforceerd")
    return None  # witnesses, reporters, involved persons: never (rule 9)


@pytest.mark.parametrize(
    ("role", "suspects", "victims", "team_district"),
    list(itertools.product(ROLES, (True, False), (True, False), (True, False))),
)
def test_each_role_under_each_condition(
    role: str, suspects: bool, victims: bool, team_district: bool
) -> None:
    requests = _requests(role, suspects=suspects, victims=victims, team_district=team_district)
    shared = [
        (r["category"], r["approver_role"], r["subject"]["phone"], r["modus_operandi"])
        for r in requests
    ]
    expected = _expected(role, suspects, victims, team_district)
    assert shared == ([] if expected is None else [expected])
