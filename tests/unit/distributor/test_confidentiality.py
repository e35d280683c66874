"""Every mail states the secrecy duty (geheimhoudingsplicht) in its footer, in the HTML and the
text part alike; every CSV attachment carries the same marking as its first line; every mail
has the header ``Sensitivity: Company-Confidential``. The expected words are written out here,
not read from the code, so a changed footer fails the test."""

from __future__ import annotations

import email
import html
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from zoneinfo import ZoneInfo

import pytest

from services.distributor.entitlements import Category, Recipient, Role, purpose_of
from services.distributor.outbox import address
from services.distributor.rendering import (
    TEMPLATES,
    ProvidedIn,
    RecordRef,
    Rendered,
    Withdrawn,
    render_daily,
    render_hotspots,
    render_notices,
    render_supplement,
    render_withdrawal,
)
from services.distributor.reports import (
    CONFIDENTIAL,
    Entry,
    PostcodeCount,
    person_item,
    vehicle_item,
    victim_item,
)
from services.distributor.schedule import hotspot_period
from services.distributor.supplement import DayChanges
from tests.unit.distributor.samples import (
    DAY,
    IN_DAY,
    approved_person,
    approved_victim,
    known_day,
    vehicle_signal,
)

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
SAFETY = Recipient(Role.SAFETY_UNIT_OFFICER, "veiligheid@gemeente.invalid")

MARKING = "VERTROUWELIJK - politiegegevens, geheimhoudingsplicht (art. 7 Wpg, convenant)"
SECRECY_DUTY = (
    "Geheimhouding volgens het convenant: \u201cEr geldt een geheimhoudingsplicht voor de "
    "partijen, en hun medewerkers, aan dit convenant. Deze plicht strekt zich uit tot de "
    "geheimhouding van persoonsgegevens en politiegegevens, ook indien het convenant niet meer "
    "van kracht is. Gegevens worden zonder toestemming van de verstrekker niet overgedragen, of "
    "verder verstrekt, aan niet convenantpartners en zijn niet raadpleegbaar voor niet "
    "convenantpartners.\u201d"
)
USE_AND_RETENTION = (
    "Uitsluitend te gebruiken voor dit doel, niet voor sturingsinformatie op tactisch en "
    "strategisch niveau. Niet langer bewaren dan nodig, ten hoogste een jaar na verstrekking."
)


def expected_footer(rendered: Rendered) -> list[str]:
    """The footer's paragraphs for a mail of ``rendered``'s category and period."""
    return [
        MARKING,
        "Verstrekt door de politie op grond van art. 20 Wpg en het convenant "
        "gegevensuitwisseling Eenheid Veiligheid en Toezicht en Handhaving. "
        f"Doel: {purpose_of(rendered.category)}.",
        SECRECY_DUTY,
        USE_AND_RETENTION,
        f"Kenmerk verstrekking: {rendered.period}",
    ]


def _entries() -> list[Entry]:
    return [Entry.from_mapping(v) for v in known_day() if v["registration_number"] in IN_DAY]


def _every_kind() -> dict[str, Rendered]:
    entries = _entries()
    counts = [PostcodeCount("WK1", "Oost", "3581AB", 3)]
    sent = ProvidedIn("prov-1", "Dagmonitor 27-11-2026", NOW)
    return {
        "daily": render_daily(DAY, entries, AMS),
        "daily-empty": render_daily(DAY, [], AMS),
        "daily-provisional": render_daily(DAY, entries, AMS, provisional=True),
        "supplement": render_supplement(
            DAY, 1, DayChanges(new=(entries[0],), withdrawn=(entries[1],)), AMS
        ),
        "hotspots": render_hotspots(hotspot_period(DAY), counts, top=15, cid_domain="x.invalid"),
        "notice-persons": render_notices(
            Category.PERSON_NOTICE,
            "batch-1",
            [(RecordRef("persons.approved", "req-p"), person_item(approved_person(), AMS))],
        ),
        "notice-victims": render_notices(
            Category.VICTIM_NOTICE,
            "batch-2",
            [(RecordRef("victims.approved", "req-v"), victim_item(approved_victim(), AMS))],
        ),
        "notice-vehicles": render_notices(
            Category.VEHICLE_NOTICE,
            "batch-3",
            [(RecordRef("vehicles.signals", "k"), vehicle_item(vehicle_signal(), AMS))],
        ),
        "withdrawal": render_withdrawal(
            Withdrawn(
                RecordRef("dagmonitor.entries", IN_DAY[0]),
                Category.DAGMONITOR_DAILY,
                (sent,),
                entry=entries[0],
            ),
            AMS,
        ),
    }


KINDS = _every_kind()


def html_footer(document: str) -> list[str]:
    """The footer's paragraphs as a reader sees them (tags dropped, entities decoded)."""
    (footer,) = re.findall(r'<div class="footer"[^>]*>(.*?)</div>', document, re.S)
    return [
        " ".join(html.unescape(re.sub(r"<[^>]+>", "", p)).split())
        for p in re.findall(r"<p[^>]*>(.*?)</p>", footer, re.S)
    ]


def text_footer(text: str) -> str:
    """The text part's footer: everything after the signature separator."""
    _, separator, footer = text.rpartition("\n--\n")
    assert separator, "the text part has a footer"
    return footer


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_html_footer_states_the_secrecy_duty(kind: str) -> None:
    rendered = KINDS[kind]
    assert html_footer(rendered.html) == expected_footer(rendered)
    assert re.search(rf"<p[^>]*><strong>{re.escape(MARKING)}</strong></p>", rendered.html), (
        "the marking stands out"
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_text_footer_states_the_secrecy_duty(kind: str) -> None:
    rendered = KINDS[kind]
    footer = text_footer(rendered.text)
    assert footer.startswith(MARKING + "\n"), "the marking on a line of its own"
    assert footer.endswith(f"\nKenmerk verstrekking: {rendered.period}\n")
    assert " ".join(footer.split()) == " ".join(expected_footer(rendered))
    assert all(len(line) <= 78 for line in footer.splitlines()), "wrapped for plain text"


def test_the_text_footer_word_for_word() -> None:
    assert text_footer(KINDS["daily"].text) == (
        "VERTROUWELIJK - politiegegevens, geheimhoudingsplicht (art. 7 Wpg, convenant)\n"
        "Verstrekt door de politie op grond van art. 20 Wpg en het convenant\n"
        "gegevensuitwisseling Eenheid Veiligheid en Toezicht en Handhaving. Doel:\n"
        "Toezicht en handhaving in de wijken: dagelijks overzicht per wijk tot op\n"
        "postcodeniveau (Dagmonitor, Bijlage 1).\n"
        "Geheimhouding volgens het convenant: \u201cEr geldt een geheimhoudingsplicht voor\n"
        "de partijen, en hun medewerkers, aan dit convenant. Deze plicht strekt zich\n"
        "uit tot de geheimhouding van persoonsgegevens en politiegegevens, ook indien\n"
        "het convenant niet meer van kracht is. Gegevens worden zonder toestemming van\n"
        "de verstrekker niet overgedragen, of verder verstrekt, aan niet\n"
        "convenantpartners en zijn niet raadpleegbaar voor niet convenantpartners.\u201d\n"
        "Uitsluitend te gebruiken voor dit doel, niet voor sturingsinformatie op\n"
        "tactisch en strategisch niveau. Niet langer bewaren dan nodig, ten hoogste een\n"
        "jaar na verstrekking.\n"
        "Kenmerk verstrekking: 2026-11-27\n"
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_csv_attachment_is_marked_in_its_first_line(kind: str) -> None:
    for part in KINDS[kind].attachments:
        if part.subtype != "csv":
            continue
        marking, columns, *_ = part.data.decode("utf-8-sig").split("\r\n")
        assert marking == MARKING
        assert columns.split(";")[-3:] == ["omschrijving", "pleegdatum_van", "pleegdatum_tot"]
    with_csv = {"daily", "daily-provisional", "supplement"}
    assert any(p.subtype == "csv" for p in KINDS[kind].attachments) == (kind in with_csv)


def _mail(rendered: Rendered) -> EmailMessage:
    outgoing = address(
        rendered, SAFETY, sender="dagmonitor@politie.invalid", domain="d.invalid", date=NOW
    )
    return email.message_from_bytes(outgoing.body, policy=default)  # type: ignore[return-value]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_mail_is_marked_company_confidential(kind: str) -> None:
    mail = _mail(KINDS[kind])
    assert mail.get_all("Sensitivity") == ["Company-Confidential"]
    html_part = mail.get_body(("html",))
    assert html_part is not None and MARKING in html_part.get_content()


def test_the_marking_lives_in_one_place() -> None:
    assert CONFIDENTIAL == MARKING
    for template in TEMPLATES.glob("*.j2"):
        source = template.read_text(encoding="utf-8").lower()
        assert "geheimhouding" not in source and "vertrouwelijk" not in source, template.name


def test_every_mail_template_extends_base_and_so_carries_the_footer() -> None:
    """A new mail kind (``<kind>.html.j2``, ``<kind>.txt.j2``) gets the footer by extending base."""
    kinds = sorted(TEMPLATES.glob("[!_]*.j2"))
    assert {t.name for t in kinds} >= {
        f"{kind}.{part}.j2"
        for kind in ("daily", "supplement", "hotspots", "notice", "withdrawal")
        for part in ("html", "txt")
    }
    for template in kinds:
        if template.name.startswith("base."):
            continue
        part = template.name.split(".")[-2]
        first = template.read_text(encoding="utf-8").splitlines()[0]
        assert first == f'{{% extends "base.{part}.j2" %}}', template.name
    for part in ("html", "txt"):
        base = (TEMPLATES / f"base.{part}.j2").read_text(encoding="utf-8")
        assert f'{{% include "_confidential.{part}.j2" %}}' in base
