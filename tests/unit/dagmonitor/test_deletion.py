"""Why a tombstone was written travels in one header; without it, it counts as withdrawn."""

from __future__ import annotations

from dagmonitor import deletion
from dagmonitor.deletion import Deletion


def test_each_reason_round_trips_through_its_header() -> None:
    for reason in Deletion:
        assert deletion.reason_of([("traceparent", b"00-x"), *deletion.headers(reason)]) is reason


def test_no_header_or_an_unknown_value_is_a_withdrawal() -> None:
    assert deletion.reason_of(None) is Deletion.WITHDRAWN
    assert deletion.reason_of([]) is Deletion.WITHDRAWN
    assert deletion.reason_of([(deletion.HEADER, b"\xff??")]) is Deletion.WITHDRAWN
