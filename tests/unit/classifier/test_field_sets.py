"""What of a person leaves per category (``field_sets.csv``), row by row: the file against the
covenant, the policy's requests against the file, and the file's defects refused."""

from __future__ import annotations

import pytest

from dagmonitor.errors import ConfigError
from services.classifier.field_sets import (
    FIELD_SETS_FILE,
    PERSON_CATEGORIES,
    PERSON_FIELDS,
    parse_field_sets,
)
from services.classifier.policy import FIELD_SETS
from tests.unit.field_sets_chain import (
    EXPECTED,
    MODUS_OPERANDI,
    _shared_person_fields,
    expected_subject,
    request_value,
)

COVENANT_WORDS = {
    "SUSPECT": "NAW-gegevens en foto\u2019s van verdachten van strafbare feiten en veelplegers",
    "PERSON_OF_INTEREST": "NAW-gegevens en foto\u2019s van personen die een gebiedsontzegging "
    "hebben of die al ruimschoots in de aandacht van de politie staan",
    "VICTIM": "NAW-gegevens, inclusief telefoonnummer, van slachtoffers van woninginbraak "
    "inclusief informatie omtrent de Modus Operandi",
}
TEXT = FIELD_SETS_FILE.read_text(encoding="utf-8")


def test_one_row_per_category_that_carries_a_person() -> None:
    assert set(FIELD_SETS) == set(EXPECTED) == PERSON_CATEGORIES


def test_the_person_fields_are_those_of_shared_person() -> None:
    assert list(PERSON_FIELDS) == _shared_person_fields()


@pytest.mark.parametrize("category", sorted(EXPECTED))
def test_each_row_is_what_the_covenant_names(category: str) -> None:
    shared, modus_operandi = EXPECTED[category]
    row = FIELD_SETS[category]
    assert (row.person, row.modus_operandi) == (shared, modus_operandi)
    assert "birth_date" not in row.person
    assert row.covenant.startswith(COVENANT_WORDS[category])


@pytest.mark.parametrize("category", sorted(EXPECTED))
def test_a_full_person_leaves_as_its_field_set(category: str) -> None:
    """From a police person with every field set through the policy to the request subject."""
    request = request_value(category)
    assert request["category"] == category
    assert request["subject"] == expected_subject(category)
    assert request["subject"]["birth_date"] is None
    _, modus_operandi = EXPECTED[category]
    assert request["modus_operandi"] == (MODUS_OPERANDI if modus_operandi else None)


def _header(old: str, new: str) -> str:
    header = next(line for line in TEXT.splitlines() if line.startswith("category,"))
    return TEXT.replace(header, header.replace(old, new), 1)


def _row(category: str, old: str, new: str) -> str:
    """The file with ``old`` replaced by ``new`` in a row; a ``#`` ends the row there."""
    line = next(line for line in TEXT.splitlines() if line.startswith(f"{category},"))
    return TEXT.replace(line, line.replace(old, new, 1).partition("#")[0], 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_header("birth_date", "geboortedatum"), "unknown field(s) geboortedatum"),
        (_header(",photo_ref,", ",photo,"), "unknown field(s) photo"),
        (_header(",phone,", ","), "columns must be"),
        (_header("phone,birth_date", "phone,phone"), "each once"),
        (_row("VICTIM", "VICTIM", "WITNESS"), "unknown category 'WITNESS'"),
        (_row("VICTIM", "VICTIM", "SUSPECT"), "SUSPECT appears twice"),
        (_row("VICTIM", ",nee,", ",Nee,"), "'Nee' is not ja or nee"),
        (_row("SUSPECT", ",nee,", ",,"), "is not ja or nee"),
        (_row("VICTIM", '"NAW', "NAW").replace('politie"', "politie"), "unquoted comma"),
        (_row("SUSPECT", ",NAW-gegevens en foto\u2019s", ", #"), "covenant phrase is missing"),
        (
            "\n".join(line for line in TEXT.splitlines() if not line.startswith("VICTIM,")),
            "no row for VICTIM",
        ),
    ],
    ids=lambda value: value if len(value) < 60 else "text",
)
def test_a_defective_file_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_field_sets(text)
    assert message in str(raised.value)


def test_the_file_as_it_stands_parses() -> None:
    assert parse_field_sets(TEXT) == FIELD_SETS
