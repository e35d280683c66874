"""A real single-node Apache Kafka broker (KRaft combined mode) for the local stack.

The broker's jars come from Maven Central through ``deploy/local/kafka/pom.xml``
(``mvn dependency:copy-dependencies``) and are cached under ``.local/kafka/libs``, keyed by the
pom's hash, so only the first start downloads. The broker runs as ``java -cp 'libs/*'
kafka.Kafka server.properties``; readiness is a metadata request that succeeds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from dagmonitor.errors import PlatformError
from dagmonitor.settings import REPO_ROOT
from dagmonitor_cli.platform import process

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
    """Render ``server.properties`` for this layout and these ports."""
    text = (TEMPLATE_DIR / "server.properties").read_text()
    for placeholder, value in {
        "@PORT@": str(port),
        "@CONTROLLER_PORT@": str(controller_port),
        "@DATA_DIR@": str(layout.data),
    }.items():
        text = text.replace(placeholder, value)
    layout.config.write_text(text)


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


def format_storage(layout: KafkaLayout) -> None:
    """Format the KRaft log directory once; harmless when already formatted."""
    if (layout.data / "meta.properties").is_file():
        return
    layout.data.mkdir(parents=True, exist_ok=True)
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
    )
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PlatformError(
            "formatting Kafka's storage failed:\n" + (result.stdout + result.stderr)[-3000:]
        )


async def _metadata_ok(bootstrap: str) -> bool:
    from dagmonitor import kafka_clients
    from dagmonitor.settings import DagmonitorSettings

    settings = DagmonitorSettings(kafka_bootstrap=bootstrap)
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


def broker_ready(bootstrap: str) -> bool:
    """Whether a metadata request to ``bootstrap`` succeeds and names at least one broker."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not process.port_open(host or "127.0.0.1", int(port)):
        return False
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(_metadata_ok(bootstrap))
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
    format_storage(layout)
    started = time.monotonic()
    pid = process.spawn(
        _java_argv(layout, "kafka.Kafka", str(layout.config)),
        log_file=layout.console_log,
        pid_file=layout.pid_file,
    )
    process.wait_until(
        lambda: broker_ready(bootstrap),
        what="Kafka broker",
        timeout=timeout,
        interval=0.25,
        alive=lambda: process.pid_alive(pid),
        log_file=layout.logs / "server.log",
    )
    now = time.monotonic()
    return StartedKafka(bootstrap, pid, now - started, now - began, downloaded)
