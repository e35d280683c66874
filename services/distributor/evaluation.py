"""The covenant's evaluation report (ARCHITECTURE.md section 11): what it counts, as data.

"In de laatste maand van de looptijd van dit convenant worden de probleemsituatie en de
werkwijze geëvalueerd om te kijken in hoeverre het doel is bereikt en of het verstrekken van
gegevens voor het betreffende doel als middel heeft gewerkt en nog noodzakelijk is."

So the report shows how the *working method* was used over the term, never where incidents
happened: provisions per category, recipient role and month; decisions per authority and
outcome with waiting times; escalations; withdrawals; dead letters by reason; retention
deletions; mails held outside the term. ``SECTIONS`` is the list a policy officer reviews;
there is deliberately no section with incidents per district or neighbourhood, so the report
cannot become steering information ("geen sturingsinformatie"). Pure: rows in, CSV out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from dagmonitor.covenant import Term

SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("provisions", "Verstrekkingen per categorie, rol en maand", ("categorie", "rol", "maand")),
    (
        "decisions",
        "Besluiten per beoordelaar en uitkomst",
        ("beoordelaar", "categorie", "uitkomst"),
    ),
    ("escalations", "Escalaties jeugdoverlast (E35) per uitkomst", ("uitkomst",)),
    ("withdrawals", "Intrekkingen per maand", ("maand",)),
    ("dead_letters", "Afgekeurde invoer per reden", ("reden", "dienst")),
    ("retention", "Verwijderd na de bewaartermijn", ("topic", "reden")),
    ("held", "Niet verzonden mails buiten de looptijd", ("categorie",)),
)
"""Each section: its key, its Dutch title, and the columns it counts by. Nothing by place."""

FORBIDDEN_DIMENSIONS = frozenset({"district", "wijk", "buurt", "neighbourhood", "postcode"})
"""No section counts by these: the report is about the method, not steering information."""


LABELS: dict[str, str] = {
    # what was provided (the register's categories)
    "dagmonitor_daily": "Dagmonitor (dagelijks, met aanvullingen)",
    "hotspots": "Cumulatieve Dagmonitor (hotspots)",
    "person_notice": "Personen (verdachten, veelplegers, gebiedsverboden)",
    "victim_notice": "Slachtoffers woninginbraak",
    "vehicle_notice": "Gestolen voertuigen (kentekens)",
    "covenant_evaluation": "Evaluatie convenant",
    # to whom (the covenant's recipient roles)
    "safety_unit_officer": "Eenheid Veiligheid",
    "enforcement_meeting_member": "Handhavingsoverleg",
    "enforcement_team_leader": "Teamleider Toezicht en Handhaving",
    # who decided, on what, how
    "OM": "OM",
    "POLICE_BURGLARY_TEAM": "Inbrakenteam politie",
    "POLICE_DISTRICT": "Wijkpolitie",
    "SUSPECT": "Verdachte",
    "PERSON_OF_INTEREST": "Veelpleger of gebiedsverbod",
    "VICTIM": "Slachtoffer woninginbraak",
    "YOUTH_NUISANCE_DETAIL": "Jeugdoverlast (E35) op huisnummer",
    "APPROVED": "goedgekeurd",
    "REJECTED": "afgewezen",
    "EXPIRED": "verlopen (niet beoordeeld)",
    "retention": "bewaartermijn verstreken",
}
"""Dutch names of the codes the report counts by; the CSV keeps the codes themselves."""


def label(code: str) -> str:
    """The Dutch name of a code, or the code itself (reasons, topics, services)."""
    return LABELS.get(code, code)


def months_between(first: date, last: date) -> list[str]:
    """Every month (``YYYY-MM``) from ``first`` to ``last``, both included."""
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


@dataclass(frozen=True, slots=True)
class Row:
    """One counted combination: its dimension values, the count, and for decisions the
    median and longest waiting time in hours."""

    dimensions: tuple[str, ...]
    count: int
    median_wait_hours: float | None = None
    max_wait_hours: float | None = None


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """The counts of one term's period, section by section (keys of ``SECTIONS``)."""

    term: Term
    generated_on: str
    sections: dict[str, list[Row]] = field(default_factory=dict)

    def rows(self, section: str) -> list[Row]:
        return self.sections.get(section, [])

    def total(self, section: str) -> int:
        return sum(row.count for row in self.rows(section))


def _hours(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def evaluation_csv(report: EvaluationReport, marking: str) -> bytes:
    """One CSV of every section: the confidentiality marking first, then the column names
    (section, title, three dimensions, count, median and longest wait in hours)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([marking])
    writer.writerow(
        [
            "sectie",
            "titel",
            "dimensie_1",
            "dimensie_2",
            "dimensie_3",
            "aantal",
            "mediaan_wachttijd_uur",
            "langste_wachttijd_uur",
        ]
    )
    for key, title, _columns in SECTIONS:
        for row in report.rows(key):
            dims = [*row.dimensions, "", "", ""][:3]
            writer.writerow(
                [
                    key,
                    title,
                    *dims,
                    row.count,
                    _hours(row.median_wait_hours),
                    _hours(row.max_wait_hours),
                ]
            )
    return out.getvalue().encode("utf-8")


@dataclass(frozen=True, slots=True)
class ShownSection:
    """A section as the mail shows it: Dutch title, column names, rows with Dutch names."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: list[Row]
    waits: bool
    stacked: bool = False
    """The first two columns share one cell (a narrow screen has no room for six)."""

    @property
    def total(self) -> int:
        return sum(row.count for row in self.rows)


COLUMN_NAMES = {
    "categorie": "Categorie",
    "rol": "Rol",
    "maand": "Maand",
    "beoordelaar": "Beoordelaar",
    "uitkomst": "Uitkomst",
    "reden": "Reden",
    "dienst": "Dienst",
    "topic": "Topic",
}


def _summed(rows: Sequence[Row], keep: slice) -> list[Row]:
    totals: dict[tuple[str, ...], int] = {}
    for row in rows:
        totals[row.dimensions[keep]] = totals.get(row.dimensions[keep], 0) + row.count
    return [Row(dims, count) for dims, count in sorted(totals.items())]


def shown_sections(report: EvaluationReport) -> list[ShownSection]:
    """The sections as the mail shows them. Provisions by category, role and month would be
    one long table: the mail shows them per category and role, and per month (the chart
    shows category by month); the CSV keeps every combination."""
    shown = []
    for key, title, columns in SECTIONS:
        rows = report.rows(key)
        parts: list[tuple[str, str, tuple[str, ...], list[Row]]] = [(key, title, columns, rows)]
        if key == "provisions":
            parts = [
                (
                    key,
                    "Verstrekkingen per categorie en rol",
                    columns[:2],
                    _summed(rows, slice(0, 2)),
                ),
                (
                    "provisions_month",
                    "Verstrekkingen per maand",
                    columns[2:],
                    _summed(rows, slice(2, 3)),
                ),
            ]
        for part_key, part_title, part_columns, part_rows in parts:
            names = tuple(COLUMN_NAMES[c] for c in part_columns)
            stacked = key == "decisions"
            if stacked:
                names = (f"{names[0]} / {names[1].lower()}", *names[2:])
            shown.append(
                ShownSection(
                    part_key,
                    part_title,
                    names,
                    [
                        Row(
                            tuple(label(d) for d in r.dimensions),
                            r.count,
                            r.median_wait_hours,
                            r.max_wait_hours,
                        )
                        for r in part_rows
                    ],
                    waits=key in ("decisions", "escalations"),
                    stacked=stacked,
                )
            )
    return shown
