"""Shared telemetry: JSON log lines, health endpoints, trace context in Kafka headers, spans
that propagate without recording; the services' garbage collector settings."""

from __future__ import annotations

import gc
import json
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry import trace

from dagmonitor.service import GC_THRESHOLDS, tune_garbage_collector
from dagmonitor.telemetry import (
    RECORDS_IN,
    PropagatingTracer,
    configure_logging,
    configure_tracing,
    extract_trace_context,
    get_logger,
    health_app,
    inject_trace_headers,
)


def test_logs_are_one_json_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("ingest", "INFO")
    get_logger("test").info("record_accepted", topic="bvh.incidents", count=3)
    logging.getLogger("aiokafka").warning("library line %s", "too")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["event"] == "record_accepted"
    assert lines[0]["service"] == "ingest"
    assert lines[0]["count"] == 3
    assert lines[0]["level"] == "info"
    assert lines[1]["event"] == "library line too"
    assert lines[1]["logger"] == "aiokafka"


async def test_health_metrics_and_readiness() -> None:
    state = {"kafka": True}

    async def kafka_ready() -> bool:
        return state["kafka"]

    async def broken() -> bool:
        raise ConnectionError("postgresql://user:secret@db refused")

    RECORDS_IN.labels("ingest", "bvh.incidents").inc()
    async with TestClient(TestServer(health_app({"kafka": kafka_ready}))) as client:
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 200
        assert (await ready.json())["checks"] == {"kafka": True}
        state["kafka"] = False
        assert (await client.get("/readyz")).status == 503
        metrics = await client.get("/metrics")
        assert metrics.status == 200
        body = await metrics.text()
        assert 'dagmonitor_records_in_total{service="ingest",topic="bvh.incidents"}' in body

    async with TestClient(TestServer(health_app({"db": broken}))) as client:
        response = await client.get("/readyz")
        assert response.status == 503
        assert "secret" not in await response.text()


def test_trace_context_crosses_kafka_headers() -> None:
    configure_tracing("classifier")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("produce") as span:
        headers = inject_trace_headers([("other", b"x")])
        sent = span.get_span_context()
    assert ("other", b"x") in headers
    (traceparent,) = [value for key, value in headers if key == "traceparent"]
    assert traceparent.decode().split("-")[1] == f"{sent.trace_id:032x}"

    ctx = extract_trace_context(headers)
    with tracer.start_as_current_span("consume", context=ctx) as child:
        assert child.get_span_context().trace_id == sent.trace_id
        assert child.parent is not None
        assert child.parent.span_id == sent.span_id


def test_no_trace_headers_give_an_empty_context() -> None:
    ctx = extract_trace_context(None)
    assert trace.get_current_span(ctx).get_span_context().is_valid is False


def test_a_current_span_is_current_inside_its_block_only() -> None:
    """``PropagatingTracer.start_as_current_span`` (one small context manager): the span is
    current inside the block, a child of the given context, the one before it after, also
    when the block raises."""
    tracer = PropagatingTracer()
    with tracer.start_as_current_span("outer") as outer:
        ctx = trace.set_span_in_context(outer)
        with tracer.start_as_current_span("inner", context=ctx) as inner:
            assert trace.get_current_span() is inner
            assert inner.get_span_context().trace_id == outer.get_span_context().trace_id
            assert inner.get_span_context().span_id != outer.get_span_context().span_id
        assert trace.get_current_span() is outer
        with pytest.raises(ValueError), tracer.start_as_current_span("failing"):
            raise ValueError("in the block")
        assert trace.get_current_span() is outer
    assert not trace.get_current_span().get_span_context().is_valid


def test_services_collect_young_garbage_less_often() -> None:
    before = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
