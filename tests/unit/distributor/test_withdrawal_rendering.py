"""The withdrawal notice (Intrekking verstrekking): what to delete, as it was received, the
mails that provided it, and nothing more; no personal data in its subject."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.distributor.entitlements import Category
from services.distributor.rendering import (
    WITHDRAWN_SHORT,
    WITHDRAWN_WHAT,
    ProvidedIn,
    RecordRef,
    Withdrawn,
    render_withdrawal,
    withdrawal_period,
)
from services.distributor.reports import Entry
from tests.unit.distributor.samples import IN_DAY, SUSPECT_NAME, known_day

TZ = ZoneInfo("Europe/Amsterdam")
SENT = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
DAILY = ProvidedIn("prov-1", "Dagmonitor 27-11-2026", SENT)
SUPPLEMENT = ProvidedIn("prov-2", "Aanvulling Dagmonitor 27-11-2026", SENT.replace(hour=9))


def _entry() -> Entry:
    return Entry.from_mapping(next(v for v in known_day() if v["registration_number"] == IN_DAY[0]))


def test_an_entry_is_shown_as_in_the_daily_mail_with_every_mail_that_carried_it() -> None:
    entry = _entry()
    withdrawn = Withdrawn(
        RecordRef("dagmonitor.entries", IN_DAY[0]),
        Category.DAGMONITOR_DAILY,
        (SUPPLEMENT, DAILY),
        entry=entry,
    )
    rendered = render_withdrawal(withdrawn, TZ)
    assert rendered.subject == "Intrekking verstrekking 28-11-2026: incident Dagmonitor"
    assert rendered.kind == "withdrawal"
    assert rendered.records == (withdrawn.ref,)
    text = rendered.text
    assert entry.mk_description in text
    assert IN_DAY[0] not in text + rendered.html, "recipients never see registration numbers"
    assert text.index("prov-1") < text.index("prov-2"), "in the order they were sent"
    assert '"Dagmonitor 27-11-2026" van 28-11-2026 07:00' in text
    assert "De politie trekt de verstrekking in van een incident uit de Dagmonitor." in text
    assert "Verwijder deze gegevens uit uw" in text
    assert "geheimhoudingsplicht" in text, "the confidentiality footer"


def test_a_notice_names_only_its_title() -> None:
    withdrawn = Withdrawn(
        RecordRef("persons.approved", "req-1"),
        Category.PERSON_NOTICE,
        (ProvidedIn("prov-9", "Goedgekeurde verstrekking: personen (2)", SENT),),
        title=SUSPECT_NAME,
    )
    rendered = render_withdrawal(withdrawn, TZ)
    assert SUSPECT_NAME not in rendered.subject
    assert SUSPECT_NAME in rendered.text and SUSPECT_NAME in rendered.html
    assert "req-1" not in rendered.text + rendered.html + rendered.subject


def test_an_unknown_record_still_names_the_mails() -> None:
    withdrawn = Withdrawn(
        RecordRef("vehicles.signals", "PL1:XX"), Category.VEHICLE_NOTICE, (DAILY,)
    )
    text = render_withdrawal(withdrawn, TZ).text
    assert "prov-1" in text and "het gegeven dat u in de e-mail hieronder ontving" in text


@pytest.mark.parametrize("category", list(WITHDRAWN_WHAT))
def test_every_category_with_records_can_be_withdrawn(category: Category) -> None:
    withdrawn = Withdrawn(RecordRef("t", "k"), category, (DAILY,), title="x")
    subject = render_withdrawal(withdrawn, TZ).subject
    assert subject.startswith("Intrekking verstrekking ")
    assert len("Subject: " + subject) <= 78, "one header line: never folded"


def test_the_identity_is_per_record_and_first_provision() -> None:
    a = Withdrawn(RecordRef("persons.approved", "a"), Category.PERSON_NOTICE, (DAILY,))
    b = Withdrawn(RecordRef("persons.approved", "b"), Category.PERSON_NOTICE, (DAILY,))
    assert withdrawal_period(a) != withdrawal_period(b)
    assert withdrawal_period(a) == withdrawal_period(a)


def test_every_category_that_carries_records_has_a_withdrawal_wording() -> None:
    counts_only = {Category.HOTSPOTS, Category.COVENANT_EVALUATION}
    assert set(WITHDRAWN_WHAT) == set(Category) - counts_only, "hotspots, evaluation: counts"
    assert set(WITHDRAWN_SHORT) == set(WITHDRAWN_WHAT)
