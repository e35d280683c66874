"""``dagmonitor demo``: one day of the covenant, end to end, on the local stack.

1. brings the stack up: Kafka, PostgreSQL, the SMTP sink and the five services;
2. publishes a generated day of incidents (and person notices) as a police system would;
3. approves the pending requests as the burglary team, the district and the OM would, through
   the approval API with development tokens (rejecting a few, as an OM officer does when an
   investigation would be harmed); a victim's request reaches the OM after the burglary team.
   The Dagmonitor and vehicle notices go out under the OM's standing consents, which
   ``dagmonitor up`` records for the local stack (``dagmonitor consent list``);
4. sends the daily Dagmonitor and the bi-weekly hotspot report for that day, and waits for the
   notices of the approved persons, victims and stolen vehicles;
5. prints what happened: records in, entries, decisions, the mails with their files under
   ``.local/mail/``, the provision register's size, and each service's /metrics URL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from dagmonitor.errors import DagmonitorError
from dagmonitor.settings import DagmonitorSettings
from dagmonitor_cli.generate import AMSTERDAM, Generator
from dagmonitor_cli.platform.services import available
from dagmonitor_cli.platform.stack import LocalStack
from deploy.k8s.access import BY_SERVICE, POLICE_PUBLISHER

Echo = Callable[[str], None]
# Who decides, as whom, and which of their requests the demo rejects (every fifth of the OM's).
# The OM goes last: a victim's request reaches it after the burglary team's approval (the
# chain of dagmonitor/gates.py: inbrakenteam, then OM).
DECIDERS = (
    ("inbraakteam-demo", "POLICE_BURGLARY_TEAM", "Afgestemd met het inbraakteam"),
    ("wijkchef-demo", "POLICE_DISTRICT", "Overlast in de wijk bevestigd"),
    ("om-officier-demo", "OM", "Geen opsporings- of vervolgingsbelang geschaad"),
)
REJECT_EVERY = 5


@dataclass
class Summary:
    published: int = 0
    entries: int = 0
    approved: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    mails: list[Path] = field(default_factory=list)
    provisions: int = 0
    metrics: list[str] = field(default_factory=list)


async def _wait(what: str, probe: Callable[[], Any], timeout: float, settle: float = 3.0) -> Any:
    """Poll ``probe`` until its answer stops changing for ``settle`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        value = await probe()
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= settle and value:
            return value
        await asyncio.sleep(0.5)
    if last:
        return last
    raise DagmonitorError(f"the demo waited {timeout:.0f} s for {what} in vain")


async def _count(url: str, sql: str, *args: Any) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def run_demo(day: date, count: int, seed: int, echo: Echo) -> Summary:
    """Everything after ``up``: publish, decide, report, summarise."""
    from services.approval.client import ApprovalClient
    from services.approval.config import ApprovalSettings
    from services.approval.tokens import issue_dev_token
    from services.distributor.config import DistributorSettings
    from services.distributor.ondemand import report_on_demand
    from services.ingest.cli import publish_file

    settings = DagmonitorSettings.load()
    db = settings.database_url.get_secret_value()
    summary = Summary()
    started = time.time()

    generator = Generator(seed, day, settings.municipality_code)
    lines = [*generator.incidents(count), *generator.notices(max(1, count // 50))]
    path = LocalStack().root / "demo" / f"bvh-{day.isoformat()}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    echo(f"publishing {len(lines)} police records of {day} ({path})")
    # As a police system publishes: the police publisher principal (ADR 0021).
    counts = await publish_file(settings.default_principal(POLICE_PUBLISHER), path)
    summary.published = counts["published"]

    echo("waiting for the classifier and the approval service")
    approval = ApprovalSettings.load()
    clients = {
        role: ApprovalClient(
            f"http://127.0.0.1:{LocalStack().services.ports['approval']}",
            issue_dev_token(approval, sub=sub, roles=[role], minutes=60),
        )
        for sub, role, _ in DECIDERS
    }

    async def pending() -> int:
        return sum([len(await client.list("pending", 500)) for client in clients.values()])

    await _wait("approval requests", pending, timeout=120)
    for _, role, reason in DECIDERS:
        client = clients[role]
        for index, request in enumerate(await client.list("pending", 500)):
            if role == "OM" and index % REJECT_EVERY == REJECT_EVERY - 1:
                await client.decide(request["request_id"], "reject", "Lopend onderzoek")
                summary.rejected[role] = summary.rejected.get(role, 0) + 1
            else:
                await client.decide(request["request_id"], "approve", reason)
                summary.approved[role] = summary.approved.get(role, 0) + 1
    echo(f"decided: approved {summary.approved}, rejected {summary.rejected}")

    summary.entries = await _wait(
        "the distributor's entries",
        lambda: _count(db, "SELECT count(*) FROM distributor.entries"),
        timeout=120,
    )
    distributor = DistributorSettings.load().default_principal(BY_SERVICE["distributor"].principal)
    for kind in ("daily", "hotspots"):
        run = await report_on_demand(distributor, kind, day)
        echo(f"{kind} report: {run.states.get('sent', 0)} mail(s) sent")
    echo("waiting for the notices of approved persons, victims and stolen vehicles")
    since = datetime.fromtimestamp(started, tz=AMSTERDAM)
    summary.provisions = await _wait(
        "the provision register",
        lambda: _count(
            db, "SELECT count(*) FROM distributor.provisions WHERE sent_at >= $1", since
        ),
        timeout=90,
        settle=20.0,
    )
    mail_dir = LocalStack().mail_dir
    summary.mails = sorted(p for p in mail_dir.glob("*.eml") if p.stat().st_mtime >= started)
    ports = LocalStack().services.ports
    summary.metrics = [f"http://127.0.0.1:{ports[name]}/metrics" for name in available()]
    return summary


def print_summary(summary: Summary, echo: Echo) -> None:
    echo("")
    echo("== Dagmonitor demo ==")
    echo(f"police records published     {summary.published}")
    echo(f"Dagmonitor entries           {summary.entries}")
    for role in sorted(set(summary.approved) | set(summary.rejected)):
        echo(
            f"requests {role:<21}approved {summary.approved.get(role, 0)}, "
            f"rejected {summary.rejected.get(role, 0)}"
        )
    echo(f"mails sent (.eml files)      {len(summary.mails)}")
    for mail in summary.mails:
        echo(f"  {mail}")
    echo(f"provisions registered        {summary.provisions}")
    echo("metrics:")
    for url in summary.metrics:
        echo(f"  {url}")


def default_day() -> date:
    """The day before yesterday: the distributor catches up yesterday's scheduled Dagmonitor
    as soon as it starts, so a demo of yesterday would find that report already sent."""
    return datetime.now(AMSTERDAM).date() - timedelta(days=2)
