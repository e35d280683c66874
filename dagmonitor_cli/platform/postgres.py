"""A private PostgreSQL cluster for the local stack, from Debian's packages.

The cluster lives under ``.local/postgres``. ``initdb`` and the server refuse to run as root,
so when we are root they run as the ``postgres`` system user (created by Debian's package).
The cluster listens on loopback only, with password (SCRAM) authentication for the
``dagmonitor`` role that owns the ``dagmonitor`` database (the administrator: migrations of the
tests' own schemas, the demo's counts).

Each service that keeps data logs in as its own role (``dagmonitor_<service>``), which owns the
service's schema and nothing else: no right on another schema, none to create schemas
(``provision_service_roles``, ADR 0021). Their passwords are in ``.local/postgres-roles.json``
(mode 0600).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dagmonitor.errors import PlatformError
from dagmonitor_cli.platform import process

SERVICE_SCHEMAS = ("approval", "distributor", "retention")
"""The services that own a schema (``services/<name>/migrations``), each in its own name."""
APPROVAL_APP_ROLE = "dagmonitor_approval_app"
"""The approval service's append-only audit role (its migrations grant it; ADR 0004)."""
USER = "dagmonitor"
PASSWORD = "dagmonitor"  # local development cluster only, on 127.0.0.1  # nosec B105
DATABASE = "dagmonitor"


@dataclass(frozen=True)
class PostgresLayout:
    """Where the private cluster keeps its data, socket and log."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"


def bin_dir() -> Path:
    """The newest installed PostgreSQL server's ``bin`` folder."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PlatformError(
        "PostgreSQL server binaries not found; install Debian's 'postgresql' package "
        "(scripts/bootstrap.sh does this when run as root)"
    )


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PlatformError(
            "running as root but there is no 'postgres' user to run the server"
        ) from None
    return ["runuser", "-u", "postgres", "--", *argv]  # util-linux, found on PATH  # nosec B607


SHARED_ROOT = Path("/var/lib/dagmonitor")
"""Where clusters go when the server's user cannot enter the clone (root, a 0700 home)."""


def server_user_can_enter(folder: Path) -> bool:
    """Whether the server's user can reach ``folder`` (always, when we are not root)."""
    if os.geteuid() != 0:
        return True
    probe = folder
    while not probe.exists():
        probe = probe.parent
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return True  # init_cluster names the missing user
    result = subprocess.run(  # runuser (util-linux) from PATH, as _as_server_user  # nosec B607
        ["runuser", "-u", "postgres", "--", "test", "-x", str(probe)],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def cluster_root(local_root: Path) -> Path:
    """The folder of the private cluster for a stack at ``local_root``.

    ``<local_root>/postgres`` when the server's user can enter it; otherwise (as root, with the
    clone in a folder the ``postgres`` user cannot enter, e.g. a 0700 home) a folder of its
    own under ``/var/lib/dagmonitor``, one per clone.
    """
    inside = local_root / "postgres"
    if (inside / "data" / "PG_VERSION").is_file() or server_user_can_enter(local_root):
        return inside
    digest = hashlib.sha256(str(local_root.resolve()).encode()).hexdigest()[:16]
    outside = SHARED_ROOT / digest / "postgres"
    SHARED_ROOT.mkdir(parents=True, exist_ok=True)
    SHARED_ROOT.chmod(0o755)
    return outside


def _chown_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(_as_server_user(argv), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PlatformError(f"{what} failed:\n" + (result.stdout + result.stderr)[-3000:])


def init_cluster(layout: PostgresLayout) -> bool:
    """Create the cluster once; returns True when it was created now."""
    if (layout.data / "PG_VERSION").is_file():
        return False
    layout.root.parent.mkdir(parents=True, exist_ok=True)
    for folder in (layout.root, layout.data, layout.socket_dir):
        folder.mkdir(parents=True, exist_ok=True)
        _chown_to_server_user(folder)
    layout.data.chmod(0o700)
    pwfile = layout.root / ".pwfile"
    pwfile.write_text(PASSWORD + "\n")
    _chown_to_server_user(pwfile)
    try:
        _run(
            [
                str(bin_dir() / "initdb"),
                "-D",
                str(layout.data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            "initdb",
        )
    finally:
        pwfile.unlink(missing_ok=True)
    return True


def dsn(port: int) -> str:
    return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"


async def _connect_ok(url: str) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=3)
    except Exception:
        # Not accepting connections yet (or wrong credentials): the caller retries or reports.
        return False
    try:
        return await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


def server_ready(url: str) -> bool:
    """Whether ``url`` accepts a login and answers ``SELECT 1``."""
    return asyncio.run(_connect_ok(url))


async def _ensure_database(port: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn(port).rsplit("/", 1)[0] + "/postgres", timeout=5)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{DATABASE}" OWNER "{USER}"')
    finally:
        await conn.close()


def _pid_from_postmaster(layout: PostgresLayout) -> int | None:
    pid_file = layout.data / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if process.pid_alive(pid) else None


def running_port(layout: PostgresLayout) -> int | None:
    """The port of our cluster if its postmaster runs, read from ``postmaster.pid``."""
    if _pid_from_postmaster(layout) is None:
        return None
    try:
        return int((layout.data / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class StartedPostgres:
    url: str
    port: int
    seconds_to_ready: float
    created: bool


def start(layout: PostgresLayout, *, port: int, timeout: float = 60.0) -> StartedPostgres:
    """Start the private cluster on ``port`` (creating it first) and wait for a real login."""
    began = time.monotonic()
    created = init_cluster(layout)
    options = f"-p {port} -k {layout.socket_dir} -c listen_addresses=127.0.0.1"
    _run(
        [
            str(bin_dir() / "pg_ctl"),
            "-D",
            str(layout.data),
            "-l",
            str(layout.log_file),
            "-o",
            options,
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        ],
        "pg_ctl start",
    )
    url = dsn(port)
    process.wait_until(
        lambda: server_ready(dsn(port).rsplit("/", 1)[0] + "/postgres"),
        what="PostgreSQL",
        timeout=timeout,
        log_file=layout.log_file,
    )
    asyncio.run(_ensure_database(port))
    return StartedPostgres(url, port, time.monotonic() - began, created)


def stop(layout: PostgresLayout) -> None:
    """Stop the private cluster (fast shutdown: active sessions are disconnected)."""
    if _pid_from_postmaster(layout) is None:
        return
    _run(
        [str(bin_dir() / "pg_ctl"), "-D", str(layout.data), "-m", "fast", "-w", "stop"],
        "pg_ctl stop",
    )


def service_role(service: str) -> str:
    """The login role of a service that owns a schema."""
    return f"dagmonitor_{service}"


def service_dsn(port: int, service: str, password: str) -> str:
    return f"postgresql://{service_role(service)}:{password}@127.0.0.1:{port}/{DATABASE}"


def _role_passwords(path: Path) -> dict[str, str]:
    try:
        passwords: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError):
        passwords = {}
    missing = [s for s in SERVICE_SCHEMAS if s not in passwords]
    if missing:
        passwords.update({service: secrets.token_urlsafe(24) for service in missing})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(passwords, handle, indent=2, sort_keys=True)
        path.chmod(0o600)
    return passwords


_PROVISION = """
DO $$
DECLARE
    item record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
        CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '{schema}') THEN
        CREATE SCHEMA {schema} AUTHORIZATION {role};
    END IF;
    -- A schema an earlier stack made as the administrator: hand it and its objects over.
    FOR item IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
          AND pg_get_userbyid(c.relowner) <> '{role}'
          -- a table's identity or serial sequence goes with its table (and cannot alone)
          AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d
                   WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                     AND d.deptype IN ('a', 'i')))
    LOOP
        EXECUTE format('ALTER TABLE {schema}.%I OWNER TO {role}', item.relname);
    END LOOP;
END
$$;
ALTER SCHEMA {schema} OWNER TO {role};
REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;
GRANT CONNECT ON DATABASE {database} TO {role};
"""


async def provision_service_roles(admin_url: str, passwords_file: Path) -> dict[str, str]:
    """Create (or bring up to date) each service's login role and schema; returns the DSN of
    each service, by name. Connected as the administrator of ``admin_url``."""
    import asyncpg

    passwords = _role_passwords(passwords_file)
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        # Nobody but the administrator creates objects in public (PostgreSQL 15's default).
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        await conn.execute(
            f"""DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APPROVAL_APP_ROLE}')
                THEN CREATE ROLE {APPROVAL_APP_ROLE} NOLOGIN; END IF; END $$"""
        )
        for service in SERVICE_SCHEMAS:
            role = service_role(service)
            await conn.execute(_PROVISION.format(role=role, schema=service, database=DATABASE))
            # token_urlsafe: letters, digits, '-' and '_' only, nothing to escape in a literal.
            await conn.execute(f"ALTER ROLE {role} PASSWORD '{passwords[service]}'")
        await conn.execute(f"GRANT {APPROVAL_APP_ROLE} TO {service_role('approval')}")
    finally:
        await conn.close()
    port = urlsplit(admin_url).port or 5432
    return {service: service_dsn(port, service, passwords[service]) for service in SERVICE_SCHEMAS}
