"""Running one service as a process: logs, tracing, the HTTP endpoints, a clean stop.

Every service has the same lifecycle: its ``app.py`` builds a ``ServiceParts`` (start,
run until the ``stop`` event, stop; readiness checks; HTTP routes), and its ``__main__.py``
calls ``main(name, serve)``, where ``serve`` builds the settings and the parts and awaits
``serve_parts``. SIGTERM or SIGINT sets ``stop``; the parts are always stopped.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from dagmonitor.errors import DagmonitorError
from dagmonitor.retry import Backoff, pause
from dagmonitor.settings import DagmonitorSettings, ServiceSettings, describe_invalid
from dagmonitor.streaming import TRANSIENT_ERRORS
from dagmonitor.telemetry import (
    ReadinessCheck,
    configure_logging,
    configure_tracing,
    get_logger,
    health_app,
    serve_http,
)

_log = get_logger(__name__)

Body = Callable[[asyncio.Event], Awaitable[None]]


def lifecycle_body(parts: ServiceParts) -> Body:
    """A ``run_service`` body: start the parts, run them until ``stop``, always stop them."""

    async def body(stop: asyncio.Event) -> None:
        try:
            await parts.start()
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


class Stoppable(Protocol):
    """A part with an asynchronous ``stop``: a Kafka client, a consumer, a relay."""

    async def stop(self) -> None: ...


async def stop_in_order(*parts: Stoppable | None) -> None:
    """Stop every one of ``parts`` that was started (is not None), in the order given: what
    consumes before what it produces with."""
    for part in parts:
        if part is not None:
            await part.stop()


class ServiceParts:
    """The parts of one service. Subclasses implement ``run`` and what else they need."""

    max_request_bytes: int = 1024**2
    """The largest HTTP request body the service's routes accept."""

    async def start(self) -> None:
        """Connect to what the service needs (before ``run``); nothing by default."""

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Release what ``start`` took; called even when ``start`` or ``run`` failed."""

    def checks(self) -> Mapping[str, ReadinessCheck]:
        """The readiness checks of ``/readyz``."""
        return {}

    def routes(self) -> Iterable[web.RouteDef]:
        """The service's own HTTP routes, beside /metrics, /healthz and /readyz."""
        return ()


async def serve_parts(service: str, parts: ServiceParts, settings: ServiceSettings) -> None:
    """Run ``parts`` as the process of ``service`` until SIGTERM/SIGINT."""
    await run_service(
        service=service,
        settings=settings,
        host=settings.http_host,
        port=settings.http_port,
        body=lifecycle_body(parts),
        checks=parts.checks(),
        routes=parts.routes(),
        client_max_size=parts.max_request_bytes,
    )


def main(service: str, serve: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """``python -m services.<service>``: run ``serve``; a configuration or migration problem
    (``DagmonitorError``) ends the process with one line and exit code 1, no traceback."""
    tune_garbage_collector()
    try:
        asyncio.run(serve())
    except DagmonitorError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        sys.exit(1)
    except ValidationError as exc:  # a required setting missing, e.g. the covenant's term
        print(f"{service}: {describe_invalid(exc)}", file=sys.stderr)
        sys.exit(1)


GC_THRESHOLDS = (20_000, 20, 20)
"""The cyclic collector's generation thresholds in a service (Python's default: 700, 10, 10).
A consumed record allocates dozens of containers that die with it; at 700 the youngest
generation was collected every few records, a few per cent of a hop's CPU (ADR 0020)."""


def tune_garbage_collector() -> None:
    """Freeze what start-up made (modules, schemas, tables' code: never garbage, so never
    scanned again) and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


Part = Callable[[], Awaitable[None]]
"""One of a service's loops (consume, relay, sweep, ...), run until the stop event is set."""


async def run_parts(parts: Mapping[str, Part], stop: asyncio.Event) -> None:
    """Run a service's loops until ``stop``, each supervised.

    A part that fails on something transient (Kafka or PostgreSQL away) or ends early is
    started again after a pause, with a log line. A part that crashes on anything else stops
    the others and its exception is raised (the process exits non-zero and its orchestrator
    restarts it); when several crashed, the part that ended first is the cause.
    """
    tasks = [
        asyncio.create_task(_supervised(name, part, stop), name=name)
        for name, part in parts.items()
    ]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    first = next((t for t in tasks if t in done), None)
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    stopper.cancel()
    crashed = [
        (task, result)
        for task, result in zip(tasks, results, strict=True)
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError)
    ]
    for task, result in crashed:
        _log.error("part_crashed", part=task.get_name(), error=type(result).__name__)
    if crashed:
        raise next((r for t, r in crashed if t is first), crashed[0][1])


async def _supervised(name: str, part: Part, stop: asyncio.Event) -> None:
    """Run ``part`` until ``stop``; start it again after a transient failure or an early end."""
    backoff = Backoff(1.0, 30.0)
    while not stop.is_set():
        try:
            await part()
            if stop.is_set():
                return
            _log.error("part_ended_early", part=name)
        except TRANSIENT_ERRORS as exc:
            if stop.is_set():
                return  # it was stopping anyway
            _log.warning("part_failed_restarting", part=name, error=type(exc).__name__)
        await pause(stop, backoff.next())
