"""Telemetry every service shares: JSON logs, Prometheus metrics, health endpoints, tracing.

- Logs: structlog renders one JSON object per line on stdout; the standard library's loggers
  (aiokafka, aiohttp) go through the same renderer. Log events name ids and counts,
  never personal data.
- Metrics: prometheus-client's default registry, served at ``GET /metrics``. Label values are
  service, topic, reason code or stage names: never names, addresses, plates or registration
  numbers.
- Health: ``GET /healthz`` (the process answers) and ``GET /readyz`` (every readiness check of
  the service passes: Kafka connected, Postgres reachable where used).
- Tracing: OpenTelemetry spans; the context crosses Kafka in W3C ``traceparent`` headers.
  Export over OTLP/HTTP only when ``DAGMONITOR_OTLP_ENDPOINT`` is set (off by default). A step
  that stores a record and acts on it later (the distributor's mail) keeps the record's
  ``traceparent`` and links its span to it (``current_traceparent``, ``links_to``).
"""

from __future__ import annotations

import logging
import random
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from dagmonitor.errors import ConfigError

# -- metrics shared by every service ---------------------------------------------------------

RECORDS_IN = Counter(
    "dagmonitor_records_in_total", "Records consumed or received.", ["service", "topic"]
)
RECORDS_OUT = Counter("dagmonitor_records_out_total", "Records produced.", ["service", "topic"])
RECORDS_DROPPED = Counter(
    "dagmonitor_records_dropped_total",
    "Records deliberately not passed on, by policy reason.",
    ["service", "reason"],
)
COVENANT_IN_TERM = Gauge(
    "dagmonitor_covenant_in_term",
    "1 while the covenant's term runs (after recorded renewals and early ends), else 0: "
    "nothing is provided (docs/adr/0018-covenant-term.md).",
    ["service"],
)
DEAD_LETTERS = Counter(
    "dagmonitor_dead_letters_total",
    "Records sent to pipeline.deadletter, by reason code.",
    ["service", "reason"],
)
PROCESSING_SECONDS = Histogram(
    "dagmonitor_processing_seconds",
    "Time to handle one record in one hop.",
    ["service", "stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


# -- logging ---------------------------------------------------------------------------------


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route structlog and the standard library's logging to one JSON line per event."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


# -- health and metrics over HTTP --------------------------------------------------------------

ReadinessCheck = Callable[[], Awaitable[bool]]


def health_app(
    checks: Mapping[str, ReadinessCheck] | None = None,
    routes: Iterable[web.RouteDef] = (),
    client_max_size: int = 1024**2,
) -> web.Application:
    """An aiohttp app with ``/metrics``, ``/healthz``, ``/readyz`` and the service's routes.

    ``/readyz`` answers 200 when every check returns True, else 503 with each check's result.
    """
    readiness = dict(checks or {})

    async def metrics(_request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        results: dict[str, bool] = {}
        for name, check in readiness.items():
            try:
                results[name] = bool(await check())
            except Exception:
                # A failing probe means "not ready"; its exception may carry connection
                # details, so only the boolean leaves the process.
                results[name] = False
        ready = all(results.values())
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": results},
            status=200 if ready else 503,
        )

    app = web.Application(client_max_size=client_max_size)
    app.add_routes(
        [
            web.get("/metrics", metrics),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            *routes,
        ]
    )
    return app


async def serve_http(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start ``app`` on ``host:port``; the caller keeps the runner and calls ``cleanup()``."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


# -- tracing ---------------------------------------------------------------------------------

Headers = Sequence[tuple[str, bytes]]
_PROPAGATOR = TraceContextTextMapPropagator()


class PropagatingSpan(trace.NonRecordingSpan):
    """A span that records nothing but has an id of its own under its parent's trace, so the
    ``traceparent`` a hop passes on names the hop, as a recorded span's would."""

    def __init__(self, context: trace.SpanContext, parent: trace.SpanContext | None) -> None:
        super().__init__(context)
        self.parent = parent


class PropagatingTracer(trace.Tracer):
    """Spans as the SDK makes them (new span id; the parent's trace id and flags, or a new
    sampled trace), without recording them: the tracer of a service that exports nothing.
    About a third of an SDK span's cost per record."""

    # Span and trace ids need to be unique, not secret (the SDK's own generator is this too).
    _random = random.Random()  # nosec B311

    def start_span(
        self, name: str, context: otel_context.Context | None = None, *_args: Any, **_kwargs: Any
    ) -> trace.Span:
        parent = trace.get_current_span(context).get_span_context()
        new_id = self._random.getrandbits(64) or 1
        if parent.is_valid:
            ids = trace.SpanContext(parent.trace_id, new_id, False, parent.trace_flags)
            return PropagatingSpan(ids, parent)
        flags = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        return PropagatingSpan(
            trace.SpanContext(self._random.getrandbits(128) or 1, new_id, False, flags), None
        )

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: otel_context.Context | None = None,
        *_args: Any,
        end_on_exit: bool = True,
        **_kwargs: Any,
    ) -> CurrentSpan:
        return CurrentSpan(self.start_span(name, context), end_on_exit=end_on_exit)


class CurrentSpan:
    """A span made current for a ``with`` block, as ``trace.use_span`` does, in one small
    context manager: the SDK's path is three nested generator context managers, a tenth of
    the classifier's per-record cost (ADR 0020)."""

    __slots__ = ("_end", "_span", "_token")

    def __init__(self, span: trace.Span, *, end_on_exit: bool = True) -> None:
        self._span = span
        self._end = end_on_exit
        self._token: object = None

    def __enter__(self) -> trace.Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, *_exc: object) -> None:
        otel_context.detach(self._token)  # type: ignore[arg-type]
        if self._end:
            self._span.end()


class PropagatingTracerProvider(trace.TracerProvider):
    """The tracer provider when no exporter is configured (``PropagatingTracer``)."""

    _tracer = PropagatingTracer()

    def get_tracer(self, *_args: Any, **_kwargs: Any) -> trace.Tracer:
        return self._tracer


def configure_tracing(
    service: str, otlp_endpoint: str | None = None
) -> TracerProvider | PropagatingTracerProvider:
    """Install a tracer provider for ``service``; export over OTLP/HTTP only when configured.

    Without an endpoint, spans are not recorded (nothing would read them) but still made,
    with ids of their own, so the trace context crosses every hop (``PropagatingTracer``).

    ``otlp_endpoint`` is the collector's traces URL (``http://collector:4318/v1/traces``) or
    its base URL, to which ``/v1/traces`` is added.
    """
    if not otlp_endpoint:
        # Nothing would ever read a recorded span: propagate the context only (ADR 0020).
        propagating = PropagatingTracerProvider()
        trace.set_tracer_provider(propagating)
        return propagating
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if urlsplit(otlp_endpoint).path in ("", "/"):
        # A collector's base URL: OTLP/HTTP takes traces at /v1/traces.
        otlp_endpoint = otlp_endpoint.rstrip("/") + "/v1/traces"
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError(
            "DAGMONITOR_OTLP_ENDPOINT is set but the OTLP exporter is not installed "
            "(pip install opentelemetry-exporter-otlp-proto-http)"
        ) from exc
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)
    return provider


class _HeaderSetter(Setter[list[tuple[str, bytes]]]):
    def set(self, carrier: list[tuple[str, bytes]], key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k != key]
        carrier.append((key, value.encode("ascii")))


class _HeaderGetter(Getter[Headers]):
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = [v.decode("ascii", "replace") for k, v in carrier if k.lower() == key]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [k for k, _ in carrier]


def inject_trace_headers(
    headers: Sequence[tuple[str, bytes]] = (), ctx: otel_context.Context | None = None
) -> list[tuple[str, bytes]]:
    """Kafka headers with the current (or given) trace context added as ``traceparent``."""
    span = trace.get_current_span(ctx).get_span_context()
    if span.is_valid and not span.trace_state:  # the common case, formatted directly
        carrier = [(k, v) for k, v in headers if k != "traceparent"]
        value = f"00-{span.trace_id:032x}-{span.span_id:016x}-{span.trace_flags:02x}"
        carrier.append(("traceparent", value.encode("ascii")))
        return carrier
    carrier = list(headers)
    _PROPAGATOR.inject(carrier, context=ctx, setter=_HeaderSetter())
    return carrier


_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def extract_trace_context(headers: Headers | None) -> otel_context.Context:
    """The trace context a producer put into a record's Kafka headers (empty if none)."""
    found = [v for k, v in headers or () if k.lower() in ("traceparent", "tracestate")]
    if len(found) == 1 and (match := _TRACEPARENT.fullmatch(found[0])) is not None:
        # One version-00 traceparent and no tracestate (what our producers write): parsed
        # here, a fifth of the propagator's cost per record; anything else goes to it.
        trace_id, span_id = int(match[1], 16), int(match[2], 16)
        if trace_id and span_id:
            remote = trace.SpanContext(trace_id, span_id, True, trace.TraceFlags(int(match[3], 16)))
            return trace.set_span_in_context(trace.NonRecordingSpan(remote))
    return _PROPAGATOR.extract(list(headers or ()), getter=_HeaderGetter())


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to keep with a stored record (or None)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def traceparent_context(traceparent: str) -> otel_context.Context:
    """The trace context a stored ``traceparent`` names (empty when it is malformed)."""
    return _PROPAGATOR.extract({"traceparent": traceparent})


def links_to(traceparents: Iterable[str | None]) -> list[trace.Link]:
    """Span links to the stored ``traceparent`` values that are valid (duplicates once).

    A step that acts on many records at once (one mail reporting a day of incidents) cannot
    continue all of their traces; its span links to each of them instead.
    """
    links: dict[tuple[int, int], trace.Link] = {}
    for value in traceparents:
        if not value:
            continue
        context = trace.get_current_span(traceparent_context(value)).get_span_context()
        if context.is_valid:
            links.setdefault((context.trace_id, context.span_id), trace.Link(context))
    return list(links.values())
