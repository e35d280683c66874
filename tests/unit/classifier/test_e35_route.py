"""The classifier's E35 wiring without a broker (ADR 0013, ADR 0016): what travels on the
internal E35 topic (only what the window counts), the E35 entry written by the incident route
as the escalations view says, police and municipal reports counted in one window per postcode
area, and municipal reports only ever counted. A recording producer stands in for Kafka; the
handlers, the batch and the view are the real ones (the same on the broker:
tests/integration/classifier)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from dagmonitor.codec import (
    DAGMONITOR_ENTRY,
    ESCALATION,
    INCIDENT_EVENT,
    MUNICIPAL_REPORT,
    default_codec,
)
from dagmonitor.processor import Batch
from services.classifier.app import Classifier
from services.classifier.config import ClassifierSettings
from services.classifier.escalation import Area, count
from services.classifier.policy import classify_incident
from tests.samples import escalation, incident
from tests.unit.ingest.samples import report

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WITNESS = {
    "role": "WITNESS",
    "first_names": "Getuige",
    "surname_prefix": None,
    "surname": "Zagersma",
    "birth_date": None,
    "address": {
        "street": "Getuigenpad",
        "house_number": 99,
        "house_number_suffix": None,
        "postcode": "3512ZZ",
        "city": "Utrecht",
    },
    "phone": "0611112222",
    "photo_ref": None,
}
PERSONAL = (
    "Verzonnen",
    "Persoonsma",
    "Testje",
    "Zagersma",
    "Getuigenpad",
    "0600000000",
    "0611112222",
    "bvh://photos/0001",
    "XX-000-X",
    "Achterdeur geforceerd",
    "1999-04-01",
)
"""What the sample incident says about people, vehicles and in free text."""
ADDRESS = ("Voorbeeldstraat", "bis", "Binnenstad", "Domplein", "BU03440101", "Utrecht")
"""Where the sample incident happened, beyond its postcode and district code."""


class RecordingProducer:
    """Collects what the handlers send; every send is acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send(
        self, topic: str, value: bytes | None, *, key: bytes, **_options: Any
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(offset=len(self.sent)))
        return done

    def create_batch(self) -> RecordingBatch:
        return RecordingBatch()

    async def send_batch(
        self, batch: RecordingBatch, topic: str, *, partition: int
    ) -> asyncio.Future[Any]:
        base = len(self.sent)
        self.sent += [(topic, key, value) for key, value in batch.records]
        done = asyncio.get_running_loop().create_future()
        done.set_result(SimpleNamespace(offset=base))
        return done

    async def partitions_for(self, _topic: str) -> set[int]:
        return {0}


class RecordingBatch:
    """What ``Batch.flush`` appends to one record batch."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []

    def append(self, *, key: bytes, value: bytes | None, **_options: Any) -> SimpleNamespace:
        self.records.append((key, value))
        return SimpleNamespace(offset=len(self.records) - 1)


class Wired:
    """A classifier and one batch over a recording producer, fed record by record."""

    def __init__(self, **settings: Any) -> None:
        self.app = Classifier(
            ClassifierSettings(team_districts="DC01", e35_threshold=3, **settings)
        )
        self.producer = RecordingProducer()
        self.batch = Batch(self.producer)  # type: ignore[arg-type]
        self.routed = 0

    def sent_to(self, topic: str) -> list[tuple[bytes, bytes | None]]:
        return [(key, value) for name, key, value in self.producer.sent if name == topic]

    async def flush(self) -> None:
        """Send what the handlers queued, as the processor does after a batch."""
        await self.batch.flush()

    async def incident(self, event: dict[str, Any], *, route_e35: bool = True) -> None:
        value = default_codec().encode(INCIDENT_EVENT, event)
        await self.app._on_incident(_record(event["registration_number"], value), self.batch)
        await self.flush()
        if route_e35:
            await self._route_e35()

    async def withdraw(self, registration: str) -> None:
        await self.app._on_incident(_record(registration, None), self.batch)
        await self.flush()
        await self._route_e35()

    def escalate(self, area: str, *, until: datetime) -> None:
        """An approved escalation as the view reads it from ``escalations.approved``."""
        value = {**escalation(area), "valid_until": until}
        self.app.escalations.apply(area.encode(), default_codec().encode(ESCALATION, value))

    async def municipal(self, report_id: str, record: dict[str, Any] | None) -> None:
        value = None if record is None else default_codec().encode(MUNICIPAL_REPORT, record)
        await self.app._on_municipal(_record(report_id, value), self.batch)
        await self.flush()
        await self._route_e35()

    async def _route_e35(self) -> None:
        """Hand what went to the internal E35 topic to the E35 route, in order."""
        pending = self.sent_to(self.app.e35_topic)
        for key, value in pending[self.routed :]:
            await self.app._on_e35(_record(key.decode(), value), self.batch)
        self.routed = len(pending)
        await self.flush()

    def window(self, area: str) -> Any:
        return self.batch.get(self.app.e35_windows, area.encode())


def _record(key: str, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        "t", 0, 0, int(NOW.timestamp() * 1000), 0, key.encode(), value, None, 0, 0, []
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _e35(registration: str, postcode: str = "3511 AB") -> dict[str, Any]:
    event = incident(registration, mk_code="E35")
    event["location"]["postcode"] = postcode
    event["persons"].append(WITNESS)
    return event


def _municipal(report_id: str, postcode: str = "3511AB", hours: int = 1) -> dict[str, Any]:
    return report(report_id, postcode=postcode, reported_at=NOW - timedelta(hours=hours))


# --- what travels on the internal E35 topic -------------------------------------------------


async def test_a_police_report_travels_with_only_its_key_time_and_district() -> None:
    wired = Wired()
    await wired.incident(_e35("PL0900-2026000700"))  # suspect, victim, witness, phones, street
    ((key, value),) = wired.sent_to(wired.app.e35_topic)
    assert key == b"3511AB"
    assert value is not None
    envelope = json.loads(value)
    assert set(envelope) == {"registration_number", "report"}
    assert set(envelope["report"]) == {"reported_at", "district_code"}
    assert envelope == {
        "registration_number": "PL0900-2026000700",
        "report": {"reported_at": _ms(incident()["reported_at"]), "district_code": "DC01"},
    }
    shown = value.decode()
    for word in (*PERSONAL, *ADDRESS, "street", "house_number", "phone", "persons", "entry"):
        assert word not in shown


async def test_a_withdrawn_police_report_travels_with_only_its_key() -> None:
    wired = Wired()
    await wired.incident(_e35("PL0900-2026000706"))
    await wired.withdraw("PL0900-2026000706")
    assert json.loads(wired.sent_to(wired.app.e35_topic)[-1][1] or b"") == {
        "registration_number": "PL0900-2026000706",
        "report": None,
    }
    assert count(wired.window("3511AB"), wired.app.rule) == 0
    # The entry's tombstone comes from the incident route, after the entry it retracts.
    assert wired.sent_to("dagmonitor.entries")[-1] == (b"PL0900-2026000706", None)


# --- the E35 entry, written by the incident route as the escalations view says -------------


def _entries(wired: Wired) -> list[dict[str, Any]]:
    return [default_codec().decode(v).record for _, v in wired.sent_to("dagmonitor.entries") if v]


async def test_the_incident_route_writes_the_plain_entry_without_an_escalation() -> None:
    wired = Wired()
    await wired.incident(_e35("PL0900-2026000710"), route_e35=False)
    (entry,) = _entries(wired)
    assert (entry["street"], entry["house_number"], entry["location_qualifier"]) == (
        None,
        None,
        None,
    )
    assert entry["postcode"] == "3511AB"


async def test_the_incident_route_writes_the_detailed_entry_while_an_escalation_is_in_force() -> (
    None
):
    wired = Wired()
    wired.escalate("3511AB", until=NOW + timedelta(days=3))
    await wired.incident(_e35("PL0900-2026000711"), route_e35=False)
    (entry,) = _entries(wired)
    assert (entry["street"], entry["house_number"], entry["location_qualifier"]) == (
        "Voorbeeldstraat",
        12,
        "ter hoogte van",
    )
    await wired.incident(_e35("PL0900-2026000712", postcode="3511 CD"), route_e35=False)
    assert _entries(wired)[-1]["house_number"] is None  # another area: plain


@pytest.mark.parametrize(
    ("until", "detailed"),
    [
        pytest.param(timedelta(hours=-1), False, id="expired before the record's time"),
        pytest.param(timedelta(0), False, id="ends at the record's time"),
        pytest.param(timedelta(hours=1), True, id="in force at the record's time"),
    ],
)
async def test_in_force_means_at_the_records_time(until: timedelta, detailed: bool) -> None:
    wired = Wired()
    wired.escalate("3511AB", until=NOW + until)
    await wired.incident(_e35("PL0900-2026000713"), route_e35=False)
    assert (_entries(wired)[0]["house_number"] is not None) is detailed


async def test_an_escalation_withdrawn_from_the_view_gives_plain_entries_again() -> None:
    wired = Wired()
    wired.escalate("3511AB", until=NOW + timedelta(days=3))
    wired.app.escalations.apply(b"3511AB", None)  # the approval's tombstone (or retention's)
    await wired.incident(_e35("PL0900-2026000714"), route_e35=False)
    assert _entries(wired)[0]["house_number"] is None


async def test_an_escalation_after_the_entry_re_emits_nothing() -> None:
    wired = Wired()
    await wired.incident(_e35("PL0900-2026000715"))
    wired.escalate("3511AB", until=NOW + timedelta(days=3))
    await wired.incident(_e35("PL0900-2026000716"))
    first, second = _entries(wired)
    assert (first["registration_number"], first["house_number"]) == ("PL0900-2026000715", None)
    assert (second["registration_number"], second["house_number"]) == ("PL0900-2026000716", 12)


async def test_under_pc4_the_escalation_of_the_four_digits_covers_every_postcode() -> None:
    wired = Wired(escalation_area="pc4")
    wired.escalate("3511", until=NOW + timedelta(days=3))
    await wired.incident(_e35("PL0900-2026000717", postcode="3511 EF"), route_e35=False)
    assert _entries(wired)[0]["location_qualifier"] == "ter hoogte van"


async def test_the_e35_route_writes_no_entry() -> None:
    wired = Wired()
    wired.escalate("3511AB", until=NOW + timedelta(days=3))
    for number in range(3):
        await wired.incident(_e35(f"PL0900-202600072{number}"))
    assert len(wired.sent_to("approval.requests")) == 1  # the threshold is still asked once
    assert len(_entries(wired)) == 3  # one per incident, from the incident route


async def test_an_envelope_from_before_adr_0016_still_gets_its_entry_out() -> None:
    """Written by the previous version (its incident already committed): its entry goes out,
    detailed as the view says, and the report is counted."""
    wired = Wired()
    wired.escalate("3511AB", until=NOW + timedelta(days=3))
    event = _e35("PL0900-2026000730")
    plain, detailed = (
        base64.b64encode(
            default_codec().encode(
                DAGMONITOR_ENTRY,
                classify_incident(
                    event, wired.app.policy, wired.app.annex, now=NOW, escalation_until=until
                )
                .outputs[0]
                .value,
            )
        ).decode()
        for until in (None, NOW + timedelta(days=3))
    )
    report = {"reported_at": _ms(NOW), "district_code": "DC01"}
    envelope = {
        "registration_number": "PL0900-2026000730",
        "report": {**report, "entry": plain, "detailed_entry": detailed},
    }
    await wired.app._on_e35(_record("3511AB", json.dumps(envelope).encode()), wired.batch)
    await wired.flush()
    (entry,) = _entries(wired)
    assert (entry["registration_number"], entry["house_number"]) == ("PL0900-2026000730", 12)
    assert count(wired.window("3511AB"), wired.app.rule) == 1


async def test_a_municipal_report_travels_with_only_its_key_and_time() -> None:
    wired = Wired()
    await wired.municipal("sig-1", _municipal("sig-1", postcode="3511AB", hours=2))
    ((key, value),) = wired.sent_to(wired.app.e35_topic)
    assert key == b"3511AB"
    assert value is not None
    reported_at = int((NOW - timedelta(hours=2)).timestamp() * 1000)
    assert json.loads(value) == {"report_id": "sig-1", "report": {"reported_at": reported_at}}
    assert wired.sent_to("dagmonitor.entries") == []  # counted, never shared
    assert count(wired.window("3511AB"), wired.app.rule) == 1


# --- one window, both sources --------------------------------------------------------------


async def test_police_and_municipal_reports_cross_the_threshold_in_one_window() -> None:
    wired = Wired()
    await wired.incident(_e35("PL0900-2026000701"))
    await wired.municipal("sig-1", _municipal("sig-1"))
    assert wired.sent_to("approval.requests") == []
    await wired.incident(_e35("PL0900-2026000702"))
    ((_, value),) = wired.sent_to("approval.requests")
    assert value is not None
    request = default_codec().decode(value).record
    assert request["category"] == "YOUTH_NUISANCE_DETAIL"
    assert request["approver_role"] == "POLICE_DISTRICT"
    assert request["postcode"] == "3511AB"
    assert request["district_code"] == "DC01"
    # Only the police reports have entries.
    entries = {key for key, _ in wired.sent_to("dagmonitor.entries")}
    assert entries == {b"PL0900-2026000701", b"PL0900-2026000702"}


async def test_a_municipal_report_can_be_the_one_that_crosses_it() -> None:
    wired = Wired()
    await wired.incident(_e35("PL0900-2026000703"))
    await wired.municipal("sig-1", _municipal("sig-1"))
    await wired.municipal("sig-2", _municipal("sig-2"))
    ((_, value),) = wired.sent_to("approval.requests")
    assert value is not None
    # The district comes from the area's police report: a municipal report names none.
    assert default_codec().decode(value).record["district_code"] == "DC01"


async def test_the_same_municipal_report_again_counts_once() -> None:
    wired = Wired()
    for _ in range(3):
        await wired.municipal("sig-1", _municipal("sig-1"))
    assert count(wired.window("3511AB"), wired.app.rule) == 1
    assert wired.sent_to("approval.requests") == []


@pytest.mark.parametrize(("area", "key", "requests"), [("pc6", "3511AB", 0), ("pc4", "3511", 1)])
async def test_pc4_counts_the_postcodes_of_one_area_together(
    area: str, key: str, requests: int
) -> None:
    wired = Wired(escalation_area=area)
    await wired.incident(_e35("PL0900-2026000704", postcode="3511AB"))
    await wired.municipal("sig-1", _municipal("sig-1", postcode="3511CD"))
    await wired.incident(_e35("PL0900-2026000705", postcode="3511 EF"))
    found = wired.sent_to("approval.requests")
    assert len(found) == requests
    if requests:
        assert default_codec().decode(found[0][1] or b"").record["postcode"] == key
    assert {k for k, _ in wired.sent_to(wired.app.e35_topic)} == (
        {b"3511"} if area == "pc4" else {b"3511AB", b"3511CD", b"3511EF"}
    )


# --- withdrawals and moves -----------------------------------------------------------------


async def test_a_withdrawn_municipal_report_is_uncounted() -> None:
    wired = Wired()
    await wired.municipal("sig-1", _municipal("sig-1"))
    await wired.municipal("sig-1", None)
    assert count(wired.window("3511AB"), wired.app.rule) == 0
    assert wired.batch.get(wired.app.municipal_reports, b"sig-1") is None
    assert json.loads(wired.sent_to(wired.app.e35_topic)[-1][1] or b"") == {
        "report_id": "sig-1",
        "report": None,
    }
    await wired.municipal("sig-2", None)  # a withdrawal of what was never counted: nothing
    assert len(wired.sent_to(wired.app.e35_topic)) == 2


async def test_a_municipal_report_that_moves_counts_in_its_new_area_only() -> None:
    wired = Wired()
    await wired.municipal("sig-1", _municipal("sig-1", postcode="3511AB"))
    await wired.municipal("sig-1", _municipal("sig-1", postcode="3512CD"))
    assert count(wired.window("3511AB"), wired.app.rule) == 0
    assert count(wired.window("3512CD"), wired.app.rule) == 1
    assert wired.batch.get(wired.app.municipal_reports, b"sig-1") == {"area": "3512CD"}


# --- the setting ---------------------------------------------------------------------------


def test_the_area_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ClassifierSettings().escalation_area is Area.PC6  # the default (ADR 0013)
    monkeypatch.setenv("DAGMONITOR_ESCALATION_AREA", "PC4")
    assert ClassifierSettings().escalation_area is Area.PC4
    monkeypatch.setenv("DAGMONITOR_ESCALATION_AREA", "pc5")
    with pytest.raises(ValidationError):
        ClassifierSettings()
