"""How many decisions per second the approval API sustains on this machine.

Runs the real service (``python -m services.approval``) as a subprocess against the local
stack, with its own PostgreSQL schema and topic prefix; seeds N pending requests directly in
PostgreSQL; then fires ``POST /v1/requests/{id}/decision`` (approve) over HTTP with bounded
concurrency. Baselines measured in the same run, same concurrency:

- ``auth_get``: an authenticated ``GET /v1/requests/{missing id}`` (token check, one indexed
  SELECT, a 404): the API's fixed cost;
- ``insert``: a bare committed single-row INSERT loop on the same PostgreSQL.

Each decision is a transaction with a row lock, an UPDATE, an audit INSERT and two outbox
INSERTs (decision + approved payload); the relay publishes them to Kafka concurrently, and
the time until the outbox is drained is reported too.

    .venv/bin/dagmonitor up
    .venv/bin/python bench/approval_decisions.py --requests 3000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg

from dagmonitor import kafka_clients

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.support import drop_schema  # noqa: E402
from dagmonitor.codec import APPROVAL_REQUEST, default_codec  # noqa: E402
from dagmonitor.db import migrate_service  # noqa: E402
from dagmonitor.topic_admin import apply_topics  # noqa: E402
from dagmonitor.topics import get  # noqa: E402
from services.approval import domain  # noqa: E402
from services.approval.app import MIGRATIONS  # noqa: E402
from services.approval.config import ApprovalSettings  # noqa: E402
from services.approval.outbox import RELAY_TOPICS  # noqa: E402
from services.approval.tokens import init_dev_key, issue_dev_token  # noqa: E402
from tests.unit.approval.samples import approval_request  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _seed(settings: ApprovalSettings, count: int) -> list[str]:
    """N pending SUSPECT requests, written straight into the schema."""
    codec = default_codec()
    rows, subjects = [], []
    for _ in range(count):
        record = approval_request(domain.Category.SUSPECT)
        request = domain.parse_request(record)
        deadline = request.created_at + timedelta(days=3650)
        rows.append(
            (
                request.request_id,
                "SUSPECT",
                "OM",
                request.mk_code,
                request.district_code,
                request.created_at,
                deadline,
            )
        )
        subjects.append((request.request_id, codec.encode(APPROVAL_REQUEST, record)))
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        schema = settings.db_schema
        await conn.copy_records_to_table(
            "requests",
            schema_name=schema,
            records=rows,
            columns=[
                "request_id",
                "category",
                "approver_role",
                "mk_code",
                "district_code",
                "created_at",
                "expires_at",
            ],
        )
        await conn.copy_records_to_table("request_subjects", schema_name=schema, records=subjects)
    finally:
        await conn.close()
    return [row[0] for row in rows]


async def _fire(
    count: int, concurrency: int, call: Callable[[int], Awaitable[int]]
) -> tuple[float, list[float], dict[int, int]]:
    """Run ``call(i)`` for i < count with at most ``concurrency`` in flight."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            started = time.perf_counter()
            status = await call(i)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, statuses


def _describe(name: str, count: int, elapsed: float, latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    result = {
        "per_second": count / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
    }
    print(
        f"{name:<10} {count:>6} in {elapsed:6.2f} s  {result['per_second']:8.0f}/s  "
        f"p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms"
    )
    return result


async def _bare_inserts(
    settings: ApprovalSettings, count: int, concurrency: int
) -> dict[str, float]:
    pool = await asyncpg.create_pool(
        settings.database_url.get_secret_value(), min_size=concurrency, max_size=concurrency
    )
    assert pool is not None
    table = f"{settings.db_schema}.bench_inserts"
    await pool.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, at timestamptz)")

    async def insert(i: int) -> int:
        await pool.execute(f"INSERT INTO {table} VALUES ($1, now())", i)
        return 200

    try:
        elapsed, latencies, _ = await _fire(count, concurrency, insert)
    finally:
        await pool.close()
    return _describe("insert", count, elapsed, latencies)


async def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if process.poll() is not None:
                raise SystemExit(f"the service exited with status {process.returncode}")
            try:
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the service did not become ready in 30 s")


async def _outbox_drained(settings: ApprovalSettings, timeout: float = 300) -> float:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    started = time.perf_counter()
    try:
        while await conn.fetchval(
            f"SELECT count(*) FROM {settings.db_schema}.outbox WHERE published_at IS NULL"
        ):
            if time.perf_counter() - started > timeout:
                raise SystemExit("the outbox did not drain")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def _cleanup(settings: ApprovalSettings) -> None:
    await drop_schema(settings, settings.db_schema)
    admin = kafka_clients.admin(settings)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def bench(count: int, concurrency: int) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="approval-bench-"))
    key_file, _ = init_dev_key(workdir / "dev-signing-key.pem")
    port = _free_port()
    settings = ApprovalSettings.load(
        db_schema=f"approval_bench_{uuid.uuid4().hex[:8]}",
        topic_prefix=f"test-bench-{uuid.uuid4().hex[:8]}.",
        http_port=port,
        approval_dev_signing_key_file=key_file,
    )
    specs = [get(name) for name in (*RELAY_TOPICS, "approval.requests", "pipeline.deadletter")]
    await apply_topics(settings, specs=specs)
    await migrate_service(settings, MIGRATIONS)
    ids = await _seed(settings, count)
    token = issue_dev_token(settings, sub="bench-om", roles=["OM"], minutes=60)
    env = {
        **os.environ,
        "DAGMONITOR_DB_SCHEMA": settings.db_schema,
        "DAGMONITOR_TOPIC_PREFIX": settings.topic_prefix,
        "DAGMONITOR_HTTP_PORT": str(port),
        "DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE": str(key_file),
        "DAGMONITOR_APPROVAL_DB_POOL_SIZE": str(min(concurrency, 20)),
        "DAGMONITOR_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.approval"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    results: dict[str, object] = {
        "requests": count,
        "concurrency": concurrency,
        "cpus": os.cpu_count(),
    }
    try:
        await _wait_ready(url, process)
        headers = {"Authorization": f"Bearer {token}"}
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

            async def missing(_i: int) -> int:
                async with session.get(f"{url}/v1/requests/req-missing") as response:
                    await response.read()
                    return response.status

            async def approve(i: int) -> int:
                async with session.post(
                    f"{url}/v1/requests/{ids[i]}/decision", json={"decision": "approve"}
                ) as response:
                    await response.read()
                    return response.status

            await _fire(min(200, count), concurrency, missing)  # warm-up
            elapsed, latencies, statuses = await _fire(count, concurrency, missing)
            assert statuses == {404: count}, statuses
            results["auth_get"] = _describe("auth_get", count, elapsed, latencies)
            elapsed, latencies, statuses = await _fire(count, concurrency, approve)
            assert statuses == {200: count}, statuses
            results["decisions"] = _describe("decisions", count, elapsed, latencies)
        drained = await _outbox_drained(settings)
        results["outbox_drained_after_s"] = drained
        print(f"outbox drained {drained:.2f} s after the last decision ({2 * count} records)")
        results["insert"] = await _bare_inserts(settings, count, concurrency)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        await _cleanup(settings)
    decisions = results["decisions"]["per_second"]  # type: ignore[index]
    results["ratio_to_auth_get"] = decisions / results["auth_get"]["per_second"]  # type: ignore[index]
    results["ratio_to_insert"] = decisions / results["insert"]["per_second"]  # type: ignore[index]
    print(
        f"decisions/s = {decisions:.0f}; {results['ratio_to_auth_get']:.2f} x the authenticated "
        f"GET, {results['ratio_to_insert']:.2f} x a bare INSERT"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="Also print the results as JSON.")
    args = parser.parse_args()
    results = asyncio.run(bench(args.requests, args.concurrency))
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
