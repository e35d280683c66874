"""The covenant's term: when anything may be provided, its last month, renewal and early end.

The covenant ("Duur van het samenwerkingsverband"): it "treedt in werking na ondertekening",
"is geldig tot een jaar na dagtekening en kan telkens voor de duur van een jaar worden
verlengd. Elke verlenging wordt voorafgegaan door een evaluatiemoment. Partijen zijn bevoegd om
het samenwerkingsverband te beëindigen op ieder moment". "In de laatste maand van de looptijd
van dit convenant worden de probleemsituatie en de werkwijze geëvalueerd."

So, as rules (one function each, pure, no I/O; docs/adr/0018-covenant-term.md):

- a deployment is configured with the term's first and last local day
  (``DAGMONITOR_COVENANT_START_DATE``, ``DAGMONITOR_COVENANT_END_DATE``);
- ``Term.in_term``: provision is allowed from the first day's 00:00 until the end of the last
  day (local time), or until an early end, whichever comes first;
- ``Term.last_month_start``: the last month of the term begins the day after the same day of
  the month one month before the end (end 2027-06-30: from 2027-05-31; end 2026-12-31: from
  2026-12-01); the evaluation report is due then;
- ``renew``: one year more ("telkens voor de duur van een jaar"), only while the term runs,
  not after an early end, and only on an evaluation of the ending term sent in its last
  month ("voorafgegaan door een evaluatiemoment");
- ``end_early``: the parties may end it at any moment of the term, from now on.

The current term is the configured one, changed by the recorded renewals and early ends of
the same covenant (same start date) that the approval service publishes on ``covenant.term``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from dagmonitor.errors import DagmonitorError

TERM_TOPIC = "covenant.term"
"""Compacted: per covenant (key: its start date) the current term after renewals and ends."""
EVALUATION_CATEGORY = "covenant_evaluation"
"""The provision category of the evaluation report (``distribution.provisions``)."""


class CovenantRuleBroken(DagmonitorError):
    """A renewal or early end the covenant does not allow (the message says which rule)."""


class TermEvent(StrEnum):
    """What changed a term."""

    CONFIGURED = "CONFIGURED"  # as the deployment is configured; nothing recorded yet
    RENEWAL = "RENEWAL"  # verlenging, na een evaluatiemoment
    EARLY_END = "EARLY_END"  # tussentijdse beëindiging


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year + years, day=28)


def _month_before(day: date) -> date:
    """The same day one calendar month earlier (the month's last day when it has none)."""
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, candidate)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has a 28th")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Term:
    """One covenant's term: from ``start`` to ``end`` (local days, both included), the
    current period beginning on ``period_start`` (the start, or the day after the end a
    renewal extended), ended early at ``ended_at`` when the parties did so."""

    start: date
    end: date
    period_start: date | None = None
    ended_at: datetime | None = None
    revision: int = 0
    """How many renewals and early ends are recorded (0: the configured term)."""
    event: TermEvent = TermEvent.CONFIGURED
    evaluation_id: str | None = None
    """The evaluation a renewal rests on (a provision id of the evaluation report)."""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("the covenant's end lies before its start")

    @property
    def current_period_start(self) -> date:
        return self.period_start or self.start

    def starts_at(self, tz: ZoneInfo) -> datetime:
        """The first moment provision is allowed (00:00 local on the first day)."""
        return datetime.combine(self.start, time(0), tzinfo=tz)

    def ends_at(self, tz: ZoneInfo) -> datetime:
        """The first moment provision is no longer allowed: the end of the last day, or the
        early end when that comes first."""
        end = datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=tz)
        return end if self.ended_at is None else min(end, self.ended_at)

    def in_term(self, moment: datetime, tz: ZoneInfo) -> bool:
        """Whether anything may be provided at ``moment`` (aware)."""
        return self.starts_at(tz) <= moment < self.ends_at(tz)

    def last_month_start(self) -> date:
        """The first day of the term's last month (the evaluation is due then)."""
        return _month_before(self.end) + timedelta(days=1)

    def in_last_month(self, moment: datetime, tz: ZoneInfo) -> bool:
        return datetime.combine(
            self.last_month_start(), time(0), tzinfo=tz
        ) <= moment and self.in_term(moment, tz)

    def days_remaining(self, today: date) -> int:
        """Days provision is still allowed after local ``today`` (negative once ended)."""
        last = self.end if self.ended_at is None else self.ended_at.date() - timedelta(days=1)
        return (last - today).days

    def label(self) -> str:
        """The current period, e.g. ``2026-01-01..2026-12-31``."""
        return f"{self.current_period_start.isoformat()}..{self.end.isoformat()}"

    def record(self, changed_at: datetime) -> dict[str, Any]:
        """The ``nl.dagmonitor.CovenantTerm`` value of this term."""
        return {
            "start_date": self.start,
            "end_date": self.end,
            "period_start": self.current_period_start,
            "ended_at": self.ended_at,
            "revision": self.revision,
            "event": self.event.value,
            "evaluation_id": self.evaluation_id,
            "changed_at": changed_at,
        }

    @classmethod
    def from_record(cls, value: Mapping[str, Any]) -> Term:
        return cls(
            start=value["start_date"],
            end=value["end_date"],
            period_start=value["period_start"],
            ended_at=value["ended_at"],
            revision=value["revision"],
            event=TermEvent(value["event"]),
            evaluation_id=value["evaluation_id"],
        )


def current_term(configured: Term, recorded: Term | None) -> Term:
    """The term in force: the recorded state of the configured covenant (same start date and
    at least one event recorded), else the configured term. A record of another covenant (a
    deployment configured anew after a new signing) does not apply."""
    if recorded is None or recorded.start != configured.start or recorded.revision == 0:
        return configured
    return recorded


@dataclass(frozen=True, slots=True)
class Evaluation:
    """An evaluation report as sent: its provision id and when the mail was accepted."""

    evaluation_id: str
    covenant_start: date
    sent_at: datetime


def evaluation_of_ending_term(
    term: Term, evaluations: list[Evaluation], tz: ZoneInfo
) -> Evaluation | None:
    """The latest evaluation that counts for renewing ``term``: of this covenant, sent in the
    last month of its current period; None when there is none."""
    counting = [e for e in evaluations if counts_for(term, e, tz)]
    return max(counting, key=lambda e: e.sent_at, default=None)


def counts_for(term: Term, evaluation: Evaluation, tz: ZoneInfo) -> bool:
    """Whether ``evaluation`` evaluates the ending period of ``term``."""
    return evaluation.covenant_start == term.start and term.in_last_month(evaluation.sent_at, tz)


def renew(term: Term, evaluation: Evaluation | None, now: datetime, tz: ZoneInfo) -> Term:
    """``term`` renewed for a year on ``evaluation``; raises CovenantRuleBroken when the
    covenant does not allow it (no evaluation of the ending term, ended, or not running)."""
    if term.ended_at is not None:
        raise CovenantRuleBroken("the covenant was ended early and cannot be renewed")
    if not term.in_term(now, tz):
        raise CovenantRuleBroken(
            "the covenant is not in force: only a running term can be renewed "
            "(a new covenant is configured with its own start and end dates)"
        )
    if evaluation is None or not counts_for(term, evaluation, tz):
        raise CovenantRuleBroken(
            f"no evaluation of the ending term {term.label()} was sent in its last month "
            f"(from {term.last_month_start().isoformat()}): "
            "'elke verlenging wordt voorafgegaan door een evaluatiemoment'"
        )
    return replace(
        term,
        end=_add_years(term.end, 1),
        period_start=term.end + timedelta(days=1),
        revision=term.revision + 1,
        event=TermEvent.RENEWAL,
        evaluation_id=evaluation.evaluation_id,
    )


def end_early(term: Term, at: datetime | None, now: datetime, tz: ZoneInfo) -> Term:
    """``term`` ended at ``at`` (default: now); raises CovenantRuleBroken unless the term
    runs then and ``at`` is not in the past."""
    at = now if at is None else at
    if at.tzinfo is None:
        raise CovenantRuleBroken("the end moment must carry a time zone offset")
    if at < now:
        raise CovenantRuleBroken("an early end cannot lie in the past")
    if not term.in_term(at, tz) or not term.in_term(now, tz):
        raise CovenantRuleBroken("the covenant is not in force then: there is nothing to end")
    return replace(
        term, ended_at=at, revision=term.revision + 1, event=TermEvent.EARLY_END, evaluation_id=None
    )


def development_term(today: date) -> Term:
    """The local stack's term: a year from the first of the current month."""
    start = today.replace(day=1)
    return Term(start, _add_years(start, 1) - timedelta(days=1))
