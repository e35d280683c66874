"""The covenant's term without servers: in term, last month, renewal and early end, rule by rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dagmonitor import covenant
from dagmonitor.covenant import CovenantRuleBroken, Evaluation, Term, TermEvent

AMS = ZoneInfo("Europe/Amsterdam")
TERM = Term(date(2026, 1, 1), date(2026, 12, 31))


def _at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=AMS)


def test_the_term_runs_from_the_first_days_midnight_to_the_end_of_the_last_day() -> None:
    assert not TERM.in_term(datetime(2025, 12, 31, 23, 59, 59, tzinfo=AMS), AMS)
    assert TERM.in_term(datetime(2026, 1, 1, 0, 0, tzinfo=AMS), AMS)
    assert TERM.in_term(datetime(2026, 12, 31, 23, 59, 59, tzinfo=AMS), AMS)
    assert not TERM.in_term(datetime(2027, 1, 1, 0, 0, tzinfo=AMS), AMS)
    # local days: midnight in Amsterdam is 23:00 UTC the day before in winter
    assert TERM.in_term(datetime(2025, 12, 31, 23, 0, tzinfo=UTC), AMS)


@pytest.mark.parametrize(
    ("end", "first_of_last_month"),
    [
        (date(2026, 12, 31), date(2026, 12, 1)),
        (date(2027, 6, 30), date(2027, 5, 31)),
        (date(2027, 3, 31), date(2027, 3, 1)),  # one month before 31 March: 28 February
        (date(2027, 1, 15), date(2026, 12, 16)),
    ],
)
def test_the_last_month(end: date, first_of_last_month: date) -> None:
    assert Term(date(2026, 1, 1), end).last_month_start() == first_of_last_month


def test_an_end_before_the_start_is_refused() -> None:
    with pytest.raises(ValueError):
        Term(date(2026, 2, 1), date(2026, 1, 31))


def _evaluation(sent: datetime, start: date = TERM.start) -> Evaluation:
    return Evaluation("prov-1", start, sent)


def test_a_renewal_on_an_evaluation_of_the_last_month_adds_a_year() -> None:
    now = _at(date(2026, 12, 20))
    renewed = covenant.renew(TERM, _evaluation(_at(date(2026, 12, 1), 7)), now, AMS)
    assert (renewed.start, renewed.end) == (date(2026, 1, 1), date(2027, 12, 31))
    assert renewed.current_period_start == date(2027, 1, 1)
    assert (renewed.revision, renewed.event, renewed.evaluation_id) == (
        1,
        TermEvent.RENEWAL,
        "prov-1",
    )
    assert renewed.in_term(_at(date(2027, 6, 1)), AMS)
    assert renewed.last_month_start() == date(2027, 12, 1)


@pytest.mark.parametrize(
    "evaluation",
    [
        None,
        _evaluation(_at(date(2026, 11, 30))),  # before the last month
        _evaluation(_at(date(2026, 12, 5)), start=date(2025, 1, 1)),  # another covenant's
    ],
    ids=["none", "too-early", "other-covenant"],
)
def test_a_renewal_without_an_evaluation_of_the_ending_term_is_refused(
    evaluation: Evaluation | None,
) -> None:
    with pytest.raises(CovenantRuleBroken, match="evaluatiemoment"):
        covenant.renew(TERM, evaluation, _at(date(2026, 12, 20)), AMS)


def test_the_evaluation_of_the_first_year_does_not_renew_the_second() -> None:
    first = _evaluation(_at(date(2026, 12, 1), 7))
    renewed = covenant.renew(TERM, first, _at(date(2026, 12, 2)), AMS)
    with pytest.raises(CovenantRuleBroken):
        covenant.renew(renewed, first, _at(date(2027, 12, 10)), AMS)
    second = Evaluation("prov-2", TERM.start, _at(date(2027, 12, 1), 7))
    assert covenant.evaluation_of_ending_term(renewed, [first, second], AMS) == second


def test_an_ended_or_lapsed_covenant_is_not_renewed() -> None:
    evaluation = _evaluation(_at(date(2026, 12, 1), 7))
    ended = covenant.end_early(TERM, None, _at(date(2026, 12, 10)), AMS)
    with pytest.raises(CovenantRuleBroken, match="ended early"):
        covenant.renew(ended, evaluation, _at(date(2026, 12, 10), 13), AMS)
    with pytest.raises(CovenantRuleBroken, match="not in force"):
        covenant.renew(TERM, evaluation, _at(date(2027, 1, 2)), AMS)


def test_an_early_end_stops_provision_from_that_moment() -> None:
    now = _at(date(2026, 6, 1))
    at = now + timedelta(hours=2)
    ended = covenant.end_early(TERM, at, now, AMS)
    assert ended.in_term(at - timedelta(seconds=1), AMS)
    assert not ended.in_term(at, AMS)
    assert ended.ends_at(AMS) == at and ended.event is TermEvent.EARLY_END
    assert ended.days_remaining(date(2026, 6, 1)) == -1


@pytest.mark.parametrize(
    "at",
    [_at(date(2026, 5, 1)), _at(date(2027, 2, 1))],
    ids=["in-the-past", "after-the-end"],
)
def test_an_early_end_in_the_past_or_outside_the_term_is_refused(at: datetime) -> None:
    with pytest.raises(CovenantRuleBroken):
        covenant.end_early(TERM, at, _at(date(2026, 6, 1)), AMS)


def test_the_recorded_term_applies_only_to_the_same_covenant() -> None:
    renewed = covenant.renew(
        TERM, _evaluation(_at(date(2026, 12, 1), 7)), _at(date(2026, 12, 2)), AMS
    )
    assert covenant.current_term(TERM, renewed) == renewed
    assert covenant.current_term(TERM, None) == TERM
    newly_signed = Term(date(2027, 3, 1), date(2028, 2, 29))
    assert covenant.current_term(newly_signed, renewed) == newly_signed


def test_the_topic_record_round_trips() -> None:
    renewed = covenant.renew(
        TERM, _evaluation(_at(date(2026, 12, 1), 7)), _at(date(2026, 12, 2)), AMS
    )
    assert Term.from_record(renewed.record(_at(date(2026, 12, 2)))) == renewed


def test_the_development_term_is_a_year_from_the_first_of_the_month() -> None:
    term = covenant.development_term(date(2026, 12, 17))
    assert (term.start, term.end) == (date(2026, 12, 1), date(2027, 11, 30))
