"""How long rendering and sending one daily Dagmonitor takes, on the local stack.

``python -m bench.report_mail --entries 10000`` seeds a throw-away schema with
generated entries on one day, starts a private SMTP server (the project's sink handler) in a
temporary folder, then times the two steps the service runs: render and store the report for
every entitled recipient (``ensure_daily``), and send them (``send_due``). The schema and the
folder are removed afterwards. Every entry is invented.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from aiosmtpd.controller import Controller

from bench.support import drop_schema
from dagmonitor_cli.platform.smtp_sink import MaildirHandler
from services.distributor.app import open_store
from services.distributor.config import DistributorSettings
from services.distributor.dispatch import Dispatcher
from services.distributor.sender import OutboxSender

_CODES = [
    ("A10", "DIEFSTAL UIT/VANAF PERSONENAUTO", True, "ter hoogte van"),
    ("A20", "GEKWAL. DIEFSTAL IN/UIT WONING", True, None),
    ("A72", "DIEFSTAL FIETS", False, None),
    ("C50", "VANDALISME/BALDADIGHEID", False, None),
    ("E35", "MELDING OVERLAST JEUGD", False, None),
    ("F530", "BEDREIGING", False, None),
]


def _entries(count: int, day: date, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = []
    for n in range(count):
        code, description, house_level, qualifier = rng.choice(_CODES)
        district = rng.randrange(12)
        rows.append(
            {
                "registration_number": f"PL0900-BENCH{n:07d}",
                "version": 1,
                "mk_code": code,
                "mk_description": description,
                "reported_at": start + timedelta(seconds=rng.randrange(23 * 3600)),
                "municipality_code": "GM0344",
                "district_code": f"WK0344{district:02d}",
                "district_name": f"Wijk {district:02d}",
                "neighbourhood_name": f"Buurt {rng.randrange(80):02d}",
                "city": "Utrecht",
                "postcode": f"35{rng.randrange(10, 99)}{rng.choice('ABCDEFGH')}{rng.choice('AB')}",
                "street": "Bankstraat" if house_level else None,
                "house_number": rng.randrange(1, 300) if house_level else None,
                "location_qualifier": qualifier,
            }
        )
    return rows


async def run(entries: int, seed: int) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mail_dir = Path(tempfile.mkdtemp(prefix="dagmonitor-bench-"))
    controller = Controller(MaildirHandler(mail_dir), hostname="127.0.0.1", port=port)
    controller.start()
    settings = DistributorSettings.load(
        db_schema=f"distributor_bench_{uuid.uuid4().hex[:8]}",
        smtp_url=f"smtp://127.0.0.1:{port}",
        smtp_allow_plaintext=True,
    )
    store = await open_store(settings)
    day = date(2026, 11, 27)
    try:
        for value in _entries(entries, day, seed):
            await store.upsert_entry(value)
        recipients = len([a for addresses in settings.recipients.values() for a in addresses])
        started = time.perf_counter()
        outcome = await Dispatcher(store, settings).ensure_daily(day)
        rendered = time.perf_counter()
        sent = await OutboxSender(store, settings).send_due()
        done = time.perf_counter()
        sizes = [p.stat().st_size for p in mail_dir.glob("*.eml")]
        print(
            f"entries={outcome.records} recipients={recipients} mails_sent={len(sent.sent)} "
            f"mail_size_kib={max(sizes) // 1024 if sizes else 0}"
        )
        print(
            f"render+store={rendered - started:.2f}s send+register={done - rendered:.2f}s "
            f"total={done - started:.2f}s"
        )
    finally:
        await store.pool.close()
        await drop_schema(settings, settings.db_schema)
        controller.stop()
        for path in mail_dir.glob("*"):
            path.unlink()
        mail_dir.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(run(args.entries, args.seed))


if __name__ == "__main__":
    main()
