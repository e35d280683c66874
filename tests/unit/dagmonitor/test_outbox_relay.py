"""The outbox relay's pure parts: how records are found again on a topic, where a recovery
scan reads, and the lock key."""

from __future__ import annotations

import zlib

import pytest
from aiokafka import ConsumerRecord

from dagmonitor.outbox_relay import (
    OUTBOX_ID_HEADER,
    OUTBOX_SOURCE_HEADER,
    id_from_headers,
    id_from_key,
    id_headers,
    lock_key,
    scan_ranges,
)


def record(
    key: bytes | None = None, headers: tuple[tuple[str, bytes], ...] = ()
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t",
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=b"v",
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=1,
        headers=headers,
    )


def test_a_record_is_found_again_by_the_headers_it_was_sent_with() -> None:
    headers = id_headers(42, "approval")
    assert headers == ((OUTBOX_ID_HEADER, b"42"), (OUTBOX_SOURCE_HEADER, b"approval"))
    assert id_from_headers(record(b"req-1", headers), "approval") == "42"


@pytest.mark.parametrize(
    "headers",
    [
        (),  # another writer on the topic (a retention tombstone)
        ((OUTBOX_SOURCE_HEADER, b"approval"),),  # no id
        id_headers(42, "approval_other"),  # another deployment sharing the topic
        ((OUTBOX_ID_HEADER, b"42"),),  # no source
    ],
)
def test_records_not_from_this_source_are_not_ours(headers: tuple[tuple[str, bytes], ...]) -> None:
    assert id_from_headers(record(b"req-1", headers), "approval") is None


def test_a_record_published_under_its_row_id_is_found_by_its_key() -> None:
    assert id_from_key(record(b"prov-\xc3\xa9")) == "prov-é"
    assert id_from_key(record(None)) is None


def test_a_scan_reads_from_the_start_time_up_to_the_end_it_began_with() -> None:
    starts = {"read": 3, "caught_up": 7, "nothing_since": None, "empty": 0}
    ends = {"read": 9, "caught_up": 7, "nothing_since": 5, "empty": 0}
    assert scan_ranges(starts, ends) == {"read": 3}


def test_the_lock_key_is_the_one_earlier_versions_took() -> None:
    # A replica of the previous release and one of this must still exclude each other.
    name = "dagmonitor-approval-relay:approval"
    assert lock_key(name) == zlib.crc32(name.encode())
    assert lock_key(name) != lock_key("dagmonitor-distributor-relay:approval")
