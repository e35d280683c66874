"""The approval service (ARCHITECTURE.md, sections 2 and 6): OM and police sign-off.

Consumes ``approval.requests`` into PostgreSQL (schema ``approval``), lets officers review and
decide over an authenticated HTTP API (port 8083, ``openapi.json``), audits every view and
decision in an append-only table, and publishes each decision exactly once through an outbox
(``approval.decisions``; approved payloads to ``persons.approved``, ``victims.approved`` or
``escalations.approved``). Pending requests expire after ``DAGMONITOR_APPROVAL_EXPIRY_DAYS``
(default 14). Personal data of rejected, expired or tombstoned requests is deleted at once.
Who decides a request, in which order, is the gate table (``dagmonitor/gates.py``): a victim
goes to the burglary team, then to the OM. The OM's standing consents (the Dagmonitor, stolen-
vehicle plates) are recorded here too (``consent``; ``/v1/consents``, ``dagmonitor consent``),
audited, and published on ``approval.consents``.

Modules: ``domain`` (states, transition table, chains, payloads: pure), ``consent`` (standing
consents: pure), ``access`` (capability
table), ``auth`` (JWT checks), ``workflow`` (the operations, one transaction each), ``store``
(PostgreSQL), ``outbox`` (the relay), ``api`` (HTTP), ``app`` (wiring), ``cli``/``client``
(officers' commands), ``tokens`` (local development tokens).

Run it locally::

    .venv/bin/dagmonitor up                         # Kafka and PostgreSQL
    .venv/bin/dagmonitor token --init-dev-key       # once: .local/approval/dev-signing-key.pem
    export DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE=$PWD/.local/approval/dev-signing-key.pem
    .venv/bin/python -m services.approval           # migrates, then serves on :8083
    export DAGMONITOR_TOKEN=$(.venv/bin/dagmonitor token --sub om-officer-1 --role OM)
    .venv/bin/dagmonitor approvals list
    .venv/bin/dagmonitor approvals show REQUEST_ID
    .venv/bin/dagmonitor approvals approve REQUEST_ID --reason "no investigation harmed"
    .venv/bin/dagmonitor approvals reject REQUEST_ID --reason "ongoing investigation"
    .venv/bin/dagmonitor approvals migrate          # apply migrations without starting

The development key is trusted only when ``DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE`` is set,
and ``dagmonitor token`` refuses (exit 1) without it. In production, configure the identity
provider instead: ``DAGMONITOR_APPROVAL_JWT_ISSUER``, ``DAGMONITOR_APPROVAL_JWT_AUDIENCE`` and
``DAGMONITOR_APPROVAL_JWT_PUBLIC_KEYS`` (PEM) or ``DAGMONITOR_APPROVAL_JWKS_FILE``. Tokens
carry ``sub`` (the officer) and ``roles`` (``OM``, ``POLICE_BURGLARY_TEAM`` or
``POLICE_DISTRICT``). The service's queries run as the database role
``dagmonitor_approval_app`` (created by the migrations), which may append to the audit log
but never update or delete it.
"""
