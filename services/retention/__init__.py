"""The retention service (ARCHITECTURE.md, sections 2 and 8; docs/adr/0007-retention.md).

Every record provided on a compacted output topic is indexed (topic, key, provided_at) in
PostgreSQL (schema ``retention``). Daily at a configured local time, and on demand with
``dagmonitor retention sweep [--dry-run] [--now ISO]``, every record provided more than 365 days
before "now" gets a ``RetentionEvent`` on ``retention.events`` and a tombstone on its topic,
and leaves the index. The services that keep copies delete them on the tombstone, and the
service makes sure compaction removes the value from the topic within a bounded time.

Run it with ``python -m services.retention`` (HTTP /metrics, /healthz, /readyz on port 8085).
"""
