"""The five services as local background processes (``dagmonitor up`` starts them too).

Each runs as ``python -m services.<name>`` with the stack's endpoints and a local development
configuration (written to ``.local/stack.env`` as well, so the CLI sees the same):

- a development signing key for officers' tokens (``.local/approval/dev-signing-key.pem``);
- a bearer token for a local police publisher (``.local/ingest/token``);
- a demonstration covenant: the enforcement team's districts, and notices batched every 15 s.

A variable already set in the environment always wins. Logs go to ``.local/logs/<name>.log``.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dagmonitor.errors import PlatformError
from dagmonitor_cli.platform import process

SERVICES = ("ingest", "classifier", "approval", "distributor", "retention")
DEFAULT_PORTS = {name: 8081 + index for index, name in enumerate(SERVICES)}
# Utrecht's Binnenstad, Oost and Overvecht, the districts of the generated demo data.
DEMO_TEAM_DISTRICTS = "WK034405,WK034404,WK034402"


@dataclass(frozen=True)
class ServiceState:
    name: str
    port: int
    pid: int | None
    ready: bool

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def available() -> tuple[str, ...]:
    """The services this checkout has (a service lands with its package's ``__main__``)."""
    return tuple(s for s in SERVICES if importlib.util.find_spec(f"services.{s}.__main__"))


def development_env(root: Path) -> dict[str, str]:
    """Local development settings for the services (created on first use)."""
    from services.approval.tokens import init_dev_key

    key_file = root / "approval" / "dev-signing-key.pem"
    if not key_file.is_file():
        init_dev_key(key_file)
    token_file = root / "ingest" / "token"
    if not token_file.is_file():
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(secrets.token_urlsafe(32) + "\n")
        token_file.chmod(0o600)
    return {
        "DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE": str(key_file),
        "DAGMONITOR_INGEST_TOKENS": f"bvh-local={token_file.read_text().strip()}",
        "DAGMONITOR_TEAM_DISTRICTS": DEMO_TEAM_DISTRICTS,
        "DAGMONITOR_NOTICE_INTERVAL_SECONDS": "15",
    }


def ready(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/readyz"  # a fixed http:// URL, never a file: one
        with urllib.request.urlopen(url, timeout=1) as response:  # nosec B310
            return bool(response.status == 200)
    except OSError:
        return False


class LocalServices:
    """Start, watch and stop the service processes of the local stack under ``root``."""

    def __init__(self, root: Path, ports: Mapping[str, int] | None = None) -> None:
        self.root = root
        self.ports = dict(ports or DEFAULT_PORTS)

    def _pid_file(self, name: str) -> Path:
        return self.root / "services" / f"{name}.pid"

    def start(
        self,
        env: Mapping[str, str],
        echo: Callable[[str], None],
        timeout: float = 180.0,
        own: Mapping[str, Mapping[str, str]] | None = None,
    ) -> list[ServiceState]:
        """Start every available service that is not running; wait until all are ready.

        ``own`` holds each service's own variables (its Kafka principal, its database login).
        """
        started = time.monotonic()
        (self.root / "services").mkdir(parents=True, exist_ok=True)
        names = available()
        for name in names:
            port = self.ports[name]
            if process.read_pid(self._pid_file(name)) is not None:
                continue
            if process.port_open("127.0.0.1", port):
                raise PlatformError(f"port {port} for {name} is taken by another program")
            process.spawn(
                [sys.executable, "-m", f"services.{name}"],
                log_file=self.root / "logs" / f"{name}.log",
                pid_file=self._pid_file(name),
                env={**env, **(own or {}).get(name, {}), "DAGMONITOR_HTTP_PORT": str(port)},
            )
        states = []
        for name in names:
            pid_file = self._pid_file(name)
            process.wait_until(
                lambda port=self.ports[name]: ready(port),  # type: ignore[misc]
                what=f"service {name}",
                timeout=max(1.0, timeout - (time.monotonic() - started)),
                alive=lambda pid_file=pid_file: process.read_pid(pid_file) is not None,  # type: ignore[misc]
                log_file=self.root / "logs" / f"{name}.log",
            )
            state = ServiceState(name, self.ports[name], process.read_pid(pid_file), True)
            echo(f"{name:<11} {state.url} ready")
            states.append(state)
        return states

    def status(self) -> list[ServiceState]:
        return [
            ServiceState(
                name,
                self.ports[name],
                process.read_pid(self._pid_file(name)),
                ready(self.ports[name]),
            )
            for name in available()
            if self._pid_file(name).exists()
        ]

    def stop(self, echo: Callable[[str], None]) -> None:
        for name in reversed(SERVICES):
            pid = process.read_pid(self._pid_file(name))
            if pid is not None:
                process.stop_pid(pid, timeout=30)
                echo(f"{name} stopped")
            self._pid_file(name).unlink(missing_ok=True)


def merged_env(stack_env: Mapping[str, str]) -> dict[str, str]:
    """The services' environment: the stack's values, overridden by the real environment."""
    return {**stack_env, **os.environ}
