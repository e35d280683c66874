"""``dagmonitor up | down | status``: the local stack as one unit.

``up`` starts each server that is not yet running, or reuses one named by
``DAGMONITOR_KAFKA_BOOTSTRAP`` / ``DAGMONITOR_DATABASE_URL`` / ``DAGMONITOR_SMTP_URL`` (real
environment variables only), waits until each is really ready, and writes the endpoints to
``.local/stack.env`` so every later ``dagmonitor`` command and service finds them.
``down`` stops only what ``up`` started. The record of what runs is ``.local/stack.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from dagmonitor.errors import PlatformError
from dagmonitor.settings import DagmonitorSettings, local_dir
from dagmonitor.topics import TOPICS
from dagmonitor_cli.platform import kafka, postgres, principals, process
from dagmonitor_cli.platform.files import write_atomic
from dagmonitor_cli.platform.services import SERVICES, LocalServices
from dagmonitor_cli.platform.smtp_sink import sink_ready

Echo = Callable[[str], None]


class LocalStackSettings(BaseSettings):
    """Ports of the servers ``up`` starts, and the servers it should reuse instead.

    Read from real environment variables only (never from ``stack.env``, which ``up`` writes).
    """

    model_config = SettingsConfigDict(env_prefix="DAGMONITOR_", extra="ignore", frozen=True)

    kafka_bootstrap: str | None = None
    database_url: SecretStr | None = None
    smtp_url: SecretStr | None = None
    local_kafka_port: int = 9092
    local_kafka_controller_port: int = 9093
    local_postgres_port: int = 5432
    local_smtp_port: int = 2525
    local_http_port_base: int = 8081
    """The services' HTTP ports: ingest on this one, then classifier, approval, distributor,
    retention on the next four (a second stack beside the first moves them)."""
    ready_timeout_seconds: float = 180.0


@dataclass
class Component:
    """One server of the stack as ``up`` left it."""

    name: str
    address: str
    managed: bool
    pid: int | None = None
    seconds_to_ready: float | None = None
    note: str = ""


class LocalStack:
    """The local servers under ``root`` (default ``.local/``)."""

    def __init__(self, root: Path | None = None, settings: LocalStackSettings | None = None):
        self.root = (root or local_dir()).resolve()
        self.settings = settings or LocalStackSettings()
        self.kafka = kafka.KafkaLayout(self.root / "kafka")
        self.postgres = postgres.PostgresLayout(postgres.cluster_root(self.root))
        self.mail_dir = self.root / "mail"
        self.smtp_pid_file = self.root / "smtp" / "sink.pid"
        self.state_file = self.root / "stack.json"
        self.env_file = self.root / "stack.env"
        base = self.settings.local_http_port_base
        self.services = LocalServices(
            self.root, {name: base + index for index, name in enumerate(SERVICES)}
        )
        self.postgres_roles_file = self.root / "postgres-roles.json"

    # -- state -------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Component]:
        try:
            raw = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return {name: Component(**entry) for name, entry in raw.items()}

    def _save_state(
        self, state: dict[str, Component], extra_env: Mapping[str, str] | None = None
    ) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(
            self.state_file,
            json.dumps({name: asdict(c) for name, c in state.items()}, indent=2) + "\n",
        )
        env = {
            "kafka": "DAGMONITOR_KAFKA_BOOTSTRAP",
            "postgres": "DAGMONITOR_DATABASE_URL",
            "smtp": "DAGMONITOR_SMTP_URL",
        }
        lines = [f"{env[name]}={c.address}" for name, c in state.items() if name in env]
        broker = state.get("kafka")
        if broker is not None and broker.managed:
            lines += [f"{key}={value}" for key, value in self.kafka.stack_env().items()]
        smtp = state.get("smtp")
        if smtp is not None and smtp.managed:
            # The local sink speaks plain SMTP on loopback only; saying so is explicit here.
            lines.append("DAGMONITOR_SMTP_ALLOW_PLAINTEXT=true")
        lines += [f"{k}={v}" for k, v in development_term_env(self.env_file).items()]
        lines += [f"{key}={value}" for key, value in (extra_env or {}).items()]
        write_atomic(self.env_file, "\n".join(lines) + ("\n" if lines else ""))

    # -- up ----------------------------------------------------------------------------------

    def up(self, echo: Echo = print, *, with_services: bool = False) -> dict[str, Component]:
        """Start or reuse Kafka, PostgreSQL and the SMTP sink; returns where each listens.

        ``with_services`` also creates the topics and starts the five services (with the
        local development configuration of ``dagmonitor_cli.platform.services``).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.root / "up.lock"):
            return self._up(echo, with_services=with_services)

    def _up(self, echo: Echo, *, with_services: bool) -> dict[str, Component]:
        state = self._load_state()
        was_running = {name for name, part in self._running(state).items() if part}
        try:
            for name, bring_up in (
                ("kafka", self._kafka_up),
                ("postgres", self._postgres_up),
                ("smtp", self._smtp_up),
            ):
                component = bring_up(state.get(name))
                state[name] = component
                self._save_state(state)
                echo(_describe(component))
            if with_services:
                self._services_up(state, echo)
        except BaseException as exc:
            # All or nothing: stop what this call started, then say what failed.
            started_now = {name for name, part in self._running(state).items() if part}
            self._stop_started(started_now - was_running, with_services, echo)
            if isinstance(exc, PlatformError | OSError):
                raise PlatformError(
                    f"dagmonitor up failed and stopped what it had started: {exc}\n"
                    f"logs: {self.root}/*/ (kafka/logs, postgres/postgres.log, services/)"
                ) from exc
            raise
        return state

    def _running(self, state: dict[str, Component]) -> dict[str, bool]:
        """Which managed servers run now (the reused ones are not ours to stop)."""
        kafka_pid = process.read_pid(self.kafka.pid_file)
        smtp_pid = process.read_pid(self.smtp_pid_file)
        return {
            "kafka": kafka_pid is not None and process.pid_alive(kafka_pid),
            "postgres": postgres.running_port(self.postgres) is not None,
            "smtp": smtp_pid is not None and process.pid_alive(smtp_pid),
        }

    def _stop_started(self, names: set[str], with_services: bool, echo: Echo) -> None:
        if with_services:
            self.services.stop(echo)
        if "smtp" in names:
            pid = process.read_pid(self.smtp_pid_file)
            if pid is not None:
                process.stop_pid(pid)
                echo("smtp stopped")
        if "postgres" in names:
            postgres.stop(self.postgres)
            echo("postgres stopped")
        if "kafka" in names:
            pid = process.read_pid(self.kafka.pid_file)
            if pid is not None:
                process.stop_pid(pid)
                echo("kafka stopped")

    def _services_up(self, state: dict[str, Component], echo: Echo) -> None:
        import asyncio

        from dagmonitor.settings import DagmonitorSettings
        from dagmonitor.topic_admin import apply_topics
        from dagmonitor_cli.platform.services import development_env, merged_env

        settings = DagmonitorSettings.load().as_principal(principals.ADMIN)
        asyncio.run(apply_topics(settings))
        echo(f"topics    {len(TOPICS)} topics of the topic table applied")
        extra = {k: v for k, v in development_env(self.root).items() if k not in os.environ}
        self._save_state(state, extra)
        stack_env = dict(
            line.split("=", 1) for line in self.env_file.read_text().splitlines() if "=" in line
        )
        self.services.start(
            merged_env(stack_env), echo, self.settings.ready_timeout_seconds, self._own_env(state)
        )
        self._consents_up(echo)

    def _own_env(self, state: dict[str, Component]) -> dict[str, dict[str, str]]:
        """Each service's own credentials on the servers this stack manages."""
        from deploy.k8s.access import BY_SERVICE

        own: dict[str, dict[str, str]] = {name: {} for name in BY_SERVICE}
        broker = state.get("kafka")
        if broker is not None and broker.managed:
            for name, row in BY_SERVICE.items():
                # Topics come from `topics apply` (as the admin), as in production.
                own[name].update(
                    DAGMONITOR_KAFKA_SASL_USERNAME=row.principal,
                    DAGMONITOR_KAFKA_DECLARE_TOPICS="false",
                )
        database = state.get("postgres")
        if database is not None and database.managed:
            for name, url in self.service_databases(database.address).items():
                own[name]["DAGMONITOR_DATABASE_URL"] = url
        return own

    def _consents_up(self, echo: Echo) -> None:
        """The OM's development consents, so the Dagmonitor and vehicle notices go out."""
        import asyncio

        from dagmonitor_cli.platform.consents import grant_development_consents
        from dagmonitor_cli.platform.services import available

        if "approval" not in available():  # start() waited until every service was ready
            return
        url = f"http://127.0.0.1:{self.services.ports['approval']}"
        granted = asyncio.run(grant_development_consents(url))
        echo(f"consents  {', '.join(granted) or 'in force already'} (development OM consent)")

    def _admin_settings(self, component: Component) -> DagmonitorSettings:
        """Settings reaching the stack's broker as its admin (a reused broker: as the
        environment's DAGMONITOR_KAFKA_* credentials say)."""
        if component.managed:
            return self.kafka.client_settings(component.address, principals.ADMIN)
        return DagmonitorSettings(kafka_bootstrap=component.address)

    def _kafka_up(self, previous: Component | None) -> Component:
        wait = self.settings.ready_timeout_seconds
        if self.settings.kafka_bootstrap:
            reused = Component("kafka", self.settings.kafka_bootstrap, False, None, None, "reused")
            settings = self._admin_settings(reused)
            reused.seconds_to_ready = _wait(lambda: kafka.broker_ready(settings), "Kafka", wait)
            return reused
        pid = process.read_pid(self.kafka.pid_file)
        if (
            pid is not None
            and process.pid_alive(pid)
            and previous is not None
            and previous.managed
            and self.kafka.credentials.is_file()
            and self._running_broker_ready(previous, pid)
        ):
            self._apply_acls(previous)
            return Component("kafka", previous.address, True, pid, 0.0, "already running")
        if pid is not None:
            process.stop_pid(pid)
        started = kafka.start(
            self.kafka,
            port=self.settings.local_kafka_port,
            controller_port=self.settings.local_kafka_controller_port,
            timeout=wait,
        )
        jars = "jars downloaded from Maven Central" if started.downloaded_jars else "jars cached"
        formatted = ", storage formatted with the SCRAM users" if started.formatted else ""
        component = Component("kafka", started.bootstrap, True, started.pid, None, "")
        acls = self._apply_acls(component)
        component.seconds_to_ready = started.seconds_to_ready
        component.note = (
            f"SASL_SSL SCRAM-SHA-512, {acls} ACLs; {started.seconds_total:.1f} s with jars and "
            f"storage format; {jars}{formatted}"
        )
        return component

    def _running_broker_ready(self, previous: Component, pid: int) -> bool:
        """Whether the broker this stack started answers, given the time it may need: on a busy
        machine one metadata request can time out, and a broker restarted for that would cut
        off every client it serves (another ``up``, a test session on the same stack)."""
        settings = self._admin_settings(previous)
        try:
            _wait(
                lambda: kafka.broker_ready(settings),
                "Kafka",
                self.settings.ready_timeout_seconds,
                lambda: process.pid_alive(pid),
            )
        except PlatformError:
            return False
        return True

    def _apply_acls(self, component: Component) -> int:
        """The principal table's ACLs for the stack's own (unprefixed) deployment."""
        import asyncio

        return len(asyncio.run(principals.apply_acls(self._admin_settings(component))))

    def _postgres_up(self, previous: Component | None) -> Component:
        wait = self.settings.ready_timeout_seconds
        if self.settings.database_url:
            url = self.settings.database_url.get_secret_value()
            took = _wait(lambda: postgres.server_ready(url), "PostgreSQL", wait)
            return Component("postgres", url, False, None, took, "reused")
        port = postgres.running_port(self.postgres)
        if port is not None and postgres.server_ready(postgres.dsn(port)):
            self.service_databases(postgres.dsn(port))
            return Component("postgres", postgres.dsn(port), True, None, 0.0, "already running")
        port = self.settings.local_postgres_port
        note = ""
        if process.port_open("127.0.0.1", port):
            # Another PostgreSQL (e.g. Debian's own cluster) holds the default port.
            port, note = process.free_port(), f"port {port} was taken"
        started = postgres.start(self.postgres, port=port, timeout=wait)
        relocated = (
            ""
            if self.postgres.root.is_relative_to(self.root)
            else (f"data in {self.postgres.root}: the postgres user cannot enter {self.root}")
        )
        created = "cluster created" if started.created else ""
        self.service_databases(started.url)
        roles = "a login role per service"
        note = ", ".join(filter(None, [roles, note, created, relocated]))
        return Component("postgres", started.url, True, None, started.seconds_to_ready, note)

    def service_databases(self, admin_url: str) -> dict[str, str]:
        """Each schema-owning service's own DSN on the managed cluster (roles made if missing)."""
        import asyncio

        return asyncio.run(postgres.provision_service_roles(admin_url, self.postgres_roles_file))

    def _smtp_up(self, previous: Component | None) -> Component:
        wait = self.settings.ready_timeout_seconds
        if self.settings.smtp_url:
            url = self.settings.smtp_url.get_secret_value()
            parts = urlsplit(url)
            host, port = parts.hostname or "127.0.0.1", parts.port or 25
            took = _wait(lambda: sink_ready(host, port), "SMTP server", wait)
            return Component("smtp", url, False, None, took, "reused")
        pid = process.read_pid(self.smtp_pid_file)
        if pid is not None and previous is not None:
            parts = urlsplit(previous.address)
            if sink_ready(parts.hostname or "127.0.0.1", parts.port or 0):
                return Component("smtp", previous.address, True, pid, 0.0, "already running")
        if pid is not None:
            process.stop_pid(pid)
        port = self.settings.local_smtp_port
        if process.port_open("127.0.0.1", port):
            raise PlatformError(
                f"port {port} is taken by another program; set DAGMONITOR_LOCAL_SMTP_PORT, "
                "or DAGMONITOR_SMTP_URL to use that server"
            )
        self.smtp_pid_file.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        log_file = self.smtp_pid_file.parent / "sink.log"
        pid = process.spawn(
            [
                sys.executable,
                "-m",
                "dagmonitor_cli.platform.smtp_sink",
                "--dir",
                str(self.mail_dir),
                "--port",
                str(port),
            ],
            log_file=log_file,
            pid_file=self.smtp_pid_file,
        )
        process.wait_until(
            lambda: sink_ready("127.0.0.1", port),
            what="SMTP sink",
            timeout=wait,
            alive=lambda: process.pid_alive(pid),
            log_file=log_file,
        )
        return Component(
            "smtp",
            f"smtp://127.0.0.1:{port}",
            True,
            pid,
            time.monotonic() - began,
            f"mail stored in {self.mail_dir}",
        )

    # -- down / status -----------------------------------------------------------------------

    def down(self, echo: Echo = print) -> None:
        """Stop what ``up`` started; servers it reused keep running. Waits for an ``up`` in
        progress (the same lock), so it never stops a server that ``up`` has not recorded."""
        if not self.root.is_dir():
            return
        with _exclusive(self.root / "up.lock"):
            self._down(echo)

    def _down(self, echo: Echo) -> None:
        state = self._load_state()
        self.services.stop(echo)
        smtp_pid = process.read_pid(self.smtp_pid_file)
        if smtp_pid is not None:
            process.stop_pid(smtp_pid)
            echo("smtp sink stopped")
        if postgres.running_port(self.postgres) is not None:
            postgres.stop(self.postgres)
            echo("postgres stopped")
        kafka_pid = process.read_pid(self.kafka.pid_file)
        if kafka_pid is not None:
            process.stop_pid(kafka_pid, timeout=60)
            echo("kafka stopped")
        for name, component in state.items():
            if not component.managed:
                echo(f"{name} at {_redact(component.address)} was reused, left running")
        self.state_file.unlink(missing_ok=True)
        self.env_file.unlink(missing_ok=True)

    def status(self) -> list[tuple[str, str, bool]]:
        """(name, address, running) for each server ``up`` recorded."""
        rows = []
        for name, component in self._load_state().items():
            if name == "kafka":
                running = kafka.broker_ready(self._admin_settings(component))
            elif name == "postgres":
                running = postgres.server_ready(component.address)
            else:
                parts = urlsplit(component.address)
                running = sink_ready(parts.hostname or "127.0.0.1", parts.port or 25)
            rows.append((name, _redact(component.address), running))
        rows += [(svc.name, svc.url, svc.ready) for svc in self.services.status()]
        return rows


TERM_VARIABLES = ("DAGMONITOR_COVENANT_START_DATE", "DAGMONITOR_COVENANT_END_DATE")


def development_term_env(env_file: Path) -> dict[str, str]:
    """The local stack's covenant term (required by every service, ADR 0018): the one
    ``stack.env`` holds already, else a year from the first of this month. Always written (a
    variable set in the environment still wins when settings are read), so that a command run
    later without that variable finds a term."""
    from datetime import date

    from dagmonitor.covenant import development_term

    try:
        previous = dict(
            line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
        )
    except OSError:
        previous = {}
    term = development_term(date.today())
    values = dict(zip(TERM_VARIABLES, (term.start.isoformat(), term.end.isoformat()), strict=True))
    if all(previous.get(name) for name in TERM_VARIABLES):
        values = {name: previous[name] for name in TERM_VARIABLES}
    return values


def _wait(
    probe: Callable[[], bool],
    what: str,
    timeout: float,
    alive: Callable[[], bool] | None = None,
) -> float:
    return process.wait_until(probe, what=what, timeout=timeout, interval=0.5, alive=alive)


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """One ``up`` or ``down`` at a time on a stack: a second ``up`` waits, then finds
    everything running; a ``down`` waits for the ``up`` to finish, then stops it all."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _redact(address: str) -> str:
    """An address fit for printing: the password in a URL is replaced by ***."""
    parts = urlsplit(address)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return address


def _describe(component: Component) -> str:
    took = (
        f" ready in {component.seconds_to_ready:.1f} s"
        if component.seconds_to_ready is not None
        else ""
    )
    note = f" ({component.note})" if component.note else ""
    owner = "" if component.managed else " [reused]"
    return f"{component.name:<9} {_redact(component.address)}{owner}{took}{note}"
