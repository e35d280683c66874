"""The single-object codec: round trips, the header, and everything a broken input can be."""

from __future__ import annotations

import contextlib
import functools
import shutil
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagmonitor import codec as codec_module
from dagmonitor.codec import (
    DAGMONITOR_ENTRY,
    DEAD_LETTER,
    HEADER_SIZE,
    INCIDENT_EVENT,
    MARKER,
    PERSON_NOTICE,
    TOPIC_VALUE_SCHEMAS,
    Codec,
    default_codec,
)
from dagmonitor.errors import (
    CodecError,
    NotSingleObjectError,
    SchemaError,
    TruncatedRecordError,
    UnknownFingerprintError,
)
from dagmonitor.schema_evolution import canonical_form, current_schema_path, fingerprint, release
from tests.unit.avro_strategies import records

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"
# A value that must never show up in an error message: a made-up surname.
SECRET = "Qwertzvogelaar"


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.from_directory(SCHEMA_DIR)


@functools.cache
def strategy_for(name: str) -> st.SearchStrategy[Any]:
    return records(Codec.from_directory(SCHEMA_DIR).schema(name))


def incident(**changes: Any) -> dict[str, Any]:
    """A realistic IncidentEvent with one suspect and a stolen moped."""
    record: dict[str, Any] = {
        "event_id": "evt-0001",
        "registration_number": "PL0900-2026012345",
        "version": 2,
        "mk_code": "A20",
        "mk_description": "INBRAAK WONING",
        "reported_at": datetime(2026, 1, 5, 7, 30, 12, 345000, tzinfo=UTC),
        "committed_from": datetime(2026, 1, 4, 22, 0, tzinfo=UTC),
        "committed_until": None,
        "location": {
            "street": "Oudegracht",
            "house_number": 120,
            "house_number_suffix": "bis",
            "postcode": "3511 AZ",
            "city": "Utrecht",
            "municipality_code": "GM0344",
            "district_code": "WK034401",
            "district_name": "Binnenstad",
            "neighbourhood_code": "BU03440101",
            "neighbourhood_name": "Domplein",
        },
        "persons": [
            {
                "role": "SUSPECT",
                "first_names": "Jan Pieter",
                "surname_prefix": "van",
                "surname": SECRET,
                "birth_date": date(1991, 3, 14),
                "address": {
                    "street": "Lange Nieuwstraat",
                    "house_number": 7,
                    "house_number_suffix": None,
                    "postcode": "3512 PH",
                    "city": "Utrecht",
                },
                "phone": "+31600000000",
                "photo_ref": "bvh://photos/123",
            }
        ],
        "vehicles": [{"plate": "F-123-BB", "kind": "MOPED", "stolen": True}],
        "modus_operandi": "Raam geforceerd",
    }
    record.update(changes)
    return record


def reference_crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO as the Avro spec describes it ("Schema Fingerprints"), written out here."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        value = i
        for _ in range(8):
            value = (value >> 1) ^ (empty & -(value & 1))
        table.append(value)
    result = empty
    for byte in data:
        result = (result >> 8) ^ table[(result ^ byte) & 0xFF]
    return result


def as_signed(value: int) -> int:
    return value - 2**64 if value >= 2**63 else value


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOPIC_VALUE_SCHEMAS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_every_top_level_schema(codec: Codec, name: str, data: st.DataObject) -> None:
    record = data.draw(strategy_for(name))
    encoded = codec.encode(name, record)
    decoded = codec.decode(encoded, expect=name)
    assert decoded.schema_name == name
    assert decoded.record == record
    assert decoded.writer_fingerprint == codec.fingerprint(name)


def test_round_trip_realistic_incident(codec: Codec) -> None:
    record = incident()
    assert codec.decode(codec.encode(INCIDENT_EVENT, record)).record == record


def test_fields_with_defaults_may_be_left_out(codec: Codec) -> None:
    record = incident()
    for field in ("mk_description", "committed_from", "committed_until", "persons", "vehicles"):
        del record[field]
    decoded = codec.decode(codec.encode(INCIDENT_EVENT, record)).record
    assert decoded["persons"] == [] and decoded["vehicles"] == []
    assert decoded["mk_description"] is None and decoded["committed_from"] is None


def test_timestamps_decode_as_aware_utc_at_millisecond_precision(codec: Codec) -> None:
    amsterdam_summer = timezone(timedelta(hours=2))
    moment = datetime(2026, 6, 1, 9, 15, 30, 123456, tzinfo=amsterdam_summer)
    decoded = codec.decode(codec.encode(INCIDENT_EVENT, incident(reported_at=moment))).record
    assert decoded["reported_at"] == moment.replace(microsecond=123000)
    assert decoded["reported_at"].utcoffset() == timedelta(0)
    assert decoded["reported_at"].hour == 7


def test_dates_round_trip_as_dates(codec: Codec) -> None:
    decoded = codec.decode(codec.encode(INCIDENT_EVENT, incident())).record
    assert decoded["persons"][0]["birth_date"] == date(1991, 3, 14)


# --- the header ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("canonical", "signed_fingerprint"),
    [
        # Published vectors of the Avro project (share/test/data/schema-tests.txt).
        ('"null"', 7195948357588979594),
        ('"int"', 8247732601305521295),
        ('"string"', -8142146995180207161),
        ('{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
        ('{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    ],
)
def test_reference_fingerprint_matches_published_vectors(
    canonical: str, signed_fingerprint: int
) -> None:
    assert as_signed(reference_crc64_avro(canonical.encode())) == signed_fingerprint


@pytest.mark.parametrize(
    ("schema", "canonical", "signed_fingerprint"),
    [
        ({"type": "record", "name": "foo", "fields": [], "doc": "x"}, None, -4824392279771201922),
        (
            {"fields": [], "type": "record", "name": "foo", "namespace": "x.y"},
            '{"name":"x.y.foo","type":"record","fields":[]}',
            5916914534497305771,
        ),
        (
            {"type": "enum", "name": "foo", "namespace": "x.y.z", "symbols": ["A1", "A2"]},
            '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
            -4448647247586288245,
        ),
    ],
)
def test_fingerprint_is_little_endian_crc64_of_canonical_form(
    schema: dict[str, Any], canonical: str | None, signed_fingerprint: int
) -> None:
    if canonical is not None:
        assert canonical_form(schema) == canonical
    expected = (signed_fingerprint % 2**64).to_bytes(8, "little")
    assert fingerprint(schema) == expected


@pytest.mark.parametrize("name", TOPIC_VALUE_SCHEMAS)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_header_is_marker_and_reference_fingerprint(
    codec: Codec, name: str, data: st.DataObject
) -> None:
    encoded = codec.encode(name, data.draw(strategy_for(name)))
    expected = reference_crc64_avro(canonical_form(codec.schema(name)).encode())
    assert encoded[:2] == b"\xc3\x01"
    assert encoded[2:HEADER_SIZE] == expected.to_bytes(8, "little")
    assert codec.fingerprint(name) == expected.to_bytes(8, "little")


# --- broken input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", NotSingleObjectError),  # an empty value is no record at all, not a cut one
        (b"\xc3", TruncatedRecordError),
        (b"\x00", NotSingleObjectError),
        (b"\xc3\x02" + bytes(20), NotSingleObjectError),
        (b"\x00\x01" + bytes(20), NotSingleObjectError),
        (b'{"json": true}', NotSingleObjectError),
    ],
)
def test_short_or_unmarked_input(codec: Codec, data: bytes, error: type[CodecError]) -> None:
    with pytest.raises(error):
        codec.decode(data)


def test_header_without_body_is_truncated(codec: Codec) -> None:
    with pytest.raises(TruncatedRecordError):
        codec.decode(MARKER + codec.fingerprint(INCIDENT_EVENT))


def test_every_cut_of_a_real_record_is_truncated(codec: Codec) -> None:
    encoded = codec.encode(INCIDENT_EVENT, incident())
    for cut in range(1, len(encoded)):
        with pytest.raises(TruncatedRecordError):
            codec.decode(encoded[:cut])


@pytest.mark.parametrize("name", TOPIC_VALUE_SCHEMAS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_any_cut_of_any_record_is_truncated(codec: Codec, name: str, data: st.DataObject) -> None:
    encoded = codec.encode(name, data.draw(strategy_for(name)))
    cut = data.draw(st.integers(1, len(encoded) - 1))
    with pytest.raises(TruncatedRecordError):
        codec.decode(encoded[:cut])


def test_unknown_fingerprint_names_it_in_hex(codec: Codec) -> None:
    encoded = codec.encode(INCIDENT_EVENT, incident())
    unknown = bytes.fromhex("0123456789abcdef")
    with pytest.raises(UnknownFingerprintError, match="0123456789abcdef"):
        codec.decode(MARKER + unknown + encoded[HEADER_SIZE:])


def test_decode_errors_do_not_chain_the_library_exception(codec: Codec) -> None:
    encoded = codec.encode(INCIDENT_EVENT, incident())
    # Make the suspect's surname invalid UTF-8: fastavro's message would quote the bytes.
    at = encoded.index(SECRET.encode())
    corrupt = encoded[:at] + b"\xff" + encoded[at + 1 :]
    for data in (corrupt, encoded[:-3]):
        with pytest.raises(CodecError) as caught:
            codec.decode(data)
        assert caught.value.__cause__ is None and caught.value.__context__ is None
        assert SECRET[1:] not in str(caught.value)


def test_trailing_bytes_are_refused(codec: Codec) -> None:
    encoded = codec.encode(INCIDENT_EVENT, incident())
    with pytest.raises(CodecError, match="trailing") as caught:
        codec.decode(encoded + b"\x00garbage")
    assert type(caught.value) is CodecError


def test_wrong_expected_schema_is_refused(codec: Codec) -> None:
    encoded = codec.encode(INCIDENT_EVENT, incident())
    with pytest.raises(CodecError, match=PERSON_NOTICE):
        codec.decode(encoded, expect=PERSON_NOTICE)


def test_tombstone_is_not_a_record(codec: Codec) -> None:
    with pytest.raises(CodecError, match="tombstone"):
        codec.decode(None)  # type: ignore[arg-type]


def test_decode_accepts_bytearray_and_memoryview(codec: Codec) -> None:
    encoded = codec.encode(INCIDENT_EVENT, incident())
    assert codec.decode(bytearray(encoded)).record == codec.decode(memoryview(encoded)).record


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_codec_errors(codec: Codec, data: bytes) -> None:
    with contextlib.suppress(CodecError):
        codec.decode(data)


@pytest.mark.parametrize("name", TOPIC_VALUE_SCHEMAS)
@settings(max_examples=80, deadline=None)
@given(body=st.binary(max_size=96))
def test_random_body_behind_a_valid_header_raises_only_codec_errors(
    codec: Codec, name: str, body: bytes
) -> None:
    with contextlib.suppress(CodecError):
        codec.decode(MARKER + codec.fingerprint(name) + body)


@pytest.mark.parametrize("name", TOPIC_VALUE_SCHEMAS)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_mutated_records_raise_only_codec_errors(
    codec: Codec, name: str, data: st.DataObject
) -> None:
    encoded = bytearray(codec.encode(name, data.draw(strategy_for(name))))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(HEADER_SIZE, len(encoded)))
        action = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "insert" or at == len(encoded):
            encoded[at:at] = data.draw(st.binary(min_size=1, max_size=3))
        elif action == "replace":
            encoded[at] = data.draw(st.integers(0, 255))
        else:
            del encoded[at]
    with contextlib.suppress(CodecError):
        codec.decode(bytes(encoded))


def test_corrupt_enum_index_is_a_codec_error(codec: Codec) -> None:
    record = {
        "registration_number": "PL1",
        "plate": "AB",
        "kind": "VAN",
        "reported_at": datetime(2026, 1, 1, tzinfo=UTC),
        "municipality_code": "GM0344",
        "district_code": None,
    }
    encoded = bytearray(codec.encode("nl.dagmonitor.VehicleSignal", record))
    kind_at = HEADER_SIZE + 1 + len("PL1") + 1 + len("AB")
    encoded[kind_at] = 0x7E  # zig-zag 63: no such symbol
    with pytest.raises(CodecError):
        codec.decode(bytes(encoded))


# --- encode errors: named, and without the value ---------------------------------------------


def _encode_error(codec: Codec, name: str, record: Any) -> CodecError:
    with pytest.raises(CodecError) as caught:
        codec.encode(name, record)
    return caught.value


def _person(**changes: Any) -> dict[str, Any]:
    return {**incident()["persons"][0], **changes}


@pytest.mark.parametrize(
    ("record", "path"),
    [
        (incident(persons=[_person(birth_date=SECRET)]), "persons[0].birth_date"),
        (incident(persons=[_person(role=SECRET)]), "persons[0].role"),
        (incident(persons=[_person(surname=[SECRET])]), "persons[0].surname"),
        (incident(version=SECRET), "version"),
        (incident(mk_code=None), "mk_code"),
        (incident(reported_at=datetime(2026, 1, 1, 12, 0)), "reported_at"),
        (
            incident(location={**incident()["location"], "house_number": SECRET}),
            "location.house_number",
        ),
        (incident(persons=[_person(nickname=SECRET)]), "nickname"),
        (incident(vehicles=[{"plate": SECRET, "kind": "VAN"}]), "vehicles[0].stolen"),
        (incident(persons=SECRET), "persons"),
    ],
)
def test_encode_error_names_the_field_not_the_value(
    codec: Codec, record: dict[str, Any], path: str
) -> None:
    error = _encode_error(codec, INCIDENT_EVENT, record)
    message = str(error)
    assert INCIDENT_EVENT in message
    assert path in message
    assert SECRET not in message and SECRET not in repr(error)
    assert error.__cause__ is None and error.__context__ is None


def test_naive_datetimes_are_refused_with_a_reason(codec: Codec) -> None:
    error = _encode_error(codec, INCIDENT_EVENT, incident(reported_at=datetime(2026, 1, 1)))
    assert "naive" in str(error) and "timezone-aware" in str(error)


def test_errors_fastavro_finds_are_wrapped_without_the_value(codec: Codec) -> None:
    # A lone surrogate passes the type check but cannot be UTF-8 encoded.
    error = _encode_error(
        codec, INCIDENT_EVENT, incident(persons=[_person(surname=SECRET + "\ud800")])
    )
    assert SECRET not in str(error)
    assert error.__cause__ is None and error.__context__ is None


def test_unknown_schema_name_is_refused(codec: Codec) -> None:
    with pytest.raises(CodecError, match=r"nl\.politie\.bvh\.Person"):
        codec.encode("nl.politie.bvh.Person", _person())


def test_record_that_is_not_a_mapping_is_refused(codec: Codec) -> None:
    assert "expected a record" in str(_encode_error(codec, DEAD_LETTER, [SECRET]))


# --- old data in the new shape, and the default codec ----------------------------------------


@pytest.fixture
def evolved_dir(tmp_path: Path) -> Path:
    """A copy of schemas/ in which DagmonitorEntry gained a field with a default, released."""
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, directory)
    path = current_schema_path(directory, DAGMONITOR_ENTRY)
    text = path.read_text()
    added = (
        '"fields": [\n    {"name": "source_system", "type": ["null", "string"], '
        '"default": null, "doc": "Test-only field."},'
    )
    path.write_text(text.replace('"fields": [', added, 1))
    assert [p.name for p in release(directory, TOPIC_VALUE_SCHEMAS)] == ["v2.avsc"]
    return directory


def _entry() -> dict[str, Any]:
    return {
        "registration_number": "PL0900-2026012345",
        "version": 1,
        "mk_code": "A20",
        "mk_description": "INBRAAK WONING",
        "reported_at": datetime(2026, 1, 5, 7, 30, tzinfo=UTC),
        "municipality_code": "GM0344",
        "postcode": "3511AZ",
    }


def test_old_data_is_read_into_the_current_shape(codec: Codec, evolved_dir: Path) -> None:
    old_bytes = codec.encode(DAGMONITOR_ENTRY, _entry())
    evolved = Codec.from_directory(evolved_dir)
    decoded = evolved.decode(old_bytes, expect=DAGMONITOR_ENTRY)
    assert decoded.writer_fingerprint == codec.fingerprint(DAGMONITOR_ENTRY)
    assert decoded.record["source_system"] is None
    assert decoded.record["postcode"] == "3511AZ"
    new_bytes = evolved.encode(DAGMONITOR_ENTRY, {**_entry(), "source_system": "BVH"})
    assert evolved.decode(new_bytes).writer_fingerprint != decoded.writer_fingerprint
    with pytest.raises(UnknownFingerprintError):
        codec.decode(new_bytes)


def test_codec_refuses_a_current_schema_that_cannot_read_a_release(tmp_path: Path) -> None:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, directory)
    path = current_schema_path(directory, DAGMONITOR_ENTRY)
    added = '"fields": [\n    {"name": "required_now", "type": "string", "doc": "No default."},'
    path.write_text(path.read_text().replace('"fields": [', added, 1))
    with pytest.raises(SchemaError, match="required_now"):
        Codec.from_directory(directory)


def test_default_codec_honours_the_schema_dir_variable(
    evolved_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(codec_module.SCHEMA_DIR_ENV, str(evolved_dir))
    default_codec.cache_clear()
    try:
        assert "source_system" in str(default_codec().schema(DAGMONITOR_ENTRY))
    finally:
        default_codec.cache_clear()


def test_default_codec_uses_the_repository_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(codec_module.SCHEMA_DIR_ENV, raising=False)
    default_codec.cache_clear()
    try:
        assert default_codec() is default_codec()
        assert default_codec().names == frozenset(TOPIC_VALUE_SCHEMAS)
        assert codec_module.DEFAULT_SCHEMA_DIR == SCHEMA_DIR
    finally:
        default_codec.cache_clear()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not_avro"),  # an empty value says nothing: not a record cut short
        (b'{"json": true}', "not_avro"),
        (b"\xc3\x01\x00", "truncated"),
        (b"\xc3\x01" + bytes.fromhex("0123456789abcdef") + b"\x00", "unknown_schema"),
    ],
)
def test_dead_letter_reasons_say_what_happened(codec: Codec, data: bytes, reason: str) -> None:
    from dagmonitor.rejection import reason_for

    with pytest.raises(CodecError) as caught:
        codec.decode(data, expect=INCIDENT_EVENT)
    assert reason_for(caught.value).value == reason


def test_a_record_of_another_type_is_the_wrong_record_type(codec: Codec) -> None:
    from dagmonitor.errors import WrongRecordTypeError
    from dagmonitor.rejection import reason_for

    notice = codec.encode(INCIDENT_EVENT, incident())
    with pytest.raises(WrongRecordTypeError) as caught:
        codec.decode(notice, expect="nl.politie.bvh.PersonNotice")
    assert reason_for(caught.value).value == "wrong_record_type"
