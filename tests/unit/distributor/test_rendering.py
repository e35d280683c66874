"""The mails as recipients see them: parts, "ter hoogte van", escaping, no personal data."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from zoneinfo import ZoneInfo

from services.distributor.entitlements import Category, Recipient, Role
from services.distributor.mail import message_id, provision_id
from services.distributor.outbox import address
from services.distributor.rendering import RecordRef, render_daily, render_hotspots, render_notices
from services.distributor.reports import (
    Entry,
    PostcodeCount,
    person_item,
    vehicle_item,
    victim_item,
)
from services.distributor.schedule import hotspot_period
from tests.unit.distributor.samples import (
    DAY,
    IN_DAY,
    PLATE,
    SUSPECT_NAME,
    VICTIM_PHONE,
    approved_person,
    approved_victim,
    known_day,
    vehicle_signal,
)

AMS = ZoneInfo("Europe/Amsterdam")
SAFETY = Recipient(Role.SAFETY_UNIT_OFFICER, "veiligheid@gemeente.invalid")
NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=default)  # type: ignore[return-value]


def day_entries() -> list[Entry]:
    return [Entry.from_mapping(v) for v in known_day() if v["registration_number"] in IN_DAY]


def compose(rendered: object, recipient: Recipient = SAFETY) -> EmailMessage:
    message = address(
        rendered,  # type: ignore[arg-type]
        recipient,
        sender="dagmonitor@politie.invalid",
        domain="dagmonitor.invalid",
        date=NOW,
    )
    return parse(message.body)


def test_daily_mail_parts_and_content() -> None:
    rendered = render_daily(DAY, day_entries(), AMS)
    mail = compose(rendered)
    assert mail.get_content_type() == "multipart/mixed"
    assert mail["Subject"] == "Dagmonitor 27-11-2026"
    assert mail["To"] == SAFETY.address
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for body in (text, html):
        assert "ter hoogte van Voorbeeldstraat 12 bis" in body
        assert "Proefsteeg 3A" in body
        assert "ter hoogte van Proefsteeg" not in body
        assert "art. 20 Wpg" in body
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    assert rendered.records == tuple(RecordRef("dagmonitor.entries", k) for k in IN_DAY)


def test_no_personal_data_in_the_dagmonitor_mail() -> None:
    raw = compose(render_daily(DAY, day_entries(), AMS)).as_string()
    for personal in (SUSPECT_NAME, "Persoonsma", VICTIM_PHONE, PLATE, "Nergensweg", *IN_DAY):
        assert personal not in raw
    # An entry carries no person fields at all: the model cannot hold them.
    assert not {"persons", "vehicles", "modus_operandi", "phone"} & set(Entry.__dataclass_fields__)


def test_html_is_escaped_text_is_not() -> None:
    hostile = known_day()[2] | {"district_name": "<script>alert(1)</script> & Co"}
    rendered = render_daily(DAY, [Entry.from_mapping(hostile)], AMS)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in rendered.html
    assert "<script>alert(1)</script> & Co" in rendered.text


def test_empty_day_sends_a_short_mail_without_attachment() -> None:
    mail = compose(render_daily(DAY, [], AMS))
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Geen incidenten op 27-11-2026." in text
    assert list(mail.iter_attachments()) == []


def test_a_provisional_report_says_so_in_subject_text_and_html() -> None:
    complete = render_daily(DAY, day_entries(), AMS)
    provisional = render_daily(DAY, day_entries(), AMS, provisional=True)
    assert not complete.subject.startswith("Voorlopig")
    assert "VOORLOPIG" not in complete.text and "Voorlopig:" not in complete.html
    assert provisional.subject == "Voorlopig: " + complete.subject
    assert provisional.text.startswith("VOORLOPIG: toen dit overzicht werd gemaakt")
    assert "Wat nog binnenkomt, volgt als aanvulling." in provisional.html
    counts = [PostcodeCount("WK1", "Oost", "3581AB", 3)]
    hotspots = render_hotspots(
        hotspot_period(DAY), counts, top=15, cid_domain="x.invalid", provisional=True
    )
    assert hotspots.subject.startswith("Voorlopig: Cumulatieve Dagmonitor")
    assert "VOORLOPIG" in hotspots.text


def test_hotspot_mail_has_its_chart_inline() -> None:
    counts = [PostcodeCount("WK1", "Oost", "3581AB", 3), PostcodeCount("WK2", "West", None, 1)]
    rendered = render_hotspots(hotspot_period(DAY), counts, top=15, cid_domain="x.invalid")
    mail = compose(rendered)
    related = next(p for p in mail.walk() if p.get_content_type() == "multipart/related")
    html, image = related.iter_parts()
    assert image.get_content_type() == "image/png"
    cid = image["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html.get_content()
    assert image.get_content().startswith(b"\x89PNG")
    assert rendered.records == (), "counts only"


def test_notices_show_what_each_category_may_show() -> None:
    person = person_item(approved_person(), AMS)
    assert person.title == SUSPECT_NAME
    assert person.photo_id == "0001" and "Foto" not in dict(person.lines)
    assert "Geboortedatum" not in dict(person.lines), "NAW and photo only"
    victim = victim_item(approved_victim(), AMS)
    assert dict(victim.lines)["Telefoon"] == VICTIM_PHONE
    assert dict(victim.lines)["Werkwijze"] == "Achterdeur geforceerd"
    vehicle = vehicle_item(vehicle_signal(), AMS)
    assert (vehicle.title, dict(vehicle.lines)["Soort"]) == (PLATE, "Scooter")
    ref = RecordRef("persons.approved", "req-person-1")
    rendered = render_notices(Category.PERSON_NOTICE, "batch-1", [(ref, person)])
    mail = compose(rendered)
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "bvh://photos/0001" not in html, "no link a recipient cannot open"
    assert "Foto: nog niet ontvangen" in html
    assert SUSPECT_NAME not in mail["Subject"], "no personal data in headers"


def test_identity_is_deterministic_per_report_and_recipient() -> None:
    one = message_id("daily", "2026-11-27", "A@x.invalid", "d.invalid")
    assert one == message_id("daily", "2026-11-27", "a@x.invalid ", "d.invalid")
    assert one != message_id("daily", "2026-11-28", "a@x.invalid", "d.invalid")
    assert one != message_id("daily", "2026-11-27", "b@x.invalid", "d.invalid")
    assert one != message_id("hotspots", "2026-11-27", "a@x.invalid", "d.invalid")
    assert "x.invalid" not in one.split("@")[0], "the address is hashed"
    assert provision_id(one) == provision_id(one) != provision_id(one.replace("daily", "d"))
    assert (
        len("Message-ID: " + message_id("hotspots", "p", "a@b", "dagmonitor.example.invalid")) <= 78
    )
