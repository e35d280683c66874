"""Realistic synthetic police records for one municipality (``dagmonitor generate``).

Everything is invented from a seeded random generator: Dutch street names, postcodes inside
their district and neighbourhood (``services/distributor/wijken.csv``), hotspots that cluster
in space and time as real incidents do (``HOTSPOTS``), MK codes in the proportions a Dutch
city's daily BVH registrations roughly have (bicycle theft, shoplifting, youth nuisance and
vandalism common; burglary and robbery rarer; a share of codes outside Bijlage 1 and of
neighbouring municipalities), persons in the roles the offence implies, vehicles where the
code involves one, and some later versions of the same registration. The same seed and date
give the same records.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click

from dagmonitor.settings import DagmonitorSettings
from services.distributor.areas import AREAS, Neighbourhood

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@dataclass(frozen=True)
class District:
    code: str
    name: str
    neighbourhoods: tuple[Neighbourhood, ...]

    @property
    def postcode_prefixes(self) -> tuple[str, ...]:
        return tuple(pc for n in self.neighbourhoods for pc in n.postcodes)


# Utrecht (GM0344): its ten wijken and their buurten with their postcode areas, from the
# distributor's table (services/distributor/wijken.csv), so the demo names what the mails name.
DISTRICTS = tuple(
    District(code, name, AREAS.in_district(code)) for code, name in AREAS.districts.items()
)


@dataclass(frozen=True)
class Hotspot:
    """Where and when incidents of one kind repeat, as they do in a city: a few streets with
    car break-ins at night, a square with youth nuisance in the evening, bicycle theft at the
    station by day. ``share``: the fraction of the day's incidents that happen here."""

    mk_code: str
    places: tuple[tuple[str, str], ...]
    """(street, PC6) pairs: the hotspot's streets, each with its postcode."""
    hours: tuple[int, int]
    """Local hours [from, until); until < from wraps past midnight (still the same day)."""
    share: float


HOTSPOTS = (
    # Car break-ins along three streets of Zamenhof (Overvecht), evening and night.
    Hotspot(
        "A10",
        (("Zamenhofdreef", "3562JA"), ("Neckardreef", "3562CJ"), ("Donaudreef", "3562VD")),
        (20, 4),
        0.06,
    ),
    # Youth nuisance on the Europaplein, Kanaleneiland (Zuidwest), in the evening.
    Hotspot("E35", (("Europaplein", "3526WS"),), (18, 24), 0.05),
    # Bicycle theft at the station square and the bicycle parking (Binnenstad), by day.
    Hotspot("A72", (("Stationsplein", "3511CE"), ("Smakkelaarsveld", "3511EA")), (7, 21), 0.06),
    # Shoplifting in the shopping streets of the city centre, shop hours.
    Hotspot("A50", (("Steenweg", "3511JP"), ("Lange Elisabethstraat", "3511JH")), (10, 18), 0.04),
    # Residential burglary in a street of Terwijde (Leidsche Rijn), at dusk.
    Hotspot("A20", (("Terwijdelaan", "3541AJ"),), (16, 21), 0.02),
)


STREETS = (
    "Kerkstraat",
    "Dorpsstraat",
    "Molenweg",
    "Stationsweg",
    "Schoolstraat",
    "Julianalaan",
    "Wilhelminastraat",
    "Oranjelaan",
    "Beatrixstraat",
    "Lindelaan",
    "Eikenlaan",
    "Nieuwegracht",
    "Oudegracht",
    "Biltstraat",
    "Amsterdamsestraatweg",
    "Vleutenseweg",
    "Kanaalweg",
    "Marnixlaan",
    "Croeselaan",
    "Europalaan",
    "Vasco da Gamalaan",
    "Zamenhofdreef",
    "Gageldijk",
    "Merelstraat",
    "Prinses Irenelaan",
    "Koningsweg",
    "Burgemeester Norbruislaan",
)
FIRST_NAMES = (
    "Daan",
    "Sem",
    "Lucas",
    "Levi",
    "Finn",
    "Noah",
    "Emma",
    "Julia",
    "Tess",
    "Sophie",
    "Anna",
    "Mohammed",
    "Yassin",
    "Fatima",
    "Noor",
    "Sanne",
    "Lotte",
    "Thijs",
    "Ruben",
    "Eva",
    "Mila",
)
SURNAMES = (
    ("de", "Jong"),
    (None, "Jansen"),
    ("de", "Vries"),
    ("van den", "Berg"),
    ("van", "Dijk"),
    (None, "Bakker"),
    (None, "Visser"),
    (None, "Smit"),
    (None, "Meijer"),
    ("de", "Boer"),
    (None, "Mulder"),
    ("de", "Groot"),
    (None, "Bos"),
    ("van der", "Linden"),
    (None, "El Amrani"),
    (None, "Yilmaz"),
    (None, "Hendriks"),
    ("van", "Leeuwen"),
    (None, "Dekker"),
    (None, "Brouwer"),
)
NEIGHBOURS = ("GM0307", "GM0310", "GM0356", "GM1904")  # Amersfoort, De Bilt, Nieuwegein, ...

# (code, weight): rough shares of a city's daily registrations; codes outside Bijlage 1 last.
MK_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("A72", 120),
    ("A50", 70),
    ("E35", 90),
    ("C40", 45),
    ("C50", 35),
    ("A10", 55),
    ("A20", 35),
    ("A30", 15),
    ("A34", 15),
    ("A21", 10),
    ("A40", 25),
    ("A70", 10),
    ("A73", 20),
    ("A76", 6),
    ("A22", 8),
    ("A23", 8),
    ("B70", 8),
    ("B20", 2),
    ("B40", 3),
    ("B72", 1),
    ("C10", 25),
    ("C20", 8),
    ("E11", 15),
    ("E16", 40),
    ("E36", 10),
    ("E38", 25),
    ("E41", 8),
    ("F11", 4),
    ("F12", 6),
    ("F13", 4),
    ("F41", 8),
    ("F46", 6),
    ("F530", 25),
    ("M061", 12),
    ("M131", 6),
    ("E33", 40),
    ("D10", 30),
    ("F21", 10),
    ("G11", 15),
    ("H13", 10),
)
VEHICLE_CODES = {
    "A70": ("PASSENGER_CAR",),
    "A73": ("MOPED", "SCOOTER"),
    "A76": ("VAN",),
    "A72": ("BICYCLE",),
    "A10": ("PASSENGER_CAR",),
    "B10": ("PASSENGER_CAR",),
}
BURGLARY = {"A20", "A21", "A30", "A34", "B20", "B30", "B72"}
THEFT_OR_VIOLENCE_PREFIXES = ("A", "B", "C", "F1")
_PLATE_LETTERS = "BDFGHJKLNPRSTVXZ"


class Generator:
    """Generates records for ``municipality`` on ``day`` (local Amsterdam time)."""

    def __init__(self, seed: int, day: date, municipality: str = "GM0344") -> None:
        self.random = random.Random(seed)  # reproducible synthetic data, no secret  # nosec B311
        self.day = day
        self.municipality = municipality
        self.year = day.year
        codes, weights = zip(*MK_WEIGHTS, strict=True)
        self._codes = codes
        self._weights = weights
        self._hot_share = sum(h.share for h in HOTSPOTS)

    def incidents(self, count: int) -> Iterator[dict[str, Any]]:
        for sequence in range(1, count + 1):
            incident = self._incident(sequence)
            yield incident
            if self.random.random() < 0.05:  # a later correction of the same registration
                update = dict(incident, version=2, event_id=f"{incident['event_id']}-v2")
                update["mk_description"] = incident["mk_description"]
                yield update

    def notices(self, count: int) -> Iterator[dict[str, Any]]:
        for sequence in range(1, count + 1):
            start = datetime.combine(self.day, time(8), AMSTERDAM).astimezone(UTC)
            districts = sorted({d.code for d in self.random.sample(DISTRICTS, 2)})
            yield {
                "notice_id": f"NTC-{self.year}-{sequence:06d}",
                "version": 1,
                "kind": self.random.choice(["REPEAT_OFFENDER", "AREA_BAN", "KNOWN_OFFENDER"]),
                "person": self._person("INVOLVED"),
                "district_codes": districts,
                "valid_from": _iso(start),
                "valid_until": _iso(start + timedelta(days=self.random.choice([90, 180, 365]))),
                "mk_codes": self.random.sample(["A50", "A72", "E35", "F12", "A10"], 2),
            }

    def _incident(self, sequence: int) -> dict[str, Any]:
        rnd = self.random
        hotspot = (
            rnd.choices(HOTSPOTS, [h.share for h in HOTSPOTS])[0]
            if rnd.random() < self._hot_share
            else None
        )
        municipality = self.municipality
        if hotspot is not None:
            code = hotspot.mk_code
            street, postcode_ = rnd.choice(hotspot.places)
            postcode: str | None = postcode_
            neighbourhood = _neighbourhood_of(postcode_)
            local = self._moment(*hotspot.hours)
        else:
            code = rnd.choices(self._codes, self._weights)[0]
            neighbourhood = rnd.choice(rnd.choice(DISTRICTS).neighbourhoods)
            street = rnd.choice(STREETS)
            postcode = self._postcode(neighbourhood)
            local = self._moment(0, 24)
            if rnd.random() < 0.05:
                municipality = rnd.choice(NEIGHBOURS)
            if rnd.random() < 0.03:
                postcode = None
        reported = local.astimezone(UTC)
        registration = f"PL0900-{self.year}{sequence:06d}"
        return {
            "event_id": f"EVT-{registration}-1",
            "registration_number": registration,
            "version": 1,
            "mk_code": code if rnd.random() > 0.05 else f" {code.lower()} ",
            "mk_description": None,
            "reported_at": _iso(reported),
            "committed_from": _iso(reported - timedelta(hours=rnd.randrange(1, 12))),
            "committed_until": _iso(reported - timedelta(minutes=rnd.randrange(0, 50))),
            "location": {
                "street": street,
                "house_number": rnd.randrange(1, 250),
                "house_number_suffix": rnd.choice([None, None, None, "A", "bis", "2"]),
                "postcode": _spaced(postcode, rnd) if postcode else None,
                "city": "Utrecht" if municipality == self.municipality else "Elders",
                "municipality_code": municipality,
                "district_code": neighbourhood.district_code,
                "district_name": neighbourhood.district_name,
                "neighbourhood_code": neighbourhood.code,
                "neighbourhood_name": neighbourhood.name,
            },
            "persons": self._persons(code),
            "vehicles": self._vehicles(code),
            "modus_operandi": self._modus_operandi(code),
        }

    def _moment(self, start: int, until: int) -> datetime:
        """A local moment on the day within hours [start, until), wrapping past midnight."""
        hours = (until - start) % 24 or 24
        hour = (start + self.random.randrange(hours)) % 24
        offset = timedelta(hours=hour, seconds=self.random.randrange(3600))
        return datetime.combine(self.day, time(0), AMSTERDAM) + offset

    def _persons(self, code: str) -> list[dict[str, Any]]:
        rnd = self.random
        persons = [self._person("REPORTER")]
        if code in BURGLARY or code.startswith(("A", "B")):
            persons.append(self._person("VICTIM"))
        if code.startswith(THEFT_OR_VIOLENCE_PREFIXES) and rnd.random() < 0.35:
            persons.append(self._person("SUSPECT"))
        if rnd.random() < 0.15:
            persons.append(self._person("WITNESS"))
        if code == "E35" and rnd.random() < 0.3:
            persons.append(self._person("INVOLVED"))
        return persons

    def _person(self, role: str) -> dict[str, Any]:
        rnd = self.random
        prefix, surname = rnd.choice(SURNAMES)
        neighbourhood = rnd.choice(rnd.choice(DISTRICTS).neighbourhoods)
        return {
            "role": role,
            "first_names": rnd.choice(FIRST_NAMES),
            "surname_prefix": prefix,
            "surname": surname,
            "birth_date": date(
                rnd.randrange(1950, 2010), rnd.randrange(1, 13), rnd.randrange(1, 29)
            ).isoformat(),
            "address": {
                "street": rnd.choice(STREETS),
                "house_number": rnd.randrange(1, 250),
                "house_number_suffix": None,
                "postcode": self._postcode(neighbourhood),
                "city": "Utrecht",
            },
            "phone": f"06{rnd.randrange(10**7, 10**8)}",
            # Suspects and the persons of the police's notices have a photo in BVH.
            "photo_ref": (
                f"bvh://photos/{rnd.randrange(10**9):09d}"
                if role in ("SUSPECT", "INVOLVED")
                else None
            ),
        }

    def _vehicles(self, code: str) -> list[dict[str, Any]]:
        kinds = VEHICLE_CODES.get(code)
        if not kinds:
            return []
        stolen = code not in ("A10", "B10")  # theft from a car: the car itself is not stolen
        return [{"plate": self._plate(), "kind": self.random.choice(kinds), "stolen": stolen}]

    def _modus_operandi(self, code: str) -> str | None:
        if code in BURGLARY:
            return self.random.choice(
                ["Achterdeur geforceerd", "Raam ingeslagen", "Cilinder afgebroken", "Via balkon"]
            )
        return None

    def _postcode(self, neighbourhood: Neighbourhood) -> str:
        letters = "".join(self.random.choice("ABCEGHJKLMNPRTVWXZ") for _ in range(2))
        return f"{self.random.choice(neighbourhood.postcodes)}{letters}"

    def _plate(self) -> str:
        rnd = self.random
        letters = "".join(rnd.choice(_PLATE_LETTERS) for _ in range(3))
        return f"{letters[:2]}-{rnd.randrange(100, 999)}-{letters[2]}"


def _neighbourhood_of(postcode: str) -> Neighbourhood:
    """The neighbourhood holding a postcode's four digits (a hotspot's place is in the table)."""
    return next(n for d in DISTRICTS for n in d.neighbourhoods if postcode[:4] in n.postcodes)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _spaced(postcode: str, rnd: random.Random) -> str:
    return f"{postcode[:4]} {postcode[4:]}" if rnd.random() < 0.5 else postcode


@click.command()
@click.option("--count", type=click.IntRange(min=0), default=500, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="Default: yesterday.")
@click.option("--notices", type=click.IntRange(min=0), default=0, help="Person notices too.")
def generate(count: int, seed: int, day: datetime | None, notices: int) -> None:
    """Print realistic synthetic incidents (JSON Lines) for the configured municipality."""
    settings = DagmonitorSettings.load()
    when: date = day.date() if day else datetime.now(AMSTERDAM).date() - timedelta(days=1)
    generator = Generator(seed, when, settings.municipality_code)
    for record in generator.incidents(count):
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    for notice in generator.notices(notices):
        sys.stdout.write(json.dumps(notice, ensure_ascii=False) + "\n")


def portrait(seed: str, size: tuple[int, int] = (240, 300)) -> bytes:
    """A synthetic passport-style photo (a drawn silhouette, no real person) as JPEG bytes:
    what the demo delivers for a ``bvh://photos/{id}`` reference."""
    import hashlib
    import io

    from PIL import Image, ImageDraw

    digest = hashlib.sha256(seed.encode()).digest()
    background = (200 + digest[0] % 40, 205 + digest[1] % 40, 210 + digest[2] % 40)
    skin = (150 + digest[3] % 90, 110 + digest[4] % 80, 80 + digest[5] % 70)
    cloth = (40 + digest[6] % 120, 50 + digest[7] % 120, 60 + digest[8] % 120)
    width, height = size
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.12, height * 0.62, width * 0.88, height * 1.25), fill=cloth)
    draw.rectangle((width * 0.42, height * 0.5, width * 0.58, height * 0.68), fill=skin)
    draw.ellipse((width * 0.27, height * 0.14, width * 0.73, height * 0.6), fill=skin)
    hair = tuple(max(0, c - 90) for c in skin)
    draw.chord((width * 0.25, height * 0.1, width * 0.75, height * 0.45), 180, 360, fill=hair)
    draw.text((6, height - 16), "DEMO - geen echte persoon", fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()
