"""Why a record is refused: the reason codes of the dead-letter path and of HTTP 400s, and the
mapping from the codec's errors to them. Pure: no I/O, imported by validation, ingest, the
stream processor and the dead-letter adapter alike.
"""

from __future__ import annotations

from enum import StrEnum

from dagmonitor import errors
from dagmonitor.errors import DagmonitorError


class Reason(StrEnum):
    """Reason codes on ``DeadLetter.reason`` and in the ``reason`` metric label."""

    NOT_AVRO = "not_avro"  # no single-object marker
    UNKNOWN_SCHEMA = "unknown_schema"  # fingerprint of a schema we do not hold
    TRUNCATED = "truncated"  # bytes end before the record does
    UNDECODABLE = "undecodable"  # any other failure to decode
    WRONG_RECORD_TYPE = "wrong_record_type"  # a valid record of a type this topic doesn't carry
    INVALID_JSON = "invalid_json"  # HTTP or file input that is not the JSON we take
    INVALID_FIELD = "invalid_field"  # decoded, but a field's value breaks a rule
    INVALID_TEXT = "invalid_text"  # a text field holds a control character (NUL, ESC, ...)
    INVALID_REGISTRATION_NUMBER = "invalid_registration_number"
    INVALID_MUNICIPALITY_CODE = "invalid_municipality_code"
    INVALID_MK_CODE = "invalid_mk_code"
    INVALID_POSTCODE = "invalid_postcode"  # missing where required, or not a Dutch postcode
    CATEGORY_NOT_COUNTED = "category_not_counted"  # a municipal report that is not youth nuisance
    INVALID_TIMESTAMP = "invalid_timestamp"  # in the future, before 2000, or out of order
    INVALID_VERSION = "invalid_version"
    INVALID_IDENTIFIER = "invalid_identifier"  # event_id / notice_id empty or malformed
    KEY_MISMATCH = "key_mismatch"  # the Kafka key is not the record's registration/notice id
    PROCESSING_ERROR = "processing_error"  # a handler failed on this record unexpectedly


def reason_for(exc: BaseException) -> Reason:
    """The reason code for an exception met while handling a record."""
    match exc:
        case errors.NotSingleObjectError():
            return Reason.NOT_AVRO
        case errors.UnknownFingerprintError():
            return Reason.UNKNOWN_SCHEMA
        case errors.TruncatedRecordError():
            return Reason.TRUNCATED
        case errors.WrongRecordTypeError():
            return Reason.WRONG_RECORD_TYPE
        case errors.CodecError():
            return Reason.UNDECODABLE
        case _:
            return Reason.PROCESSING_ERROR


class RecordRejected(DagmonitorError):
    """Raised by a handler for a record that can never be handled: it is dead-lettered.

    ``detail`` must not contain personal data.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
