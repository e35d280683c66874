"""The project's exception tree: one root, one branch per area.

Library errors are wrapped where they cross into our code, with a message a person can act on.
Messages never carry personal data: they name fields, topics and fingerprints, not values.
"""


class DagmonitorError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(DagmonitorError):
    """The configuration is missing or contradicts itself."""


class CodecError(DagmonitorError):
    """A record could not be encoded or decoded."""


class UnknownFingerprintError(CodecError):
    """The single-object header names a writer schema that ``schemas/`` does not hold."""


class TruncatedRecordError(CodecError):
    """The bytes end before the header or the body does."""


class WrongRecordTypeError(CodecError):
    """A valid record, but of another type than the topic or endpoint carries."""


class NotSingleObjectError(CodecError):
    """The bytes do not start with the Avro single-object marker ``C3 01``."""


class SchemaError(DagmonitorError):
    """A schema in ``schemas/`` does not parse, or a new version cannot read an old one."""


class PlatformError(DagmonitorError):
    """A local server (Kafka, PostgreSQL, SMTP sink) could not be started or reached."""


class TopicError(DagmonitorError):
    """A topic could not be created or configured as the topic table says."""
