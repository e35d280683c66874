"""What a supplement says: new, changed (in what the mail shows), withdrawn; and how it reads."""

from __future__ import annotations

import csv
import dataclasses
import io
from zoneinfo import ZoneInfo

from services.distributor.rendering import Kind, RecordRef, render_supplement, supplement_period
from services.distributor.reports import CONFIDENTIAL, Entry
from services.distributor.supplement import (
    Change,
    DayChanges,
    Told,
    day_changes,
    entry_document,
    entry_from_document,
)
from tests.unit.distributor.samples import DAY, IN_DAY, known_day

AMS = ZoneInfo("Europe/Amsterdam")


def _entries() -> dict[str, Entry]:
    return {
        v["registration_number"]: Entry.from_mapping(v)
        for v in known_day()
        if v["registration_number"] in IN_DAY
    }


def _told(entries: dict[str, Entry]) -> dict[str, Told]:
    return {r: Told(1, e) for r, e in entries.items()}


def test_nothing_changed_gives_no_supplement() -> None:
    entries = _entries()
    changes = day_changes({r: (e, 1) for r, e in entries.items()}, _told(entries))
    assert not changes
    assert changes.versions == ()


def test_a_redelivered_version_is_no_change_even_if_it_looks_different() -> None:
    entries = _entries()
    told = _told(entries)
    first = IN_DAY[0]
    other = dataclasses.replace(entries[first], mk_description="ANDERS")
    changes = day_changes({**{r: (e, 1) for r, e in entries.items()}, first: (other, 1)}, told)
    assert not changes


def test_new_changed_silent_and_withdrawn_entries() -> None:
    entries = _entries()
    told = _told(entries)
    a, b, c, d = IN_DAY
    current = {
        a: (dataclasses.replace(entries[a], mk_description="WONINGINBRAAK"), 2),  # changed
        b: (entries[b], 3),  # a newer version showing the same: recorded, not mailed
        d: (entries[d], 1),
        "PL0900-2026000099": (
            dataclasses.replace(entries[d], registration_number="PL0900-2026000099"),
            1,
        ),
    }  # c is gone: withdrawn (or moved to another day)
    changes = day_changes(current, told)
    assert [e.registration_number for e in changes.new] == ["PL0900-2026000099"]
    assert [e.registration_number for e in changes.changed] == [a]
    assert changes.changed[0].mk_description == "WONINGINBRAAK"
    assert changes.withdrawn == (entries[c],)  # as the recipients received it
    assert dict(changes.versions) == {a: 2, b: 3, "PL0900-2026000099": 1}
    assert changes.by_registration() == {
        "PL0900-2026000099": Change.NEW,
        a: Change.CHANGED,
        c: Change.WITHDRAWN,
    }


def test_an_entry_survives_its_stored_document() -> None:
    for entry in _entries().values():
        assert entry_from_document(entry_document(entry)) == entry


def test_the_supplement_mail_names_each_change_and_provides_only_new_and_changed() -> None:
    entries = _entries()
    a, _b, c, d = IN_DAY
    changes = DayChanges(
        new=(entries[d],),
        changed=(dataclasses.replace(entries[a], mk_description="WONINGINBRAAK"),),
        withdrawn=(entries[c],),
    )
    rendered = render_supplement(DAY, 2, changes, AMS)
    assert rendered.kind == Kind.SUPPLEMENT
    assert rendered.period == supplement_period(DAY, 2) == "2026-11-27.aanvulling-2"
    assert rendered.subject == "Aanvulling Dagmonitor 27-11-2026 (2)"
    assert render_supplement(DAY, 1, changes, AMS).subject == "Aanvulling Dagmonitor 27-11-2026"
    assert set(rendered.records) == {
        RecordRef("dagmonitor.entries", d),
        RecordRef("dagmonitor.entries", a),
    }
    text = rendered.text
    assert "1 nieuw, 1 gewijzigd, 1 vervallen" in text
    new_at, changed_at, gone_at = (
        text.index(h) for h in ("NIEUW: 1", "GEWIJZIGD: 1", "VERVALLEN: 1")
    )
    assert new_at < changed_at < gone_at
    assert "WONINGINBRAAK" in text[changed_at:gone_at]
    assert "MELDING OVERLAST JEUGD" in text[gone_at:]  # the withdrawn one, as received
    assert "Verwijder deze incidenten" in text and "Verwijder deze incidenten" in rendered.html
    assert "Kenmerk verstrekking: 2026-11-27.aanvulling-2" in text
    (attachment,) = rendered.attachments
    marking, *rows = csv.reader(io.StringIO(attachment.data.decode("utf-8-sig")), delimiter=";")
    assert marking == [CONFIDENTIAL]
    assert rows[0][0] == "wijziging"
    assert sorted((r[0], r[12]) for r in rows[1:]) == [
        ("gewijzigd", "A10"),
        ("nieuw", "F530"),
        ("vervallen", "E35"),
    ]
