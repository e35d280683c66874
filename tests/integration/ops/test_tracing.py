"""The spans the services exported over OTLP/HTTP during the pipeline run: one incident can be
followed from ingest through the classifier to the distributor, and the mail that reports it
links to (or, for a single record, continues) its trace."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.integration.ops.conftest import PipelineRun
from tests.integration.ops.harness import Span

pytestmark = pytest.mark.integration

HOPS = ("ingest bvh.incidents", "classifier ingest.incidents", "distributor dagmonitor.entries")


def test_an_incident_is_traced_from_ingest_to_the_mail(pipeline_run: PipelineRun) -> None:
    spans = pipeline_run.spans
    assert {s.service for s in spans} >= {"ingest", "classifier", "approval", "distributor"}
    traces: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    followed = {}
    for trace_id, members in traces.items():
        by_name = {s.name: s for s in members}
        if all(hop in by_name for hop in HOPS):
            ingest, distributor = by_name[HOPS[0]], by_name[HOPS[2]]
            classifier = {s.span_id: s for s in members if s.service == "classifier"}
            # Each hop continues the previous one (W3C traceparent in the Kafka headers); an
            # E35 entry passes the classifier twice (via its postcode-keyed internal topic).
            assert distributor.parent_id in classifier
            first = classifier[distributor.parent_id]
            while first.parent_id in classifier:
                first = classifier[first.parent_id]
            assert first.parent_id == ingest.span_id
            followed[trace_id] = distributor.span_id
    assert len(followed) >= 10, "shared incidents reach the distributor in their own trace"

    mails = [s for s in spans if s.name == "distributor send mail"]
    daily = [m for m in mails if m.attributes.get("dagmonitor.category") == "dagmonitor_daily"]
    linked = {link for mail in daily for link in mail.links}
    # The daily report's mail links to the distributor span that stored each of its records.
    assert {(t, s) for t, s in followed.items()} & linked
    for mail in mails:
        # The covenant's evaluation counts provisions and decisions; its one record is the
        # term it evaluates (a configured term has no trace of its own), not police data.
        if mail.attributes.get("dagmonitor.category") == "covenant_evaluation":
            continue
        if mail.attributes.get("dagmonitor.records"):
            assert mail.links, f"a {mail.attributes['dagmonitor.category']} mail without links"
        if mail.attributes.get("dagmonitor.records") == 1:
            ((trace_id, span_id),) = mail.links
            assert (mail.trace_id, mail.parent_id) == (trace_id, span_id)
