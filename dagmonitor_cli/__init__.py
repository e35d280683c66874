"""The ``dagmonitor`` command and what it composes: the CLI, the local platform (Kafka,
PostgreSQL, SMTP sink, the services as processes), the demo and the demo-data generator.

The composition root: the only package that imports ``services``. ``dagmonitor`` (the runtime
library) never imports it, and no service imports another (``tests/unit/test_layering.py``).
"""
