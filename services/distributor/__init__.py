"""The distributor service (ARCHITECTURE.md, section 7): the daily Dagmonitor, the bi-weekly
hotspot report and the notices by e-mail to the covenant's entitled roles, each delivery
registered exactly once (``distribution.provisions``). See docs/adr/0005-distributor-outbox.md.
"""
