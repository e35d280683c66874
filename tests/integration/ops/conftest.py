"""One pipeline run on the real stack, observed by a real Prometheus and an OTLP receiver.

The ``pipeline_run`` fixture (once per session) starts ingest, classifier, approval and
distributor as processes (own topic prefix, own PostgreSQL schemas, own SMTP sink), a Prometheus
scraping them every second with the repository's alert rules, and an OTLP/HTTP receiver the
services export their spans to. It publishes a generated day of police records (and three bad
records), approves requests as the officers would, lets the distributor mail the notices and
the daily Dagmonitor, then collects what the tests look at: every dashboard query and alert
expression evaluated by Prometheus, the rules' and alerts' state, each service's /metrics and
log file, the spans. At the end it kills ingest and watches DagmonitorServiceDown go pending.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import yaml

from dagmonitor.codec import INCIDENT_EVENT, default_codec
from dagmonitor.jsonio import record_from_json
from dagmonitor.settings import DagmonitorSettings
from dagmonitor_cli.generate import Generator
from dagmonitor_cli.platform.principals import remove_acls
from dagmonitor_cli.platform.process import free_port
from services.approval.client import ApprovalClient
from services.approval.config import ApprovalSettings
from services.approval.errors import ApiError
from services.approval.tokens import init_dev_key, issue_dev_token
from services.ingest.cli import publish_file
from tests.consents import grant_consents
from tests.integration.distributor.conftest import RECIPIENTS, SmtpServer
from tests.integration.ops.harness import MONITORING, OtlpReceiver, PrometheusServer, Span
from tests.kafkautil import as_service, grant_services, produce
from tests.processes import ServiceProcess

TEAM = "WK034405,WK034404,WK034402"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
SERVICES = ("ingest", "classifier", "approval", "distributor")
COVENANT_DAYS_LEFT = 20
DASHBOARDS = MONITORING / "dashboards"


@dataclass(frozen=True)
class QueryResult:
    """What Prometheus answered to one dashboard target or alert expression."""

    where: str
    expr: str
    status: str
    error: str | None
    series: int


@dataclass
class PipelineRun:
    lines: list[dict[str, Any]]
    logs: dict[str, Path]
    metrics: dict[str, str]
    panels: list[QueryResult] = field(default_factory=list)
    alert_exprs: list[QueryResult] = field(default_factory=list)
    metric_presence: dict[str, int] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)
    alerts_before_kill: list[dict[str, Any]] = field(default_factory=list)
    alerts_after_kill: list[dict[str, Any]] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    mails: int = 0
    decisions: int = 0
    seconds: float = 0.0
    prometheus: PrometheusServer | None = None


def dashboard_targets() -> list[tuple[str, str]]:
    """("dashboard: panel [refId]", expr) of every target of every dashboard."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                found.append((f"{path.stem}: {panel['title']} [{target['refId']}]", target["expr"]))
    return found


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((MONITORING / "rules" / "dagmonitor.rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode("utf-8"))


async def _eventually(prometheus: PrometheusServer, expr: str, timeout: float) -> None:
    """Wait until ``expr`` returns at least one series."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await prometheus.series_count(expr):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"no data for {expr} after {timeout} s")


def _in(service: str, topic: str) -> str:
    return f'sum(dagmonitor_records_in_total{{service="{service}",topic="{topic}"}})'


def _out(service: str, topic: str) -> str:
    return f'sum(dagmonitor_records_out_total{{service="{service}",topic="{topic}"}})'


async def _caught_up(prometheus: PrometheusServer, done: str, target: str, timeout: float) -> None:
    """Wait until the count ``done`` reaches the positive count ``target`` (a number or a
    query), and still does a second later."""
    expr = f"({done}) >= {target}" if target.isdigit() else f"({target}) <= ({done}) > 0"
    await _eventually(prometheus, expr, timeout)
    await asyncio.sleep(1.0)
    await _eventually(prometheus, expr, timeout)


async def _decide_some(client: ApprovalClient, decisions: list[tuple[str, str | None]]) -> int:
    """Decide the first pending requests the client's role sees: approve, approve, reject."""
    done = 0
    for item, (decision, reason) in zip(await client.list("pending", 10), decisions, strict=False):
        try:
            await client.decide(item["request_id"], decision, reason)
            done += 1
        except ApiError as exc:
            if exc.status != 409:  # decided meanwhile (expired): fine
                raise
    return done


def _report_day() -> tuple[date, datetime]:
    """A local time some seconds from now for the daily run, and the day it reports on."""
    now = datetime.now(AMSTERDAM)
    run_at = now + timedelta(seconds=30)
    if run_at.date() != now.date():  # do not straddle midnight
        run_at = (now + timedelta(days=1)).replace(hour=0, minute=0, second=40, microsecond=0)
    return run_at.date() - timedelta(days=1), run_at


@pytest.fixture(scope="session")
async def pipeline_run(
    stack: DagmonitorSettings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PipelineRun]:
    from dagmonitor.topic_admin import apply_topics

    loop = asyncio.get_running_loop()
    started = loop.time()
    work = tmp_path_factory.mktemp("ops-pipeline")
    settings = DagmonitorSettings.load(topic_prefix=f"test-ops{uuid.uuid4().hex[:8]}.")
    await apply_topics(settings)
    schemas = {s: f"{s}_{uuid.uuid4().hex[:8]}" for s in ("approval", "distributor")}
    key_file, _ = init_dev_key(work / "dev-signing-key.pem")
    smtp = SmtpServer(work / "mail", free_port())
    smtp.start()
    receiver = await OtlpReceiver().start()

    day, run_at = _report_day()
    generator = Generator(seed=7, day=day)
    lines = [*generator.incidents(300), *generator.notices(8)]
    path = work / "day.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")

    common = {
        "DAGMONITOR_TOPIC_PREFIX": settings.topic_prefix,
        "DAGMONITOR_TEAM_DISTRICTS": TEAM,
        "DAGMONITOR_MUNICIPALITY_CODE": "GM0344",
        "DAGMONITOR_LOG_LEVEL": "INFO",
        "DAGMONITOR_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "300",
    }
    env = {
        "ingest": common,
        "classifier": common,
        "approval": {
            **common,
            "DAGMONITOR_DB_SCHEMA": schemas["approval"],
            "DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE": str(key_file),
            "DAGMONITOR_APPROVAL_SWEEP_INTERVAL_SECONDS": "1",
            "DAGMONITOR_APPROVAL_RELAY_INTERVAL_SECONDS": "0.2",
        },
        "distributor": {
            **common,
            "DAGMONITOR_DB_SCHEMA": schemas["distributor"],
            "DAGMONITOR_SMTP_URL": smtp.url,
            "DAGMONITOR_SMTP_ALLOW_PLAINTEXT": "true",
            "DAGMONITOR_DISTRIBUTOR_RECIPIENTS": json.dumps(RECIPIENTS),
            "DAGMONITOR_COVENANT_END_DATE": (
                datetime.now(AMSTERDAM).date() + timedelta(days=COVENANT_DAYS_LEFT)
            ).isoformat(),
            "DAGMONITOR_DAILY_REPORT_TIME": run_at.strftime("%H:%M:%S"),
            "DAGMONITOR_NOTICE_INTERVAL_SECONDS": "1",
            "DAGMONITOR_OUTBOX_POLL_SECONDS": "0.5",
            "DAGMONITOR_MESSAGE_ID_DOMAIN": f"{settings.topic_prefix.rstrip('.')}.invalid",
        },
    }
    # Each service as its own principal, with only the table's ACLs: least privilege end to end.
    granted = await grant_services(settings)
    processes = {
        name: ServiceProcess(name, {**env[name], **as_service(settings, name)}, work)
        for name in SERVICES
    }
    prometheus = PrometheusServer(work, {n: p.port for n, p in processes.items()}).start()
    run = PipelineRun(lines, {n: p.log_file for n, p in processes.items()}, {})
    run.prometheus = prometheus
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start, 60.0) for p in processes.values()))
        # Prometheus holds a sample of every service (the counters at 0) before anything
        # happens, so that increase() sees the first dead letter and the first mail.
        await _eventually(prometheus, f"count(up == 1) == {len(SERVICES)}", 20)
        await _eventually(prometheus, 'dagmonitor_dead_letters_total{service="ingest"} == 0', 20)
        # The OM's standing consents: without them the Dagmonitor and vehicle notices are held.
        await grant_consents(
            f"http://127.0.0.1:{processes['approval'].port}",
            ApprovalSettings(approval_dev_signing_key_file=key_file),
            database_url=settings.database_url.get_secret_value(),
            distributor_schema=schemas["distributor"],
        )

        assert await publish_file(settings, path, quiet=True) == {
            "published": len(lines),
            "refused": 0,
        }
        bad = record_from_json(
            INCIDENT_EVENT,
            {
                **lines[0],
                "registration_number": "PL0900-2026999001",
                "reported_at": "2031-01-01T00:00:00Z",
            },
        )
        encoded = default_codec().encode(INCIDENT_EVENT, bad)
        await produce(
            settings,
            "bvh.incidents",
            [
                (b"PL0900-2026999001", encoded),
                (b"PL0900-2026999002", encoded[:-7]),
                (b"PL0900-2026999003", b'{"json": true}'),
            ],
        )

        # The officers decide what reached them.
        approval = ApprovalSettings(approval_dev_signing_key_file=key_file)
        api = f"http://127.0.0.1:{processes['approval'].port}"
        # Wait until every record went through ingest and the classifier, and every request
        # reached the approval service (and its pending gauge), before the officers look.
        incidents = sum(1 for line in lines if "registration_number" in line)
        await _caught_up(prometheus, _in("ingest", "bvh.incidents"), f"{incidents + 3}", 60)
        await _caught_up(
            prometheus,
            _in("classifier", "ingest.incidents"),
            _out("ingest", "ingest.incidents"),
            60,
        )
        await _caught_up(
            prometheus,
            _in("approval", "approval.requests"),
            _out("classifier", "approval.requests"),
            60,
        )
        await _eventually(prometheus, 'dagmonitor_approvals_pending{approver_role="OM"} > 0', 20)
        choices: list[tuple[str, str | None]] = [
            ("approve", None),
            ("approve", None),
            ("reject", "lopend onderzoek"),
        ]
        for role in ("OM", "POLICE_BURGLARY_TEAM", "POLICE_DISTRICT"):
            token = issue_dev_token(approval, sub=f"ops-test-{role.lower()}", roles=[role])
            run.decisions += await _decide_some(ApprovalClient(api, token), choices)
        assert run.decisions > 0, "no request reached an officer"

        # Mails: notices of approved persons and stolen vehicles, then the daily Dagmonitor.
        await _eventually(
            prometheus,
            'sum(dagmonitor_distributor_mails_sent_total{category=~"person_notice|victim_notice"})'
            " > 0",
            40,
        )
        await _eventually(
            prometheus,
            'sum(dagmonitor_distributor_mails_sent_total{category="vehicle_notice"}) > 0',
            20,
        )
        wait = max(0.0, (run_at - datetime.now(AMSTERDAM)).total_seconds()) + 30
        await _eventually(
            prometheus,
            'dagmonitor_distributor_mails_sent_total{category="dagmonitor_daily"}'
            f" >= {2 * len(RECIPIENTS)}",
            wait,
        )
        await _eventually(prometheus, "dagmonitor_distributor_provisions_published_total > 0", 20)
        await _eventually(prometheus, 'dagmonitor_consumer_lag{service="classifier"}', 20)
        await asyncio.sleep(3)  # a few more scrapes and rule evaluations
        run.mails = len(smtp.mails())

        for where, expr in dashboard_targets():
            run.panels.append(await _evaluate(prometheus, where, expr))
        for rule in alert_rules():
            run.alert_exprs.append(await _evaluate(prometheus, rule["alert"], rule["expr"]))
        for name in sorted(metric_names()):
            run.metric_presence[name] = await prometheus.series_count(f'{{__name__="{name}"}}')
        rules = await prometheus.api("rules")
        run.rules = [r for g in rules["data"]["groups"] for r in g["rules"]]
        run.alerts_before_kill = (await prometheus.api("alerts"))["data"]["alerts"]
        run.metrics = {name: _scrape(p.port) for name, p in processes.items()}

        processes["ingest"].kill()
        deadline = loop.time() + 20
        while loop.time() < deadline:
            run.alerts_after_kill = (await prometheus.api("alerts"))["data"]["alerts"]
            if any(
                a["labels"]["alertname"] == "DagmonitorServiceDown" for a in run.alerts_after_kill
            ):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # the last spans leave the services within 300 ms
        run.spans = list(receiver.spans)
        run.seconds = loop.time() - started
        yield run
    finally:
        for process in processes.values():
            process.stop()
        if granted:
            await remove_acls(stack, granted, settings.topic_prefix)
        prometheus.stop()
        await receiver.stop()
        smtp.stop()
        conn = await asyncpg.connect(stack.database_url.get_secret_value())
        try:
            for schema in schemas.values():
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()


async def _evaluate(prometheus: PrometheusServer, where: str, expr: str) -> QueryResult:
    answer = await prometheus.query(expr)
    series = len(answer["data"]["result"]) if answer["status"] == "success" else 0
    return QueryResult(where, expr, answer["status"], answer.get("error"), series)


def metric_names() -> set[str]:
    """Every metric name the alert rules and dashboards refer to."""
    texts = [expr for _, expr in dashboard_targets()] + [r["expr"] for r in alert_rules()]
    return {name for text in texts for name in re.findall(r"\b(dagmonitor_[a-z_]+|up)\b", text)}
