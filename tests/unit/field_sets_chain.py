"""One person per category, every field set, followed hop by hop: the classifier's policy, the
wire (Avro), the approval's emission. Every name, address and number here is invented.

``EXPECTED`` is the covenant's list of what the police provide, written out by hand (not read
from ``field_sets.csv``), so that the tests compare the file with the covenant.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dagmonitor import topics
from dagmonitor.codec import APPROVAL_REQUEST, default_codec
from services.approval import domain
from services.classifier.annex import load_annex
from services.classifier.policy import REQUESTS, PolicyConfig, classify_incident, classify_notice
from tests.samples import incident

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
CONFIG = PolicyConfig("GM0344", frozenset({"DC01"}), b"test-key")
NAW = frozenset({"first_names", "surname_prefix", "surname", "address"})

EXPECTED: dict[str, tuple[frozenset[str], bool]] = {
    # "NAW-gegevens en foto's van verdachten van strafbare feiten en veelplegers"
    "SUSPECT": (NAW | {"photo_ref"}, False),
    # "NAW-gegevens en foto's van personen die een gebiedsontzegging hebben of die al
    # ruimschoots in de aandacht van de politie staan"
    "PERSON_OF_INTEREST": (NAW | {"photo_ref"}, False),
    # "NAW-gegevens, inclusief telefoonnummer, van slachtoffers van woninginbraak inclusief
    # informatie omtrent de Modus Operandi per woninginbraak"
    "VICTIM": (NAW | {"phone"}, True),
}
"""Per category: the ``SharedPerson`` fields that leave, and whether the modus operandi does."""

MODUS_OPERANDI = "Raam opengebroken met schroevendraaier"


def full_person(role: str) -> dict[str, Any]:
    """A police ``Person`` with every field set: birth date, phone, photo, whole address."""
    return {
        "role": role,
        "first_names": "Testje Proef",
        "surname_prefix": "van der",
        "surname": "Verzonnen",
        "birth_date": date(1988, 2, 29),
        "address": {
            "street": "Nergensweg",
            "house_number": 7,
            "house_number_suffix": "b",
            "postcode": "3512ZZ",
            "city": "Utrecht",
        },
        "phone": "0612345678",
        "photo_ref": "bvh://photos/4242",
    }


def expected_subject(category: str) -> dict[str, Any]:
    """The full person as its category's ``SharedPerson``: shared fields as given, others null."""
    shared, _ = EXPECTED[category]
    person = full_person("SUSPECT")
    return {name: (person[name] if name in shared else None) for name in _shared_person_fields()}


def _shared_person_fields() -> list[str]:
    schema = default_codec().schema(APPROVAL_REQUEST)
    (subject,) = [f for f in schema["fields"] if f["name"] == "subject"]
    (record,) = [branch for branch in subject["type"] if isinstance(branch, dict)]
    return [f["name"] for f in record["fields"]]


def request_value(category: str) -> dict[str, Any]:
    """The ``ApprovalRequest`` the policy makes for a full person of ``category``, as decoded
    from the wire."""
    if category == "PERSON_OF_INTEREST":
        notice = {
            "notice_id": "NTC-0042",
            "version": 1,
            "kind": "AREA_BAN",
            "person": full_person("INVOLVED"),
            "district_codes": ["DC01"],
            "valid_from": NOW - timedelta(days=1),
            "valid_until": NOW + timedelta(days=60),
            "mk_codes": ["A20"],
        }
        outputs = classify_notice(notice, CONFIG, now=NOW).outputs
    else:
        event = incident("PL0900-2026000042", mk_code="A20")  # shares suspects and victims
        event["persons"] = [full_person(category), full_person("WITNESS")]
        event["modus_operandi"] = MODUS_OPERANDI
        outputs = classify_incident(event, CONFIG, load_annex(), now=NOW).outputs
    (request,) = [o for o in outputs if o.topic == REQUESTS]
    codec = default_codec()
    return codec.decode(codec.encode(APPROVAL_REQUEST, request.value), APPROVAL_REQUEST).record


def approved_value(category: str) -> dict[str, Any]:
    """The approved payload the approval emits when every authority of the request's chain
    approved it, as decoded from its topic (``ApprovedPerson`` or ``ApprovedVictim``)."""
    request = domain.parse_request(copy.deepcopy(request_value(category)))
    state = domain.RequestState(
        request.request_id,
        request.category,
        request.approver_role,
        domain.Status.PENDING,
        request.expires_at,
    )
    now = NOW + timedelta(hours=1)
    decision = domain.decide(state, domain.Action.APPROVE, actor="officer-7", reason=None, now=now)
    while not decision.final:  # the burglary team, then the OM (VICTIM)
        assert decision.next_role is not None and decision.next_step is not None
        state = dataclasses.replace(
            state, approver_role=decision.next_role, step=decision.next_step
        )
        decision = domain.decide(
            state, domain.Action.APPROVE, actor="officer-8", reason=None, now=now
        )
    _, payload = domain.emissions(decision, request, escalation_valid=timedelta(days=28))
    codec = default_codec()
    schema = topics.get(payload.topic).schema
    return codec.decode(codec.encode(schema, payload.value), schema).record
