"""Real tools for the operations tests: Prometheus (Debian's binary) and an OTLP/HTTP receiver.

``PrometheusServer`` runs ``/usr/bin/prometheus`` on a free port with a temporary data dir and
a configuration made from ``deploy/monitoring/prometheus.yml`` (the same jobs and rule file,
each job pointed at a service process of the test, scraped every second).
``OtlpReceiver`` takes the spans that the services export over OTLP/HTTP (protobuf).
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import ClientSession, web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from dagmonitor.settings import REPO_ROOT
from dagmonitor_cli.platform.process import free_port

MONITORING = REPO_ROOT / "deploy" / "monitoring"
RULES = MONITORING / "rules" / "dagmonitor.rules.yml"


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise AssertionError(
            "prometheus is not installed: run scripts/bootstrap.sh (Debian package prometheus)"
        )
    return found


class PrometheusServer:
    """A Prometheus of the test's own, scraping ``targets`` (service -> port)."""

    def __init__(self, workdir: Path, targets: dict[str, int]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = workdir / "prometheus.log"
        self.config_file = workdir / "prometheus.yml"
        self.config_file.write_text(yaml.safe_dump(self.config(targets), sort_keys=False))
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def config(targets: dict[str, int]) -> dict[str, Any]:
        """The repository's configuration, every second, aimed at the test's services."""
        config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
        config["global"].update(
            {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
        )
        config["rule_files"] = [str(RULES)]
        jobs = []
        for job in config["scrape_configs"]:
            service = job["job_name"].removeprefix("dagmonitor-")
            if service in targets:
                job["static_configs"] = [{"targets": [f"127.0.0.1:{targets[service]}"]}]
                jobs.append(job)
        config["scrape_configs"] = jobs
        return config

    def start(self, timeout: float = 20.0) -> PrometheusServer:
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    prometheus_binary(),
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log_file.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("prometheus not ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    async def api(self, path: str, **params: str) -> dict[str, Any]:
        """One call of the HTTP API; the whole answer (``status``, ``data`` or ``error``)."""
        query = urllib.parse.urlencode(params)
        async with (
            ClientSession() as session,
            session.get(f"{self.url}/api/v1/{path}?{query}") as response,
        ):
            body: dict[str, Any] = await response.json()
            return body

    async def query(self, expr: str) -> dict[str, Any]:
        """An instant query at the current time (the answer, success or not)."""
        return await self.api("query", query=expr)

    async def series_count(self, expr: str) -> int:
        answer = await self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        return len(answer["data"]["result"])

    async def scalar(self, expr: str) -> float:
        answer = await self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    links: tuple[tuple[str, str], ...]
    attributes: dict[str, Any]


@dataclass
class OtlpReceiver:
    """An OTLP/HTTP traces endpoint that keeps every span it is sent."""

    spans: list[Span] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    requests: int = 0
    _runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> OtlpReceiver:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        self.requests += 1
        for resource_spans in message.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            service = attributes.get("service.name", "")
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append(
                        Span(
                            service,
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            tuple((ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links),
                            {a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
