"""A real single-node Apache Kafka broker (KRaft combined mode) for the local stack.

The broker's jars come from Maven Central through ``deploy/local/kafka/pom.xml``
(``mvn dependency:copy-dependencies``) and are cached under ``.local/kafka/libs``, keyed by the
pom's hash, so only the first start downloads. The broker runs as ``java -cp 'libs/*'
kafka.Kafka server.properties``; readiness is a metadata request that succeeds.

The broker runs as production does (ADR 0021): a SASL_SSL listener (SCRAM-SHA-512, a local CA
of ``tls.py``), the controller listener on mutual TLS, ``StandardAuthorizer`` denying by
default. The SCRAM users of the principal table are created at storage format time; when the
table names a user the formatted storage does not know, the (local, disposable) storage is
formatted anew.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from dagmonitor.errors import PlatformError
from dagmonitor.settings import REPO_ROOT, DagmonitorSettings
from dagmonitor_cli.platform import principals, process, tls

TEMPLATE_DIR = REPO_ROOT / "deploy" / "local" / "kafka"
JVM_OPTS = (
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)


@dataclass(frozen=True)
class KafkaLayout:
    """Where the local broker keeps its jars, config, data and logs."""

    root: Path

    @property
    def libs(self) -> Path:
        return self.root / "libs"

    @property
    def libs_stamp(self) -> Path:
        return self.libs / ".pom.sha256"

    @property
    def config(self) -> Path:
        return self.root / "server.properties"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def console_log(self) -> Path:
        return self.logs / "console.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"

    @property
    def cluster_id_file(self) -> Path:
        return self.root / "cluster.id"

    @property
    def tls(self) -> tls.TlsFiles:
        return tls.TlsFiles(self.root / "tls")

    @property
    def credentials(self) -> Path:
        """SCRAM passwords by user (mode 0600)."""
        return self.root / "credentials.json"

    @property
    def formatted_users(self) -> Path:
        """The SCRAM users the storage was formatted with."""
        return self.data / ".dagmonitor-scram-users.json"

    def client_settings(self, bootstrap: str, principal: str) -> DagmonitorSettings:
        """Settings connecting to this broker as ``principal``."""
        return DagmonitorSettings(
            kafka_bootstrap=bootstrap,
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_username=principal,
            kafka_ca_file=self.tls.ca,
            kafka_credentials_file=self.credentials,
        )

    def stack_env(self) -> dict[str, str]:
        """What ``stack.env`` says about this broker besides its address (no password)."""
        return {
            "DAGMONITOR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "DAGMONITOR_KAFKA_CA_FILE": str(self.tls.ca),
            "DAGMONITOR_KAFKA_CREDENTIALS_FILE": str(self.credentials),
        }


def _pom_hash() -> str:
    digest = hashlib.sha256()
    for name in ("pom.xml",):
        digest.update((TEMPLATE_DIR / name).read_bytes())
    return digest.hexdigest()


def resolve_jars(layout: KafkaLayout) -> bool:
    """Make sure the broker's classpath is in ``layout.libs``; returns True if it downloaded."""
    wanted = _pom_hash()
    if layout.libs_stamp.is_file() and layout.libs_stamp.read_text().strip() == wanted:
        return False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise PlatformError("Maven (mvn) is not installed; it resolves Kafka's jars")
    if layout.libs.exists():
        shutil.rmtree(layout.libs)
    layout.libs.mkdir(parents=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(TEMPLATE_DIR / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={layout.libs}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PlatformError(
            "mvn could not resolve Kafka's jars from Maven Central:\n"
            + (result.stdout + result.stderr)[-3000:]
        )
    layout.libs_stamp.write_text(wanted + "\n")
    return True


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home, "bin", "java") if java_home else None
    if candidate is not None and candidate.is_file():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise PlatformError("Java 17+ is not installed; the Kafka broker needs it")
    return found


def _cluster_id(layout: KafkaLayout) -> str:
    if layout.cluster_id_file.is_file():
        return layout.cluster_id_file.read_text().strip()
    # A KRaft cluster id is 16 random bytes in URL-safe base64 without padding (22 chars).
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    layout.cluster_id_file.write_text(cluster_id + "\n")
    return cluster_id


def write_config(layout: KafkaLayout, port: int, controller_port: int) -> None:
    """Render ``server.properties`` for this layout and these ports (mode 0600: it holds the
    broker's password), creating the TLS material and SCRAM passwords first when missing."""
    tls.ensure(layout.tls)
    passwords = principals.ensure_credentials(layout.credentials)
    super_users = [
        f"User:{principals.BROKER_USER}",
        tls.BROKER_PRINCIPAL,
        # The admin creates the ACLs, so someone must be allowed to before any exists.
        f"User:{principals.ADMIN}",
    ]
    text = (TEMPLATE_DIR / "server.properties").read_text()
    for placeholder, value in {
        "@PORT@": str(port),
        "@CONTROLLER_PORT@": str(controller_port),
        "@DATA_DIR@": str(layout.data),
        "@TLS_DIR@": str(layout.tls.root),
        "@KEY_PASSWORD@": layout.tls.key_password.read_text().strip(),
        "@BROKER_USER@": principals.BROKER_USER,
        "@BROKER_PASSWORD@": passwords[principals.BROKER_USER],
        "@SUPER_USERS@": ";".join(super_users),
    }.items():
        text = text.replace(placeholder, value)
    fd = os.open(layout.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    layout.config.chmod(0o600)


def _java_argv(layout: KafkaLayout, main_class: str, *args: str) -> list[str]:
    return [
        _java(),
        *JVM_OPTS,
        f"-Dkafka.logs.dir={layout.logs}",
        f"-Dlog4j2.configurationFile={TEMPLATE_DIR / 'log4j2.properties'}",
        "-cp",
        f"{layout.libs}/*",
        main_class,
        *args,
    ]


def _formatted_users(layout: KafkaLayout) -> list[str] | None:
    try:
        return sorted(json.loads(layout.formatted_users.read_text()))
    except (OSError, ValueError):
        return None


def format_storage(layout: KafkaLayout) -> bool:
    """Format the KRaft log directory with the SCRAM users of the principal table; harmless
    when already formatted with them. Returns True when it formatted (anew)."""
    users = sorted(principals.scram_users())
    if (layout.data / "meta.properties").is_file():
        if _formatted_users(layout) == users:
            return False
        # A storage of an older table (or of the PLAINTEXT broker): local data, started over.
        shutil.rmtree(layout.data)
    layout.data.mkdir(parents=True, exist_ok=True)
    passwords = principals.ensure_credentials(layout.credentials)
    scram = [
        arg
        for user in users
        for arg in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={passwords[user]}]")
    ]
    argv = _java_argv(
        layout,
        "kafka.tools.StorageTool",
        "format",
        # "=": a random id may start with "-", which argparse would take for an option.
        f"--cluster-id={_cluster_id(layout)}",
        "-c",
        str(layout.config),
        "--standalone",
        "--ignore-formatted",
        *scram,
    )
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        for password in passwords.values():
            output = output.replace(password, "***")
        raise PlatformError("formatting Kafka's storage failed:\n" + output[-3000:])
    layout.formatted_users.write_text(json.dumps(users) + "\n")
    return True


async def _metadata_ok(settings: DagmonitorSettings) -> bool:
    from dagmonitor import kafka_clients

    admin = kafka_clients.admin(settings, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout=5)
        return bool(cluster.get("brokers"))
    except Exception:
        # Any failure means "not ready yet"; the caller retries until its deadline.
        return False
    finally:
        await admin.close()


def broker_ready(settings: DagmonitorSettings) -> bool:
    """Whether a metadata request as the settings say succeeds and names at least one broker."""
    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    if not process.port_open(host or "127.0.0.1", int(port)):
        return False
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(_metadata_ok(settings))
    finally:
        quiet.setLevel(level)


@dataclass(frozen=True)
class StartedKafka:
    bootstrap: str
    pid: int
    seconds_to_ready: float
    """From the broker process's start to its first successful metadata request."""
    seconds_total: float
    """Including jar resolution and storage formatting."""
    downloaded_jars: bool
    formatted: bool
    """The storage was formatted now (first start, or the principal table changed)."""


def start(
    layout: KafkaLayout, *, port: int, controller_port: int, timeout: float = 120.0
) -> StartedKafka:
    """Start the broker (resolving jars and formatting storage first) and wait until ready."""
    began = time.monotonic()
    bootstrap = f"127.0.0.1:{port}"
    for busy in (port, controller_port):
        if process.port_open("127.0.0.1", busy):
            raise PlatformError(
                f"port {busy} is taken by another program; set DAGMONITOR_LOCAL_KAFKA_PORT / "
                "DAGMONITOR_LOCAL_KAFKA_CONTROLLER_PORT, or DAGMONITOR_KAFKA_BOOTSTRAP to reuse it"
            )
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.logs.mkdir(parents=True, exist_ok=True)
    downloaded = resolve_jars(layout)
    write_config(layout, port, controller_port)
    formatted = format_storage(layout)
    started = time.monotonic()
    pid = process.spawn(
        _java_argv(layout, "kafka.Kafka", str(layout.config)),
        log_file=layout.console_log,
        pid_file=layout.pid_file,
    )
    process.wait_until(
        lambda: broker_ready(layout.client_settings(bootstrap, principals.ADMIN)),
        what="Kafka broker",
        timeout=timeout,
        interval=0.25,
        alive=lambda: process.pid_alive(pid),
        log_file=layout.logs / "server.log",
    )
    now = time.monotonic()
    return StartedKafka(bootstrap, pid, now - started, now - began, downloaded, formatted)
