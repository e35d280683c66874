"""The schema files: they load, they honour the contract, and every version reads the last."""

from __future__ import annotations

import copy
import io
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.read import SchemaResolutionError
from fastavro.schema import load_schema
from fastavro.utils import generate_many
from hypothesis import given, settings
from hypothesis import strategies as st

from dagmonitor.codec import DAGMONITOR_ENTRY, INCIDENT_EVENT, TOPIC_VALUE_SCHEMAS, main
from dagmonitor.errors import SchemaError
from dagmonitor.schema_evolution import (
    RELEASED_DIR,
    canonical_form,
    check_can_read,
    current_schema_path,
    load_schema_file,
    release,
    released_versions,
    self_contained,
    unreleased_changes,
)
from tests.unit.avro_strategies import records

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.avsc"))
RELEASED_FILES = sorted((SCHEMA_DIR / RELEASED_DIR).glob("*/v*.avsc"))
RELEASE_COMMAND = ".venv/bin/python -m dagmonitor.codec release"

# The police-facing input contract (ARCHITECTURE.md section 4), field by field, in order.
# Types: "?" nullable, "[...]" array, "ts" timestamp-millis, "date", or a named type.
INPUT_CONTRACT: dict[str, list[tuple[str, str]]] = {
    "nl.politie.bvh.IncidentEvent": [
        ("event_id", "string"),
        ("registration_number", "string"),
        ("version", "int"),
        ("mk_code", "string"),
        ("mk_description", "?string"),
        ("reported_at", "ts"),
        ("committed_from", "?ts"),
        ("committed_until", "?ts"),
        ("location", "nl.politie.bvh.Location"),
        ("persons", "[nl.politie.bvh.Person]"),
        ("vehicles", "[nl.politie.bvh.Vehicle]"),
        ("modus_operandi", "?string"),
    ],
    "nl.politie.bvh.Location": [
        ("street", "?string"),
        ("house_number", "?int"),
        ("house_number_suffix", "?string"),
        ("postcode", "?string"),
        ("city", "?string"),
        ("municipality_code", "string"),
        ("district_code", "?string"),
        ("district_name", "?string"),
        ("neighbourhood_code", "?string"),
        ("neighbourhood_name", "?string"),
    ],
    "nl.politie.bvh.Person": [
        ("role", "nl.politie.bvh.PersonRole"),
        ("first_names", "?string"),
        ("surname_prefix", "?string"),
        ("surname", "?string"),
        ("birth_date", "?date"),
        ("address", "?nl.politie.bvh.Address"),
        ("phone", "?string"),
        ("photo_ref", "?string"),
    ],
    "nl.politie.bvh.Address": [
        ("street", "?string"),
        ("house_number", "?int"),
        ("house_number_suffix", "?string"),
        ("postcode", "?string"),
        ("city", "?string"),
    ],
    "nl.politie.bvh.Vehicle": [
        ("plate", "string"),
        ("kind", "nl.politie.bvh.VehicleKind"),
        ("stolen", "boolean"),
    ],
    "nl.politie.bvh.PersonNotice": [
        ("notice_id", "string"),
        ("version", "int"),
        ("kind", "nl.politie.bvh.NoticeKind"),
        ("person", "nl.politie.bvh.Person"),
        ("district_codes", "[string]"),
        ("valid_from", "ts"),
        ("valid_until", "ts"),
        ("mk_codes", "[string]"),
    ],
    # The municipality's reports (section 3): exactly these, so no personal field slips in.
    "nl.dagmonitor.MunicipalReport": [
        ("report_id", "string"),
        ("category", "string"),
        ("postcode", "string"),
        ("reported_at", "ts"),
        ("source", "string"),
    ],
}

ENUM_CONTRACT: dict[str, list[str]] = {
    "nl.politie.bvh.PersonRole": ["SUSPECT", "VICTIM", "WITNESS", "REPORTER", "INVOLVED"],
    "nl.politie.bvh.VehicleKind": [
        "PASSENGER_CAR",
        "VAN",
        "TRUCK",
        "MOTORCYCLE",
        "MOPED",
        "SCOOTER",
        "BICYCLE",
        "VESSEL",
        "OTHER",
    ],
    "nl.politie.bvh.NoticeKind": ["REPEAT_OFFENDER", "AREA_BAN", "KNOWN_OFFENDER"],
    "nl.dagmonitor.ApprovalCategory": [
        "SUSPECT",
        "VICTIM",
        "PERSON_OF_INTEREST",
        "YOUTH_NUISANCE_DETAIL",
    ],
    "nl.dagmonitor.ApproverRole": ["OM", "POLICE_BURGLARY_TEAM", "POLICE_DISTRICT"],
    "nl.dagmonitor.DecisionOutcome": ["APPROVED", "REJECTED", "EXPIRED"],
}

# Output records: field names other services and the covenant rely on (a schema may add more).
OUTPUT_CONTRACT: dict[str, list[str]] = {
    "nl.dagmonitor.DagmonitorEntry": [
        "registration_number",
        "version",
        "mk_code",
        "mk_description",
        "reported_at",
        "committed_from",
        "committed_until",
        "municipality_code",
        "district_code",
        "district_name",
        "neighbourhood_code",
        "neighbourhood_name",
        "city",
        "postcode",
        "street",
        "house_number",
        "house_number_suffix",
        "location_qualifier",
    ],
    "nl.dagmonitor.VehicleSignal": [
        "registration_number",
        "plate",
        "kind",
        "reported_at",
        "municipality_code",
        "district_code",
    ],
    "nl.dagmonitor.SharedPerson": [
        "first_names",
        "surname_prefix",
        "surname",
        "birth_date",
        "address",
        "phone",
        "photo_ref",
    ],
    "nl.dagmonitor.ApprovalRequest": [
        "request_id",
        "category",
        "approver_role",
        "source_key",
        "source_version",
        "mk_code",
        "district_code",
        "subject",
        "modus_operandi",
        "notice_kind",
        "valid_until",
        "postcode",
        "created_at",
        "expires_at",
    ],
    "nl.dagmonitor.ApprovalDecision": [
        "request_id",
        "decision",
        "category",
        "approver_role",
        "decided_by",
        "reason",
        "decided_at",
    ],
    "nl.dagmonitor.ApprovedPerson": [
        "request_id",
        "category",
        "source_key",
        "mk_code",
        "district_code",
        "person",
        "notice_kind",
        "valid_until",
        "approved_by",
        "approved_at",
    ],
    "nl.dagmonitor.ApprovedVictim": [
        "request_id",
        "source_key",
        "mk_code",
        "district_code",
        "person",
        "modus_operandi",
        "approved_by",
        "approved_at",
    ],
    "nl.dagmonitor.Escalation": [
        "postcode",
        "request_id",
        "valid_from",
        "valid_until",
        "approved_by",
        "approved_at",
    ],
    "nl.dagmonitor.Provision": [
        "provision_id",
        "record_keys",
        "category",
        "recipient_role",
        "recipient_address",
        "sent_at",
        "message_id",
        "legal_basis",
        "purpose",
    ],
    "nl.dagmonitor.RecordRef": ["topic", "key"],
    "nl.dagmonitor.RetentionEvent": ["topic", "key", "provided_at", "deleted_at", "reason"],
    "nl.dagmonitor.DeadLetter": [
        "reason",
        "detail",
        "source_topic",
        "source_partition",
        "source_offset",
        "source_key",
        "raw",
        "service",
        "failed_at",
    ],
}


def raw_schema(full_name: str) -> dict[str, Any]:
    """The JSON of one source file, as written (named types referenced by name)."""
    return json.loads(current_schema_path(SCHEMA_DIR, full_name).read_text())


def render_type(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        assert node[0] == "null" and len(node) == 2, f"unexpected union {node}"
        return "?" + render_type(node[1])
    if node.get("logicalType") == "timestamp-millis":
        return "ts"
    if node.get("logicalType") == "date":
        return "date"
    if node["type"] == "array":
        return f"[{render_type(node['items'])}]"
    return str(node.get("name", node["type"]))


def write_then_read(writer: Any, reader: Any, record: Any) -> Any:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, writer, record)
    out.seek(0)
    return fastavro.schemaless_reader(out, writer, reader)


# --- the files ---------------------------------------------------------------------------


def test_every_top_level_schema_has_a_file() -> None:
    stems = {path.stem for path in SCHEMA_FILES}
    assert set(TOPIC_VALUE_SCHEMAS) <= stems
    assert set(INPUT_CONTRACT) | set(ENUM_CONTRACT) | set(OUTPUT_CONTRACT) <= stems


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_schema_file_loads_on_its_own(path: Path) -> None:
    parsed = load_schema(str(path))
    assert isinstance(parsed, dict) and parsed["name"] == path.stem


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_file_is_named_after_the_type_it_holds(path: Path) -> None:
    raw = json.loads(path.read_text())
    assert f"{raw['namespace']}.{raw['name']}" == path.stem


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_type_and_field_is_documented(path: Path) -> None:
    raw = json.loads(path.read_text())
    assert raw.get("doc"), f"{path.name} has no doc"
    for field in raw.get("fields", []):
        assert field.get("doc"), f"{path.name}: field {field['name']} has no doc"


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_nullable_fields_are_null_first_with_default_null(path: Path) -> None:
    for field in json.loads(path.read_text()).get("fields", []):
        if isinstance(field["type"], list):
            assert field["type"][0] == "null", f"{path.name}: {field['name']}"
            assert "default" in field and field["default"] is None, f"{path.name}: {field['name']}"


# --- the contract ------------------------------------------------------------------------


@pytest.mark.parametrize("full_name", sorted(INPUT_CONTRACT))
def test_input_records_match_the_contract_exactly(full_name: str) -> None:
    fields = [(f["name"], render_type(f["type"])) for f in raw_schema(full_name)["fields"]]
    assert fields == INPUT_CONTRACT[full_name]


@pytest.mark.parametrize("full_name", sorted(ENUM_CONTRACT))
def test_enums_match_the_contract_exactly(full_name: str) -> None:
    assert raw_schema(full_name)["symbols"] == ENUM_CONTRACT[full_name]


@pytest.mark.parametrize("full_name", sorted(OUTPUT_CONTRACT))
def test_output_records_carry_the_contract_fields(full_name: str) -> None:
    names = [field["name"] for field in raw_schema(full_name)["fields"]]
    missing = [name for name in OUTPUT_CONTRACT[full_name] if name not in names]
    assert not missing, f"{full_name} lacks contract fields {missing}"


def test_array_fields_of_incident_default_to_empty() -> None:
    defaults = {f["name"]: f.get("default") for f in raw_schema(INCIDENT_EVENT)["fields"]}
    assert defaults["persons"] == [] and defaults["vehicles"] == []


# --- released versions -------------------------------------------------------------------


@pytest.mark.parametrize("path", RELEASED_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_released_version_loads_on_its_own(path: Path, tmp_path: Path) -> None:
    alone = tmp_path / path.name  # no sibling files to resolve names from
    shutil.copy(path, alone)
    parsed = load_schema(str(alone))
    assert isinstance(parsed, dict) and parsed["name"] == path.parent.name


@pytest.mark.parametrize("full_name", TOPIC_VALUE_SCHEMAS)
def test_released_versions_are_numbered_without_gaps(full_name: str) -> None:
    numbers = [v.version for v in released_versions(SCHEMA_DIR, full_name)]
    assert numbers == list(range(1, len(numbers) + 1)), f"{full_name}: {numbers}"


def test_only_top_level_schemas_are_released() -> None:
    released = {path.name for path in (SCHEMA_DIR / RELEASED_DIR).iterdir()}
    assert released == set(TOPIC_VALUE_SCHEMAS)


@pytest.mark.parametrize("full_name", TOPIC_VALUE_SCHEMAS)
def test_current_schema_is_released(full_name: str) -> None:
    versions = released_versions(SCHEMA_DIR, full_name)
    assert versions, f"{full_name} was never released: run {RELEASE_COMMAND}"
    current = canonical_form(load_schema_file(current_schema_path(SCHEMA_DIR, full_name)))
    latest = canonical_form(load_schema_file(versions[-1].path))
    assert current == latest, (
        f"{full_name} differs from its latest release v{versions[-1].version}; "
        f"no unreleased schema may reach a topic: run {RELEASE_COMMAND}"
    )


def _evolution_steps() -> list[Any]:
    """(name, writer label, reader label) for each released step and latest -> current."""
    steps = []
    for name in TOPIC_VALUE_SCHEMAS:
        versions = released_versions(SCHEMA_DIR, name)
        labels = [f"v{v.version}" for v in versions] + ["current"]
        steps += [
            pytest.param(name, w, r, id=f"{name}:{w}->{r}") for w, r in itertools.pairwise(labels)
        ]
    return steps


def _load_version(name: str, label: str) -> dict[str, Any]:
    if label == "current":
        return load_schema_file(current_schema_path(SCHEMA_DIR, name))
    return load_schema_file(SCHEMA_DIR / RELEASED_DIR / name / f"{label}.avsc")


@pytest.mark.parametrize(("name", "writer_label", "reader_label"), _evolution_steps())
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_each_version_reads_data_of_the_previous_one(
    name: str, writer_label: str, reader_label: str, data: st.DataObject
) -> None:
    writer, reader = _load_version(name, writer_label), _load_version(name, reader_label)
    assert check_can_read(writer, reader) == []
    record = data.draw(records(writer))
    read = write_then_read(writer, reader, record)
    assert {key: read[key] for key in record if key in read} == {
        key: value for key, value in record.items() if key in read
    }


@pytest.mark.parametrize("full_name", TOPIC_VALUE_SCHEMAS)
def test_current_schema_reads_every_release(full_name: str) -> None:
    current = load_schema_file(current_schema_path(SCHEMA_DIR, full_name))
    for version in released_versions(SCHEMA_DIR, full_name):
        assert check_can_read(load_schema_file(version.path), current) == [], version.path


def test_check_command_passes_on_the_repository() -> None:
    assert main(["check", "--schema-dir", str(SCHEMA_DIR)]) == 0


# --- the compatibility checker itself -------------------------------------------------------


@pytest.fixture(scope="module")
def incident_schema() -> dict[str, Any]:
    """The current IncidentEvent as plain JSON, ready to be modified and re-parsed."""
    return self_contained(load_schema_file(current_schema_path(SCHEMA_DIR, INCIDENT_EVENT)))


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _changed(schema: dict[str, Any], change: Any) -> Any:
    changed = copy.deepcopy(schema)
    change(changed)
    return fastavro.parse_schema(changed)


def test_adding_a_field_without_default_is_incompatible(incident_schema: dict[str, Any]) -> None:
    writer = fastavro.parse_schema(copy.deepcopy(incident_schema))
    reader = _changed(
        incident_schema,
        lambda s: s["fields"].append({"name": "priority", "type": "int", "doc": "No default."}),
    )
    problems = check_can_read(writer, reader)
    assert len(problems) == 1 and "priority" in problems[0] and "default" in problems[0]
    # fastavro agrees when it meets real data.
    sample = next(iter(generate_many(writer, 1)))
    with pytest.raises(SchemaResolutionError):
        write_then_read(writer, reader, sample)


def test_adding_a_nullable_field_with_default_is_compatible(
    incident_schema: dict[str, Any],
) -> None:
    writer = fastavro.parse_schema(copy.deepcopy(incident_schema))
    reader = _changed(
        incident_schema,
        lambda s: s["fields"].append(
            {"name": "priority", "type": ["null", "int"], "default": None, "doc": "Optional."}
        ),
    )
    assert check_can_read(writer, reader) == []
    sample = next(iter(generate_many(writer, 1)))
    assert write_then_read(writer, reader, sample)["priority"] is None


def _drop_vehicle_kind_other(schema: dict[str, Any]) -> None:
    kind = _field(_field(schema, "vehicles")["type"]["items"], "kind")["type"]
    kind["symbols"].remove("OTHER")


def _widen_version_to_long(schema: dict[str, Any]) -> None:
    _field(schema, "version")["type"] = "long"


def _micros_reported_at(schema: dict[str, Any]) -> None:
    _field(schema, "reported_at")["type"]["logicalType"] = "timestamp-micros"


def _rename_location(schema: dict[str, Any]) -> None:
    _field(schema, "location")["type"]["name"] = "nl.politie.bvh.Place"


def _require_mk_description(schema: dict[str, Any]) -> None:
    field = _field(schema, "mk_description")
    field["type"] = "string"
    del field["default"]


def _drop_modus_operandi(schema: dict[str, Any]) -> None:
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "modus_operandi"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_drop_vehicle_kind_other, "drops symbol(s) OTHER"),
        (_micros_reported_at, "timestamp-micros"),
        (_rename_location, "location"),
        (_require_mk_description, "mk_description"),
        (_widen_version_to_long, None),
        (_drop_modus_operandi, None),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_checker_on_typical_changes(
    incident_schema: dict[str, Any], change: Any, problem: str | None
) -> None:
    writer = fastavro.parse_schema(copy.deepcopy(incident_schema))
    problems = check_can_read(writer, _changed(incident_schema, change))
    if problem is None:
        assert problems == []
    else:
        assert problems and problem in " ".join(problems)


def test_narrowing_a_type_is_incompatible(incident_schema: dict[str, Any]) -> None:
    wide = _changed(incident_schema, _widen_version_to_long)
    narrow = fastavro.parse_schema(copy.deepcopy(incident_schema))
    assert any("version" in problem for problem in check_can_read(wide, narrow))


# --- the release procedure -----------------------------------------------------------------


@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, directory)
    return directory


def _add_field(directory: Path, name: str, field: dict[str, Any]) -> None:
    path = current_schema_path(directory, name)
    raw = json.loads(path.read_text())
    raw["fields"].append(field)
    path.write_text(json.dumps(raw, indent=2))


def test_release_without_changes_writes_nothing(schema_copy: Path) -> None:
    assert release(schema_copy, TOPIC_VALUE_SCHEMAS) == []


def test_release_writes_the_next_version_of_a_changed_schema(schema_copy: Path) -> None:
    _add_field(
        schema_copy,
        DAGMONITOR_ENTRY,
        {"name": "note", "type": ["null", "string"], "default": None, "doc": "Test."},
    )
    assert main(["check", "--schema-dir", str(schema_copy)]) == 1
    written = release(schema_copy, TOPIC_VALUE_SCHEMAS)
    assert written == [schema_copy / RELEASED_DIR / DAGMONITOR_ENTRY / "v2.avsc"]
    assert unreleased_changes(schema_copy, TOPIC_VALUE_SCHEMAS) == []
    assert main(["check", "--schema-dir", str(schema_copy)]) == 0
    v1, v2 = (load_schema_file(v.path) for v in released_versions(schema_copy, DAGMONITOR_ENTRY))
    assert check_can_read(v1, v2) == []


def test_release_refuses_an_incompatible_change(schema_copy: Path) -> None:
    _add_field(schema_copy, DAGMONITOR_ENTRY, {"name": "note", "type": "string", "doc": "Test."})
    with pytest.raises(SchemaError, match="note"):
        release(schema_copy, TOPIC_VALUE_SCHEMAS)
    assert len(released_versions(schema_copy, DAGMONITOR_ENTRY)) == 1
    assert main(["release", "--schema-dir", str(schema_copy)]) == 1
