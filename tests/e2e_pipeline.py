"""The whole pipeline for end-to-end tests: every service as a real process, on one topic
prefix and its own PostgreSQL schemas, mailing to a private SMTP sink process."""

from __future__ import annotations

import asyncio
import csv
import email
import io
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import asyncpg

from dagmonitor.settings import DagmonitorSettings
from dagmonitor.topic_admin import apply_topics
from dagmonitor_cli.generate import Generator
from dagmonitor_cli.platform.process import free_port
from dagmonitor_cli.platform.services import available
from dagmonitor_cli.platform.smtp_sink import sink_ready
from services.ingest.cli import publish_file
from tests.consents import grant_consents
from tests.kafkautil import as_service, grant_services
from tests.processes import ServiceProcess

TEAM = "WK034405,WK034404,WK034402"
RECIPIENTS = {
    "safety_unit_officer": ["veiligheid@gemeente.test.invalid"],
    "enforcement_meeting_member": ["overleg@gemeente.test.invalid"],
    "enforcement_team_leader": ["teamleider@gemeente.test.invalid"],
}
# The OM last: a victim's request reaches it after the burglary team (dagmonitor/gates.py).
DECIDERS = (
    ("inbraakteam-1", "POLICE_BURGLARY_TEAM"),
    ("wijkchef-1", "POLICE_DISTRICT"),
    ("om-1", "OM"),
)


@dataclass
class Mail:
    path: Path
    message: EmailMessage

    @property
    def to(self) -> list[str]:
        return list(self.message.get_all("X-Envelope-To") or [])

    @property
    def text(self) -> str:
        parts = []
        for part in self.message.walk():
            if part.get_content_maintype() == "text":
                parts.append(str(part.get_content()))
        return "\n".join(parts)

    def csv_rows(self) -> list[dict[str, str]]:
        for part in self.message.walk():
            if part.get_content_type() == "text/csv":
                text = str(part.get_content()).lstrip("\ufeff")
                _marking, _, table = text.partition("\n")  # the first line: VERTROUWELIJK
                return list(csv.DictReader(io.StringIO(table), delimiter=";"))
        return []


class Pipeline:
    def __init__(self, stack: DagmonitorSettings, tmp: Path) -> None:
        self.tmp = tmp
        self.tag = uuid.uuid4().hex[:8]
        self.settings = DagmonitorSettings.load(topic_prefix=f"test-e2e{self.tag}.")
        self.mail_dir = tmp / "mail"
        self.smtp_port = free_port()
        self.smtp: subprocess.Popen[bytes] | None = None
        from services.approval.tokens import init_dev_key

        self.key_file = tmp / "dev-key.pem"
        init_dev_key(self.key_file)
        self.env = {
            "DAGMONITOR_TOPIC_PREFIX": self.settings.topic_prefix,
            "DAGMONITOR_TEAM_DISTRICTS": TEAM,
            "DAGMONITOR_MUNICIPALITY_CODE": "GM0344",
            "DAGMONITOR_SMTP_URL": f"smtp://127.0.0.1:{self.smtp_port}",
            "DAGMONITOR_SMTP_ALLOW_PLAINTEXT": "true",
            "DAGMONITOR_SMTP_BACKOFF_INITIAL_SECONDS": "0.2",
            "DAGMONITOR_DISTRIBUTOR_RECIPIENTS": json.dumps(RECIPIENTS),
            "DAGMONITOR_NOTICE_INTERVAL_SECONDS": "1",
            "DAGMONITOR_OUTBOX_POLL_SECONDS": "0.5",
            "DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE": str(self.key_file),
            "DAGMONITOR_APPROVAL_RELAY_INTERVAL_SECONDS": "0.2",
            "DAGMONITOR_LOG_LEVEL": "INFO",
        }
        self.processes: dict[str, ServiceProcess] = {}

    def schema(self, name: str) -> str:
        return f"e2e{self.tag}_{name}"

    def start_smtp(self) -> None:
        """Start the SMTP sink (again, after ``stop_smtp``: the mails so far stay)."""
        self.smtp = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagmonitor_cli.platform.smtp_sink",
                "--dir",
                str(self.mail_dir),
                "--port",
                str(self.smtp_port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if sink_ready("127.0.0.1", self.smtp_port):
                break
            time.sleep(0.1)

    def stop_smtp(self) -> None:
        """Stop the SMTP sink: the distributor's mails wait in its outbox meanwhile."""
        if self.smtp is not None:
            self.smtp.terminate()
            self.smtp.wait(10)
            self.smtp = None

    async def start(self) -> None:
        await apply_topics(self.settings)
        # Each service as its own principal, with only the table's ACLs for this deployment
        # (left on the broker after the run: literal names of a prefix no one uses again).
        await grant_services(self.settings)
        self.start_smtp()
        for name in available():
            env = {
                **self.env,
                **as_service(self.settings, name),
                "DAGMONITOR_DB_SCHEMA": self.schema(name),
            }
            self.processes[name] = ServiceProcess(name, env, self.tmp)
        # All at once: a service's start-up is mostly its own imports and group joins.
        for process in self.processes.values():
            process.launch()
        for process in self.processes.values():
            await asyncio.to_thread(process.wait_ready, 90)
        if "approval" in self.processes and "distributor" in self.processes:
            await self.grant_consents()

    async def grant_consents(self) -> None:
        """The OM's standing consents, so the Dagmonitor and vehicle notices go out."""
        await grant_consents(
            self._approval_settings().approval_api_url,
            self._approval_settings(),
            database_url=self.settings.database_url.get_secret_value(),
            distributor_schema=self.schema("distributor"),
        )

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait_stopped()
        self.stop_smtp()

    def lines(self, day: date, count: int, seed: int = 5) -> list[dict[str, Any]]:
        generator = Generator(seed, day, "GM0344")
        return [*generator.incidents(count), *generator.notices(4)]

    async def publish(self, lines: list[dict[str, Any]]) -> None:
        path = self.tmp / f"day-{uuid.uuid4().hex[:6]}.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        counts = await publish_file(self.settings, path, quiet=True)
        assert counts["refused"] == 0

    def _approval_settings(self) -> Any:
        from services.approval.config import ApprovalSettings

        return ApprovalSettings.load(
            approval_dev_signing_key_file=self.key_file,
            approval_api_url=f"http://127.0.0.1:{self.processes['approval'].port}",
        )

    async def pending(self) -> dict[str, list[dict[str, Any]]]:
        from services.approval.client import ApprovalClient
        from services.approval.tokens import issue_dev_token

        settings = self._approval_settings()
        result = {}
        for sub, role in DECIDERS:
            client = ApprovalClient(
                settings.approval_api_url, issue_dev_token(settings, sub=sub, roles=[role])
            )
            result[role] = await client.list("pending", 500)
        return result

    async def decide_all(self, reject: set[str] = frozenset()) -> dict[str, str]:  # type: ignore[assignment]
        """Approve every pending request (reject those in ``reject``); returns id -> decision."""
        from services.approval.client import ApprovalClient
        from services.approval.tokens import issue_dev_token

        settings = self._approval_settings()
        decided = {}
        for sub, role in DECIDERS:
            client = ApprovalClient(
                settings.approval_api_url, issue_dev_token(settings, sub=sub, roles=[role])
            )
            for request in await client.list("pending", 500):
                rid = request["request_id"]
                if rid in reject:
                    await client.decide(rid, "reject", "Lopend onderzoek")
                    decided[rid] = "reject"
                else:
                    await client.decide(rid, "approve", "Geen bezwaar")
                    decided[rid] = "approve"
        return decided

    async def report(self, kind: str, day: date) -> None:
        from services.distributor.config import DistributorSettings
        from services.distributor.ondemand import report_on_demand

        settings = DistributorSettings.load(
            topic_prefix=self.settings.topic_prefix,
            db_schema=self.schema("distributor"),
            smtp_url=f"smtp://127.0.0.1:{self.smtp_port}",
            smtp_allow_plaintext=True,
            distributor_recipients=RECIPIENTS,
        )
        run = await report_on_demand(settings, kind, day)
        assert run.complete, run

    async def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.settings.database_url.get_secret_value())
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def settled(
        self, sql: str, *, at_least: int = 1, timeout: float = 90.0, settle: float = 3.0
    ) -> int:
        """Poll a count until it is at least ``at_least`` and stops changing."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            value = int((await self.query(sql))[0][0])
            if value != last:
                last, since = value, time.monotonic()
            elif value >= at_least and time.monotonic() - since >= settle:
                return value
            await asyncio.sleep(0.5)
        raise AssertionError(f"{sql}: stuck at {last}")

    def mails(self) -> list[Mail]:
        return [
            Mail(p, email.message_from_bytes(p.read_bytes(), policy=default))  # type: ignore[arg-type]
            for p in sorted(self.mail_dir.glob("*.eml"))
        ]
