"""The local platform: a real Kafka broker, PostgreSQL and an SMTP sink, run by the project.

Nothing here is a mock. ``dagmonitor up`` starts what is not yet running (or reuses servers
named by ``DAGMONITOR_KAFKA_BOOTSTRAP``, ``DAGMONITOR_DATABASE_URL``, ``DAGMONITOR_SMTP_URL``),
``dagmonitor down`` stops what it started.
"""
