"""The distributor's Prometheus metrics. Labels are categories, states and reason codes only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.distributor.entitlements import Category

MAILS_SENT = Counter(
    "dagmonitor_distributor_mails_sent_total",
    "Mails the SMTP server accepted, by category.",
    ["category"],
)
MAILS_RETRYING = Counter(
    "dagmonitor_distributor_mails_retrying_total",
    "Failed SMTP attempts that will be retried after a backoff, by category.",
    ["category"],
)
MAILS_FAILED = Counter(
    "dagmonitor_distributor_mails_failed_total",
    "Mails that used up their SMTP attempts and wait in the outbox (state failed), by category.",
    ["category"],
)
MAILS_RESENT_AFTER_CRASH = Counter(
    "dagmonitor_distributor_mails_resent_after_crash_total",
    "Mails found in state 'sending' after their sender died, re-sent with the same Message-ID.",
    ["category"],
)
PROVISIONS = Counter(
    "dagmonitor_distributor_provisions_total",
    "Deliveries written to the provision register, by category.",
    ["category"],
)
PROVISIONS_PUBLISHED = Counter(
    "dagmonitor_distributor_provisions_published_total",
    "Provision records published on distribution.provisions.",
)
PROVISIONS_BLOCKED = Counter(
    "dagmonitor_distributor_provisions_blocked_total",
    "Mails held back unsent, by reason (outside_term, consent_missing) and category; once "
    "per mail.",
    ["reason", "category"],
)
PROVISIONS_HELD = Gauge(
    "dagmonitor_provisions_held",
    "Provisions held for want of the OM's standing consent in force (dagmonitor/gates.py), by "
    "category: reports for dagmonitor_daily and hotspots, records for vehicle_notice.",
    ["category"],
)
UNDELIVERABLE = Counter(
    "dagmonitor_distributor_undeliverable_total",
    "Reports or notice batches not sent because no configured recipient is entitled.",
    ["category", "reason"],
)
OUTBOX_BACKLOG = Gauge(
    "dagmonitor_distributor_outbox_backlog",
    "Unsent mails in the outbox, by state (pending, sending, failed).",
    ["state"],
)
COVENANT_DAYS_REMAINING = Gauge(
    "dagmonitor_covenant_days_remaining",
    "Days the covenant still runs after today (negative: expired; nothing is provided).",
)
RECORDS_STORED = Counter(
    "dagmonitor_distributor_records_total",
    "Consumed records applied to the distributor's tables, by topic and outcome.",
    ["topic", "outcome"],
)
RENDER_SECONDS = Histogram(
    "dagmonitor_distributor_render_seconds",
    "Time to render one report (all recipients), by kind.",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# Every category's series exists from the start (at 0), so the first mail, failure or block
# already shows as an increase to rate() and the alert rules (deploy/monitoring).
for _category in Category:
    for _counter in (MAILS_SENT, MAILS_RETRYING, MAILS_FAILED, PROVISIONS):
        _counter.labels(_category.value)
    PROVISIONS_BLOCKED.labels("outside_term", _category.value)

REPORTS_PROVISIONAL = Counter(
    "dagmonitor_reports_provisional_total",
    "Scheduled reports made before the pipeline had caught up (marked provisional).",
    ["kind"],
)
for _kind in ("daily", "hotspots"):
    REPORTS_PROVISIONAL.labels(_kind)  # a series at 0 from the start, so the alert evaluates

SUPPLEMENT_ENTRIES = Counter(
    "dagmonitor_report_supplement_entries_total",
    "Entries sent in a daily report's supplement (Aanvulling), by change: new, changed, "
    "withdrawn. A steady rate says reports often go out before their day is complete.",
    ["change"],
)
for _change in ("nieuw", "gewijzigd", "vervallen"):
    SUPPLEMENT_ENTRIES.labels(_change)
WITHDRAWAL_NOTICES = Counter(
    "dagmonitor_distributor_withdrawal_notices_total",
    "Withdrawal notices (Intrekking verstrekking) stored for sending, by category of the "
    "withdrawn record.",
    ["category"],
)
WITHDRAWALS_OPEN = Gauge(
    "dagmonitor_distributor_withdrawals_open",
    "Records the police withdrew whose withdrawal is not done yet (a mail that carried them "
    "is unsent, or a recipient's notice is not stored yet).",
)
