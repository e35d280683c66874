"""The municipality's districts (wijken) and neighbourhoods (buurten) by name, as data:
``wijken.csv``, loaded once.

The mails name places as people know them; the CBS codes appear only in the CSV attachment.
A record that carries a name keeps it; one that carries only a code is named from this table.
The postcode areas (PC4) of each neighbourhood say which district a postcode belongs to.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from services.distributor.errors import DistributorError

AREAS_FILE = Path(__file__).with_name("wijken.csv")
UNKNOWN_DISTRICT = "Wijk onbekend"

_DISTRICT_CODE = re.compile(r"WK\d{6}")
_NEIGHBOURHOOD_CODE = re.compile(r"BU\d{8}")
_PC4 = re.compile(r"\d{4}")


@dataclass(frozen=True, slots=True)
class Neighbourhood:
    """One buurt: its code and name, its district's, and its postcode areas (PC4)."""

    code: str
    name: str
    district_code: str
    district_name: str
    postcodes: tuple[str, ...]


@dataclass(frozen=True)
class Areas:
    """Lookups over the table: names by code, the district of a postcode."""

    neighbourhoods: tuple[Neighbourhood, ...]

    @cached_property
    def districts(self) -> Mapping[str, str]:
        """District code -> name, in the table's order."""
        return {n.district_code: n.district_name for n in self.neighbourhoods}

    @cached_property
    def _district_by_pc4(self) -> Mapping[str, str]:
        return {pc: n.district_code for n in self.neighbourhoods for pc in n.postcodes}

    def district_name(self, code: str | None) -> str | None:
        return self.districts.get(code) if code else None

    def neighbourhood_name(self, code: str | None) -> str | None:
        return next((n.name for n in self.neighbourhoods if n.code == code), None)

    def district_of_postcode(self, postcode: str | None) -> str | None:
        """The district code whose neighbourhoods hold the postcode's four digits."""
        return self._district_by_pc4.get(postcode[:4]) if postcode else None

    def in_district(self, district_code: str) -> tuple[Neighbourhood, ...]:
        return tuple(n for n in self.neighbourhoods if n.district_code == district_code)


def district_label(code: str | None, name: str | None, areas: Areas | None = None) -> str:
    """The name a reader sees: the record's own, else the table's, else "Wijk onbekend"
    (never the code)."""
    return name or (areas or AREAS).district_name(code) or UNKNOWN_DISTRICT


def parse_areas(text: str) -> Areas:
    """The table from CSV text (``#`` lines are comments); raises ``DistributorError`` naming
    the line of a malformed row, a code used twice or a postcode area in two districts."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines)), delimiter=";"))
    neighbourhoods: list[Neighbourhood] = []
    district_of: dict[str, str] = {}
    names: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        try:
            district, district_name = row["wijkcode"].strip(), row["wijk"].strip()
            code, name = row["buurtcode"].strip(), row["buurt"].strip()
            postcodes = tuple(row["postcodes"].split())
        except (KeyError, AttributeError):
            raise DistributorError(f"wijken.csv row {number}: a column is missing") from None
        if not (_DISTRICT_CODE.fullmatch(district) and _NEIGHBOURHOOD_CODE.fullmatch(code)):
            raise DistributorError(f"wijken.csv row {number}: codes are WK+6 and BU+8 digits")
        if not district_name or not name or not all(_PC4.fullmatch(p) for p in postcodes):
            raise DistributorError(f"wijken.csv row {number}: names and PC4 postcodes needed")
        if names.setdefault(district, district_name) != district_name:
            raise DistributorError(f"wijken.csv row {number}: {district} has two names")
        if any(n.code == code for n in neighbourhoods):
            raise DistributorError(f"wijken.csv row {number}: {code} appears twice")
        for postcode in postcodes:
            if district_of.setdefault(postcode, district) != district:
                raise DistributorError(f"wijken.csv row {number}: {postcode} in two districts")
        neighbourhoods.append(Neighbourhood(code, name, district, district_name, postcodes))
    return Areas(tuple(neighbourhoods))


AREAS = parse_areas(AREAS_FILE.read_text(encoding="utf-8"))
"""The bundled table (the municipality's own: edit ``wijken.csv``)."""
