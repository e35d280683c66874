"""Why a tombstone was written: a withdrawal, or the end of the retention period.

A tombstone on an output topic means the record is gone, but what a consumer owes the people
who already received the record depends on why. Withdrawn (the police withdrew the
registration or notice, or a newer version no longer yields the record): whoever was provided
with it must be told to delete it (``Intrekking verstrekking``). Expired after its retention
period: the recipients' own retention duty covers it, nothing is sent.

The reason travels in one record header, ``dagmonitor-deletion``. The classifier and the
approval service write ``withdrawn``; the retention sweep writes ``retention``. A tombstone
without the header counts as a withdrawal: when in doubt, recipients are told to delete.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from enum import StrEnum

HEADER = "dagmonitor-deletion"

MAX_RETENTION = timedelta(days=365)
"""The covenant's maximum: "met een maximum van 1 jaar na verstrekking". Per category the
retention service's table of periods may be shorter, never longer; every service's own
backstop deletes what is older than this by its own clock."""


class Deletion(StrEnum):
    """A tombstone's reason (the header's value)."""

    WITHDRAWN = "withdrawn"
    RETENTION = "retention"


def headers(reason: Deletion) -> tuple[tuple[str, bytes], ...]:
    """The header that says why a tombstone was written."""
    return ((HEADER, reason.value.encode("ascii")),)


def reason_of(record_headers: Iterable[tuple[str, bytes]] | None) -> Deletion:
    """Why a tombstone was written, from its headers (no or unknown header: withdrawn)."""
    for name, value in record_headers or ():
        if name == HEADER:
            try:
                return Deletion(bytes(value).decode("ascii", "replace"))
            except ValueError:
                return Deletion.WITHDRAWN
    return Deletion.WITHDRAWN
