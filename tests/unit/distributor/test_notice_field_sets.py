"""The notice mails show no more of a person than the approved record carries, and no empty
label for a field its category does not share: each category's field set, from a full police
person through the policy and the approval to the mail."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from services.distributor.entitlements import Category
from services.distributor.rendering import RecordRef, render_notices
from services.distributor.reports import NoticeItem, person_item, victim_item
from tests.unit.field_sets_chain import EXPECTED, MODUS_OPERANDI, approved_value, full_person

AMS = ZoneInfo("Europe/Amsterdam")
PERSON = full_person("SUSPECT")
SHOWN_AS = {
    "address": ("Adres", "Nergensweg 7b, 3512ZZ Utrecht"),
    "phone": ("Telefoon", PERSON["phone"]),
    "birth_date": ("Geboortedatum", "29-02-1988"),
}
"""How a notice shows each person field (the name is the item's title)."""


def _notice(category: str) -> tuple[NoticeItem, str, str]:
    value = approved_value(category)
    if category == "VICTIM":
        item, kind, topic = victim_item(value, AMS), Category.VICTIM_NOTICE, "victims.approved"
    else:
        item, kind, topic = person_item(value, AMS), Category.PERSON_NOTICE, "persons.approved"
    rendered = render_notices(kind, "batch-1", [(RecordRef(topic, value["request_id"]), item)])
    return item, rendered.text, rendered.html


@pytest.mark.parametrize("category", sorted(EXPECTED))
def test_a_notice_shows_the_field_set_and_no_empty_label(category: str) -> None:
    shared, modus_operandi = EXPECTED[category]
    item, text, html = _notice(category)
    assert item.title == "Testje Proef van der Verzonnen"
    lines = dict(item.lines)
    assert all(lines.values()), "no label without a value"
    for name, (label, shown) in SHOWN_AS.items():
        if name in shared:
            assert lines[label] == shown
            assert f"{label}: {shown}" in text
        else:
            assert label not in lines, f"{category} shows no {label}"
            assert f"{label}:" not in text and f"<th>{label}</th>" not in html
            assert shown not in text + html
    # The photo is no label line but the image itself, or a note that it has not arrived.
    assert (item.photo_id is not None) == ("photo_ref" in shared)
    assert ("Foto: nog niet ontvangen" in text) == ("photo_ref" in shared)
    assert PERSON["photo_ref"] not in text + html, "never the police's link"
    assert (lines.get("Werkwijze") == MODUS_OPERANDI) == modus_operandi
    assert "1988" not in text + html, "the birth date leaves for no category"
    assert "<td></td>" not in html
