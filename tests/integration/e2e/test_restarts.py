"""The broker and PostgreSQL restart during a run: the pipeline resumes by itself."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest

from dagmonitor.settings import DagmonitorSettings
from dagmonitor_cli.platform import kafka, postgres, process
from dagmonitor_cli.platform.stack import LocalStack
from tests.e2e_pipeline import Pipeline
from tests.integration.e2e.test_end_to_end import _expected_entries

pytestmark = pytest.mark.integration
DAY = date(2026, 11, 18)


def _restart_kafka(stack: LocalStack) -> None:
    state = stack._load_state()["kafka"]
    pid = process.read_pid(stack.kafka.pid_file)
    assert pid is not None
    process.stop_pid(pid, timeout=60)
    port = int(state.address.rsplit(":", 1)[1])
    controller = stack.settings.local_kafka_controller_port
    kafka.start(stack.kafka, port=port, controller_port=controller, timeout=120)


def _restart_postgres(stack: LocalStack) -> None:
    port = postgres.running_port(stack.postgres)
    assert port is not None
    postgres.stop(stack.postgres)
    postgres.start(stack.postgres, port=port)


async def test_pipeline_resumes_after_broker_and_postgres_restarts(
    stack: DagmonitorSettings, tmp_path: Path
) -> None:
    local = LocalStack()
    if not all(c.managed for c in local._load_state().values()):
        pytest.skip("the servers are reused from the environment; this test restarts its own")
    pipeline = Pipeline(stack, tmp_path)
    await pipeline.start()
    try:
        lines = pipeline.lines(DAY, 120, seed=13)
        expected = _expected_entries(lines, DAY)
        await pipeline.publish(lines[:60])
        await asyncio.to_thread(_restart_kafka, local)
        await pipeline.publish(lines[60:])
        await asyncio.to_thread(_restart_postgres, local)

        schema = pipeline.schema("distributor")
        count = await pipeline.settled(
            f"SELECT count(*) FROM {schema}.entries", at_least=len(expected), timeout=180
        )
        assert count >= len(expected)
        for _ in range(60):
            if sum(map(len, (await pipeline.pending()).values())):
                break
            await asyncio.sleep(2)
        assert await pipeline.decide_all()
        await pipeline.report("daily", DAY)
        daily = [
            m for m in pipeline.mails() if m.message["Subject"] == f"Dagmonitor {DAY:%d-%m-%Y}"
        ]
        assert len(daily) == 3
        assert all(len(m.csv_rows()) == len(expected) for m in daily)
        for name, service in pipeline.processes.items():
            assert service.proc is not None and service.proc.poll() is None, name
            assert service.ready(), name
    finally:
        pipeline.stop()
