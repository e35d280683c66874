"""The replicated view of the stream processor (a "global table"), without a broker: what a
record does to it, how the processor declares, reports and guards it. On the broker:
tests/integration/test_streaming.py::test_a_replicated_view_is_read_whole_before_any_route."""

from __future__ import annotations

import asyncio

import pytest

from dagmonitor.processor import ReplicatedView, StreamProcessor
from dagmonitor.settings import DagmonitorSettings


def _view() -> ReplicatedView:
    return ReplicatedView(
        "escalations.approved", "p.escalations.approved", "escalations.approved", 3, bytes.decode
    )


def test_a_value_sets_the_key_and_a_tombstone_deletes_it() -> None:
    view = _view()
    view.apply(b"3511AB", b"one")
    view.apply(b"3511AB", b"two")
    view.apply(b"1234CD", b"three")
    assert (view.get(b"3511AB"), view.get(b"1234CD"), len(view)) == ("two", "three", 2)
    view.apply(b"3511AB", None)
    assert (view.get(b"3511AB"), len(view)) == (None, 1)
    view.apply(b"9999ZZ", None)  # a tombstone of a key never seen: nothing
    assert len(view) == 1


def test_a_value_that_does_not_decode_removes_the_key_it_would_replace() -> None:
    """What a rebuild from the compacted topic would hold: not the older value."""
    view = _view()
    view.apply(b"3511AB", b"one")
    with pytest.raises(UnicodeDecodeError):
        view.apply(b"3511AB", b"\xff\xfe")
    assert view.get(b"3511AB") is None


def test_clear_forgets_everything_and_the_catch_up() -> None:
    view = _view()
    view.apply(b"3511AB", b"one")
    view.caught_up = True
    view.clear()
    assert (len(view), view.caught_up) == (0, False)


def test_it_covers_every_partition_of_its_topic() -> None:
    assert [tp.partition for tp in _view().topic_partitions()] == [0, 1, 2]
    assert {tp.topic for tp in _view().topic_partitions()} == {"p.escalations.approved"}


def _processor() -> tuple[StreamProcessor, ReplicatedView]:
    processor = StreamProcessor(DagmonitorSettings(), service="test")
    view = processor.view("escalations.approved", "escalations.approved", 3, bytes.decode)
    return processor, view


async def test_a_view_is_read_by_the_processor_and_gates_its_readiness() -> None:
    processor, view = _processor()
    assert not view.caught_up
    assert processor.consumed() == {"escalations.approved"}
    processor.started = True
    assert not await processor.ready()  # not caught up, not followed, no partitions


async def test_a_view_that_stopped_following_stops_the_processor() -> None:
    processor, _ = _processor()
    processor._check_views()  # not started: nothing to check

    async def fails() -> None:
        raise ValueError("broken")

    task = asyncio.get_running_loop().create_task(fails())
    await asyncio.gather(task, return_exceptions=True)
    processor._view_task = task
    with pytest.raises(RuntimeError, match="stopped following") as raised:
        processor._check_views()
    assert isinstance(raised.value.__cause__, ValueError)
