"""Mails as their recipients see them: a mail's HTML rendered in headless Chromium (Debian's
``chromium`` package, installed by ``scripts/bootstrap.sh``), measured and photographed.

Driven over the DevTools protocol with aiohttp's WebSocket client (already a dependency):
``Emulation.setDeviceMetricsOverride`` gives an exact viewport (a phone's 390 px; headless
windows cannot be narrower than 500 px), ``Runtime.evaluate`` measures, and
``Page.captureScreenshot`` takes the whole page. The mail's ``cid:`` images are swapped for
``data:`` URIs of its own MIME parts, so the page needs nothing from outside: a reference to
anything else (http, file) stays unresolved and shows up in the measurement.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from itertools import count
from pathlib import Path
from typing import Any

import aiohttp

from dagmonitor.errors import DagmonitorError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
PHONE_WIDTH = 390
DESKTOP_WIDTH = 1024

_DEVTOOLS = re.compile(rb"DevTools listening on (ws://\S+)")
_CID = re.compile(r"""(["'])cid:([^"']+)\1""")

_PROBE = """(() => {
  const root = document.documentElement;
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
    .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''));
  const images = [...document.images].map(i => ({
    inline: i.currentSrc.startsWith('data:'), loaded: i.complete && i.naturalWidth > 0,
    right: i.getBoundingClientRect().right}));
  return JSON.stringify({scrollWidth: root.scrollWidth, viewport: window.innerWidth,
    height: root.scrollHeight, wide, images});
})()"""


class BrowserError(DagmonitorError):
    """Chromium is missing, did not start, or a DevTools call failed."""


@dataclass(frozen=True, slots=True)
class Image:
    inline: bool
    """Its source is the mail's own part (a ``data:`` URI made from a ``cid:`` reference)."""
    loaded: bool
    """It decoded and has a size."""
    right: float


@dataclass(frozen=True, slots=True)
class Layout:
    """What a page measured at one viewport width."""

    viewport: int
    """The width asked for (the device's)."""
    inner_width: int
    """The page's layout width: wider than the device when a phone zooms out to fit it."""
    scroll_width: int
    height: int
    wide: tuple[str, ...]
    """Elements reaching past the viewport's right edge (the first few)."""
    images: tuple[Image, ...]

    @property
    def overflows(self) -> bool:
        return max(self.scroll_width, self.inner_width) > self.viewport or bool(self.wide)


def find_chromium() -> str | None:
    """The Chromium executable (``DAGMONITOR_CHROMIUM`` or on the PATH), or None."""
    configured = os.environ.get("DAGMONITOR_CHROMIUM")
    if configured:
        return configured
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def mail_html(message: EmailMessage) -> str:
    """The mail's HTML with every ``cid:`` image replaced by its MIME part as a ``data:``
    URI; a reference to a part the mail lacks stays as it is (and will not load)."""
    body = message.get_body(("html",))
    if body is None:
        raise BrowserError("the mail has no HTML part")
    parts: dict[str, tuple[str, bytes]] = {}
    for part in message.walk():
        cid = part.get("Content-ID")
        if cid:
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                parts[cid.strip("<>")] = (part.get_content_type(), payload)
    html = str(body.get_content())

    def inline(match: re.Match[str]) -> str:
        found = parts.get(match.group(2))
        if found is None:
            return match.group(0)
        kind, data = found
        return (
            f"{match.group(1)}data:{kind};base64,{base64.b64encode(data).decode()}{match.group(1)}"
        )

    return _CID.sub(inline, html)


class Page:
    """One tab of a running Chromium, over its DevTools WebSocket."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        await self._socket.send_json({"id": number, "method": method, "params": params})
        while True:
            message = await self._socket.receive_json(timeout=30)
            if message.get("id") == number:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message')}")
                result: dict[str, Any] = message.get("result", {})
                return result

    async def load(self, html: str, width: int) -> Layout:
        """Show ``html`` at a viewport ``width`` px wide (a phone below 600) and measure it."""
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=800,
            deviceScaleFactor=1,
            mobile=width < 600,
        )
        frame = (await self.call("Page.getFrameTree"))["frameTree"]["frame"]["id"]
        await self.call("Page.setDocumentContent", frameId=frame, html=html)
        await self.call(
            "Runtime.evaluate",
            expression="Promise.all([...document.images].map(i => i.decode().catch(() => 0)))",
            awaitPromise=True,
        )
        answer = await self.call("Runtime.evaluate", expression=_PROBE, returnByValue=True)
        found = json.loads(answer["result"]["value"])
        return Layout(
            width,
            found["viewport"],
            found["scrollWidth"],
            found["height"],
            tuple(found["wide"]),
            tuple(Image(i["inline"], i["loaded"], i["right"]) for i in found["images"]),
        )

    async def screenshot(self, html: str, width: int, path: Path) -> Layout:
        """Load, measure and write a PNG of the whole page to ``path``."""
        layout = await self.load(html, width)
        shot = await self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": width, "height": layout.height, "scale": 1},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return layout


@contextlib.asynccontextmanager
async def browser(executable: str | None = None) -> AsyncIterator[Page]:
    """A headless Chromium with one blank page; stopped on exit."""
    chromium = executable or find_chromium()
    if chromium is None:
        raise BrowserError("no Chromium: apt-get install chromium (scripts/bootstrap.sh does)")
    with tempfile.TemporaryDirectory(prefix="dagmonitor-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        drain: asyncio.Task[None] | None = None
        try:
            endpoint = await asyncio.wait_for(_devtools_url(process), timeout=30)
            drain = asyncio.create_task(_drain(process))  # a full pipe would stall it
            async with aiohttp.ClientSession() as session:
                port = endpoint.split("/")[2]
                async with session.get(f"http://{port}/json/list") as response:
                    targets = await response.json()
                page = next(t for t in targets if t.get("type") == "page")
                async with session.ws_connect(
                    page["webSocketDebuggerUrl"], max_msg_size=0
                ) as socket:
                    yield Page(socket)
        finally:
            if drain is not None:
                drain.cancel()
            if process.returncode is None:
                process.terminate()
                with contextlib.suppress(ProcessLookupError):
                    await asyncio.wait_for(process.wait(), timeout=10)


async def _devtools_url(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    while line := await process.stderr.readline():
        found = _DEVTOOLS.search(line)
        if found:
            return found.group(1).decode()
    raise BrowserError(f"chromium exited ({process.returncode}) before DevTools listened")


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    while await process.stderr.readline():
        pass
