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
5. photographs every mail as its recipient sees it (headless Chromium at a phone's 390 px,
   ``dagmonitor_cli/browser.py``) into ``.local/screenshots/``;
6. prints what happened: records in, entries, decisions, the mails with their files under
   ``.local/mail/``, the screenshots, the provision register's size, and each service's
   /metrics URL.

Before the records, the police deliver the photos of two in three persons with a photo
(``PUT /v1/photos/{id}`` at ingest, synthetic portraits): the notices show those inline and
say of the others that the photo has not arrived.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

import asyncpg

from dagmonitor.clock import last_daily_run, local_date
from dagmonitor.errors import DagmonitorError
from dagmonitor.settings import DagmonitorSettings
from dagmonitor_cli.browser import PHONE_WIDTH, BrowserError, browser, mail_html
from dagmonitor_cli.generate import AMSTERDAM, Generator, portrait
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
    screenshots: list[Path] = field(default_factory=list)
    photos: int = 0
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
    token = (LocalStack().root / "ingest" / "token").read_text().strip()
    ingest_url = f"http://127.0.0.1:{LocalStack().services.ports['ingest']}"
    summary.photos = await deliver_photos(lines, ingest_url, token)
    echo(f"delivered {summary.photos} photos through ingest (PUT /v1/photos/{{id}})")
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
    summary.screenshots = await photograph(summary.mails, LocalStack().root / "screenshots", echo)
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
    echo(f"photos delivered             {summary.photos}")
    echo(f"screenshots (390 px)         {len(summary.screenshots)}")
    if summary.screenshots:
        echo(f"  {summary.screenshots[0].parent}/")
    echo(f"provisions registered        {summary.provisions}")
    echo("metrics:")
    for url in summary.metrics:
        echo(f"  {url}")


def _photo_refs(lines: list[dict[str, Any]]) -> list[str]:
    persons = [p for line in lines for p in line.get("persons", [])]
    persons += [line["person"] for line in lines if "person" in line]
    return sorted({p["photo_ref"] for p in persons if p.get("photo_ref")})


async def deliver_photos(lines: list[dict[str, Any]], ingest_url: str, token: str) -> int:
    """PUT a synthetic portrait for two in three of the records' photo references to ingest
    at ``ingest_url``, with a police publisher's ``token``, as the police would; returns how
    many were accepted."""
    import aiohttp

    url = f"{ingest_url}/v1/photos"
    accepted = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        for index, ref in enumerate(_photo_refs(lines)):
            if index % 3 == 2:  # not delivered (yet): the mail says so
                continue
            photo_id = ref.removeprefix("bvh://photos/")
            async with session.put(
                f"{url}/{photo_id}",
                data=portrait(photo_id),
                headers={"Content-Type": "image/jpeg"},
            ) as response:
                if response.status != 202:
                    raise DagmonitorError(f"ingest refused a demo photo: {response.status}")
                accepted += 1
    return accepted


async def photograph(mails: list[Path], folder: Path, echo: Echo) -> list[Path]:
    """A screenshot of each mail's HTML at a phone's width, as ``<mail>.png``; none (with a
    line saying why) when Chromium is missing."""
    import email
    from email.message import EmailMessage
    from email.policy import default

    shots = []
    try:
        async with browser() as page:
            for mail in mails:
                message = email.message_from_bytes(mail.read_bytes(), policy=default)
                assert isinstance(message, EmailMessage)
                shot = folder / f"{mail.stem}.png"
                await page.screenshot(mail_html(message), PHONE_WIDTH, shot)
                shots.append(shot)
    except BrowserError as exc:
        echo(f"no screenshots: {exc}")
    return shots


def default_day(now: datetime | None = None, report_time: time_of_day = time_of_day(7, 0)) -> date:
    """The day before the one the distributor's catch-up reports on: the distributor sends the
    latest scheduled Dagmonitor (for the day before that run) as soon as it starts, before the
    demo has published anything, so a demo of that day would find an empty report sent. Before
    07:00 the latest run was yesterday's, reporting on the day before yesterday."""
    latest_run = last_daily_run(now or datetime.now(UTC), report_time, AMSTERDAM)
    return local_date(latest_run, AMSTERDAM) - timedelta(days=2)
