"""Running one service as a process: logs, tracing, the HTTP endpoints, a clean stop.

Each service's ``app.py`` builds its parts and calls ``run_service`` with a ``body``
coroutine that works until the ``stop`` event is set (SIGTERM or SIGINT).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from aiohttp import web

from dagmonitor.settings import DagmonitorSettings
from dagmonitor.telemetry import (
    ReadinessCheck,
    configure_logging,
    configure_tracing,
    get_logger,
    health_app,
    serve_http,
)

Body = Callable[[asyncio.Event], Awaitable[None]]


class Lifecycle(Protocol):
    """A service's parts that start, run until told to stop, and stop."""

    async def start(self) -> None: ...

    async def run(self, stop: asyncio.Event) -> None: ...

    async def stop(self) -> None: ...


def lifecycle_body(parts: Lifecycle) -> Body:
    """A ``run_service`` body: start the parts, run them until ``stop``, always stop them."""

    async def body(stop: asyncio.Event) -> None:
        await parts.start()
        try:
            await parts.run(stop)
        finally:
            await parts.stop()

    return body


def _dump_tasks() -> None:
    """SIGUSR1: write where every asyncio task waits to stderr (for a process that seems stuck)."""
    import sys

    for task in asyncio.all_tasks():
        print(f"--- task {task.get_name()}", file=sys.stderr)
        awaited: object = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is None:
                print(f"    awaits {type(awaited).__name__}", file=sys.stderr)
                break
            print(f"    {frame.f_code.co_filename}:{frame.f_lineno}", file=sys.stderr)
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    sys.stderr.flush()


async def run_service(
    *,
    service: str,
    settings: DagmonitorSettings,
    port: int,
    body: Body,
    checks: Mapping[str, ReadinessCheck] | None = None,
    routes: Iterable[web.RouteDef] = (),
    host: str = "127.0.0.1",
    client_max_size: int = 1024**2,
) -> None:
    """Serve ``/metrics``, ``/healthz``, ``/readyz`` (and ``routes``) while ``body`` runs."""
    configure_logging(service, settings.log_level)
    configure_tracing(service, settings.otlp_endpoint)
    log = get_logger(service)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
    runner = await serve_http(health_app(checks, routes, client_max_size), host, port)
    log.info("service_started", http=f"{host}:{port}")
    try:
        await body(stop)
    finally:
        await runner.cleanup()
        log.info("service_stopped")
