"""Properties of the policy over generated incidents (hypothesis)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagmonitor.codec import INCIDENT_EVENT, default_codec
from services.classifier.annex import load_annex
from services.classifier.policy import ENTRIES, VEHICLES, PolicyConfig, classify_incident
from tests.unit.avro_strategies import records

ANNEX = load_annex()
CONFIG = PolicyConfig("GM0344", frozenset({"DC01"}), b"k")
NOW = datetime(2026, 11, 28, tzinfo=UTC)
MARK = "PII"  # every personal string generated below carries this marker


@st.composite
def incidents(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = draw(records(default_codec().schema(INCIDENT_EVENT)))
    event["location"]["municipality_code"] = draw(st.sampled_from(["GM0344", "gm0344 ", "GM0307"]))
    event["location"]["district_code"] = draw(st.sampled_from(["DC01", "DC02", None]))
    event["mk_code"] = draw(st.sampled_from([*ANNEX, "Z99", "e35"]))
    event["modus_operandi"] = f"{MARK}-mo-{draw(st.text(max_size=5))}"
    event["mk_description"] = f"{MARK}-free-text"
    for index, person in enumerate(event["persons"]):
        person["first_names"] = f"{MARK}-first-{index}"
        person["surname"] = f"{MARK}-surname-{index}"
        person["phone"] = f"{MARK}-phone-{index}"
        person["photo_ref"] = f"{MARK}-photo-{index}"
        person["birth_date"] = draw(st.dates())
        if person["address"] is not None:
            person["address"]["street"] = f"{MARK}-home-{index}"
    return event


def _strings(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return [value]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(incidents(), st.booleans())
def test_no_personal_data_in_entries_or_vehicle_signals(event: dict[str, Any], esc: bool) -> None:
    until = NOW + timedelta(days=1) if esc else None
    decision = classify_incident(event, CONFIG, ANNEX, now=NOW, escalation_until=until)
    birth_dates = {p["birth_date"] for p in event["persons"]}
    for output in decision.outputs:
        if output.topic not in (ENTRIES, VEHICLES):
            continue
        for leaf in _strings(output.value):
            assert not (isinstance(leaf, str) and MARK in leaf), (output.topic, leaf)
            assert leaf not in birth_dates or leaf is None
        assert default_codec().encode(
            "nl.dagmonitor.DagmonitorEntry"
            if output.topic == ENTRIES
            else "nl.dagmonitor.VehicleSignal",
            output.value,
        )


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(incidents())
def test_classification_is_deterministic_and_pure(event: dict[str, Any]) -> None:
    before = copy.deepcopy(event)
    first = classify_incident(event, CONFIG, ANNEX, now=NOW)
    second = classify_incident(copy.deepcopy(event), CONFIG, ANNEX, now=NOW)
    assert first == second
    assert event == before  # the input is not modified


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(incidents())
def test_every_output_encodes_with_its_topic_schema(event: dict[str, Any]) -> None:
    from dagmonitor import topics

    for output in classify_incident(event, CONFIG, ANNEX, now=NOW).outputs:
        default_codec().encode(topics.get(output.topic).schema, output.value)
