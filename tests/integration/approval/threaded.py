"""The approval service on its own event loop in a thread, for blocking clients (schemathesis,
the click CLI) that cannot share the test session's loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

from dagmonitor.telemetry import health_app, serve_http
from services.approval.app import ApprovalApp
from services.approval.config import ApprovalSettings
from tests.integration.approval.conftest import drop_schema

T = TypeVar("T")


class ThreadedService:
    """Starts the real app (migrations, pool, Kafka) and serves its routes on 127.0.0.1."""

    def __init__(self, settings: ApprovalSettings) -> None:
        self.settings = settings
        self.app = ApprovalApp(settings)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="approval-test-service")

    def __enter__(self) -> ThreadedService:
        self._thread.start()
        if not self._ready.wait(60) or self._failure is not None:
            raise RuntimeError("the approval service did not start") from self._failure
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the service's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runner: web.AppRunner | None = None
        try:
            await self.app.start()
            runner = await serve_http(
                health_app(self.app.checks(), self.app.api.routes()), "127.0.0.1", 0
            )
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            raise
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()
            await self.app.stop()
            await drop_schema(self.settings)
