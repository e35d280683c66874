"""Telemetry added for operations: the OTLP exporter as configured,
trace links for steps that act on stored records, Kafka client security settings."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from dagmonitor.settings import DagmonitorSettings
from dagmonitor.streaming import CONSUMER_LAG
from dagmonitor.telemetry import current_traceparent, links_to
from tests.integration.ops.harness import OtlpReceiver

REPO = Path(__file__).resolve().parents[3]


def _lag(service: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["topic"], s.labels["partition"]): s.value
        for metric in CONSUMER_LAG.collect()
        for s in metric.samples
        if s.labels["service"] == service
    }


def test_trace_links_to_stored_trace_contexts() -> None:
    tracer = TracerProvider().get_tracer("test")
    assert current_traceparent() is None
    with tracer.start_as_current_span("consume") as span:
        stored = current_traceparent()
    assert stored is not None
    context = span.get_span_context()
    assert stored.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    links = links_to([stored, None, "garbage", stored])
    assert [(ln.context.trace_id, ln.context.span_id) for ln in links] == [
        (context.trace_id, context.span_id)
    ]
    assert links[0].context.is_remote
    assert isinstance(links[0], trace.Link)


async def test_otlp_exporter_sends_spans_where_configured() -> None:
    receiver = await OtlpReceiver().start()
    script = textwrap.dedent(
        f"""
        from dagmonitor.telemetry import configure_tracing
        provider = configure_tracing("distributor", "{receiver.endpoint}")
        with provider.get_tracer("t").start_as_current_span("distributor send mail"):
            pass
        provider.shutdown()
        """
    )
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, cwd=REPO, stderr=subprocess.PIPE
        )
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, stderr.decode()
    finally:
        await receiver.stop()
    # The base URL was completed to /v1/traces; the span carries the service's name.
    assert [(s.service, s.name) for s in receiver.spans] == [
        ("distributor", "distributor send mail")
    ]


def test_tracing_export_is_off_by_default() -> None:
    assert DagmonitorSettings().otlp_endpoint is None


def test_kafka_security_settings() -> None:
    plain = DagmonitorSettings(kafka_bootstrap="a:9092,b:9092")
    assert plain.kafka_client_options() == {"bootstrap_servers": ["a:9092", "b:9092"]}
    assert plain.kafka_ssl_context() is None
    secure = DagmonitorSettings(
        kafka_bootstrap="dagmonitor-kafka-bootstrap:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="dagmonitor-ingest",
        kafka_sasl_password="s3cret",
    )
    options = secure.kafka_client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "dagmonitor-ingest"
    assert options["sasl_plain_password"] == "s3cret"
    assert options["ssl_context"] is not None
    assert "s3cret" not in repr(secure)
    with pytest.raises(ValidationError, match="SASL_USERNAME"):
        DagmonitorSettings(kafka_security_protocol="SASL_SSL")
