"""Segment-roll markers land on every partition under Kafka's default partitioner."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from services.retention.policy import is_roll_marker
from services.retention.publisher import roll_keys


@pytest.mark.parametrize("partitions", [1, 3, 6, 12])
def test_one_marker_key_per_partition(partitions: int) -> None:
    keys = roll_keys(partitions)
    assert len(keys) == len(set(keys)) == partitions
    every = list(range(partitions))
    for partition, key in enumerate(keys):
        assert DefaultPartitioner()(key.encode(), every, every) == partition
        assert is_roll_marker(key)


def test_marker_keys_are_stable() -> None:
    assert roll_keys(3) == roll_keys(3)
    assert roll_keys(6)[:1] == (roll_keys(6)[0],)
