"""faust apps the way this project runs them: inside ``run_service``, on the raw bytes.

- Values and keys stay raw bytes in faust; the agent decodes with ``dagmonitor.codec`` itself,
  so an undecodable record is a dead letter, not a crashed stream (see STYLE.md pitfalls).
- faust's own web server is off; ``run_service`` serves /metrics, /healthz and /readyz.
- Tables use the memory store: faust restores them from their changelog topics at start.
- The app id is the service's consumer group under the deployment's topic prefix, so internal
  topics (``<app id>-<table>-changelog``) are prefixed too.
- Handlers produce with ``send_and_wait`` (acks from every in-sync replica) before they update a
  table or let faust acknowledge the event, so a crash can repeat an output, never lose one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import faust

from dagmonitor.settings import DagmonitorSettings


def create_app(settings: DagmonitorSettings, service: str, **conf: Any) -> faust.App:
    """A faust app for ``service`` on the configured brokers (raw keys and values)."""
    options: dict[str, Any] = {
        "broker": [f"kafka://{server}" for server in settings.bootstrap_servers],
        "store": "memory://",
        "web_enabled": False,
        "autodiscover": False,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "producer_acks": -1,
        "producer_linger_ms": 1,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_every": 100,
        "broker_commit_interval": 1.0,
        "topic_replication_factor": 1,
        "table_standby_replicas": 0,
        # A killed worker's partitions move to a live one within ~10 s, not faust's 60 s.
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 1.0,
    }
    options.update(conf)
    return faust.App(settings.group(service), **options)


class FaustProducer:
    """Gives faust's producer the ``send_and_wait`` shape ``DeadLetters`` expects."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> object:
        timestamp = timestamp_ms / 1000 if timestamp_ms is not None else None
        return await self._app.producer.send_and_wait(
            topic, key, value, partition, timestamp, list(headers or ())
        )


async def run_app(app: faust.App, stop: asyncio.Event) -> None:
    """Run ``app`` until ``stop`` is set."""
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()


def app_ready(app: faust.App) -> bool:
    """Started, and holding a partition assignment (so records are being consumed)."""
    try:
        return bool(app.started and app.consumer.assignment())
    except Exception:
        # The consumer does not exist before the app starts: not ready.
        return False
