"""When a tombstone's topic needs a segment-roll marker. Pure: no I/O.

Kafka's log cleaner never touches a partition's active segment, and a segment is closed
(rolled) only when a record is appended after the segment's lifetime (``segment.ms``, or
``max.compaction.lag.ms`` when shorter) has passed. A tombstone on a quiet partition would
therefore leave the value it replaces on disk for as long as nothing else is written there.
The service appends a marker (a tombstone of a reserved key, see ``policy.ROLL_KEY_PREFIX``)
to every partition of the topic once the lifetime has passed since the tombstone: that append
closes the segment holding the tombstone, and the cleaner then removes the older values
(docs/adr/0007-retention.md gives the resulting bound).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta


def roll_due(tombstone_at: datetime, delay: timedelta, bucket: timedelta) -> datetime:
    """The instant from which a marker closes the segment holding a tombstone of
    ``tombstone_at``, rounded up to a multiple of ``bucket`` (so that the tombstones of one
    bucket share one roll). Never earlier than ``tombstone_at + delay``."""
    earliest = (tombstone_at + delay).timestamp()
    step = bucket.total_seconds()
    return datetime.fromtimestamp(math.ceil(earliest / step) * step, tz=UTC)
