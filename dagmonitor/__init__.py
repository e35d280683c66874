"""Dagmonitor: the covenant-enforcing pipeline between the police (BVH) and the municipality.

This package holds what the services share: the Avro codec, the topic table, the settings
base, telemetry, the dead-letter path, the local platform and the ``dagmonitor`` CLI.
"""

__version__ = "0.1.0"
