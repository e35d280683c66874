"""The covenant's data policy (ARCHITECTURE.md, section 5) as one pure function per input.

``classify_incident`` and ``classify_notice`` take a decoded record, the policy settings and
"now", and return what may leave (topic, key, value) or why nothing does. No I/O, no clock, no
randomness: the same input gives the same output, so a replay changes nothing. Which MK codes
are shared, and at what precision, comes from Bijlage 1 (``bijlage1.csv``); which persons go to
which approver, and on what conditions, from the table ``PERSON_ROLES``; which of their fields
go, per category, from the covenant's field sets (``field_sets.csv``, ``FIELD_SETS``).

Keys are deterministic: entries by registration number, vehicle signals by registration number
and ``plate_ref`` (16 hex digits of an HMAC-SHA-256 of the plate with the deployment's id key:
no plate in any key, so none in the provision register, the retention index or its events),
approval requests by a keyed hash of the category, the source key and the person — so an id
says nothing about the person to someone without the key, and the same person in a new version
of a registration keeps its request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from dagmonitor.validation import normalise_postcode
from services.classifier.annex import Annex, AnnexRow, HouseNumberLevel
from services.classifier.field_sets import PERSON_FIELDS, FieldSet, FieldSets, load_field_sets

TER_HOOGTE_VAN = "ter hoogte van"

# Topics the policy writes to (contract names).
ENTRIES = "dagmonitor.entries"
VEHICLES = "vehicles.signals"
REQUESTS = "approval.requests"

# Rule 6: stolen vehicles of these kinds become signals (cars, vans, mopeds, scooters).
SIGNALLED_VEHICLE_KINDS = frozenset({"PASSENGER_CAR", "VAN", "MOPED", "SCOOTER"})


class Condition(StrEnum):
    """What must hold for a person of a shared incident to go to an approver."""

    SUSPECTS_SHARED = "suspects_shared"  # Bijlage 1 column: the MK code shares suspects
    VICTIMS_SHARED = "victims_shared"  # Bijlage 1 column: the MK code shares victims
    TEAM_DISTRICT = "team_district"  # the incident is in one of the team's districts


@dataclass(frozen=True, slots=True)
class PersonRole:
    """Where a person of one role goes (approval request category and approver) and when
    (every condition holds); with what is the category's field set (``FIELD_SETS``)."""

    category: str
    approver_role: str
    conditions: frozenset[Condition]


# Rules 4, 5 and 9, by the person's role in the police registration. Roles not in this table
# (WITNESS, REPORTER, INVOLVED) never leave.
PERSON_ROLES: Mapping[str, PersonRole] = MappingProxyType(
    {
        "SUSPECT": PersonRole(
            category="SUSPECT",
            approver_role="OM",
            conditions=frozenset({Condition.SUSPECTS_SHARED, Condition.TEAM_DISTRICT}),
        ),
        "VICTIM": PersonRole(
            category="VICTIM",
            approver_role="POLICE_BURGLARY_TEAM",
            conditions=frozenset({Condition.VICTIMS_SHARED}),
        ),
    }
)

# Rules 4, 5 and 7: what of a person leaves per category, the covenant's words beside each
# row. Loaded (and refused if defective) when the policy is imported, i.e. at start.
FIELD_SETS: FieldSets = load_field_sets()


class Reason:
    """Why nothing (or not everything) of a record leaves. Values are metric label values."""

    OTHER_MUNICIPALITY = "other_municipality"
    MK_NOT_SHARED = "mk_not_shared"
    NO_TEAM_DISTRICT = "no_team_district"
    NOTICE_EXPIRED = "notice_expired"


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The deployment's side of the policy."""

    municipality_code: str
    team_districts: frozenset[str]
    id_key: bytes
    approval_period: timedelta = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class Output:
    """One record to produce: contract topic, key, value (a dict for the topic's schema)."""

    topic: str
    key: str
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer for one input record.

    ``shared`` is False when nothing about the record may leave; ``reason`` then says why.
    ``e35_postcode`` is set for a shared E35 report with a valid postcode: it counts towards
    that postcode's escalation threshold.
    """

    shared: bool
    outputs: tuple[Output, ...] = ()
    reason: str | None = None
    e35_postcode: str | None = None
    notes: tuple[str, ...] = field(default=())


def normalise_mk_code(code: str) -> str:
    """Rule 2: trim and upper-case."""
    return code.strip().upper()


def normalise_plate(plate: str) -> str:
    """A licence plate as written on the key: upper case, no surrounding or inner spaces."""
    return re.sub(r"\s+", "", plate).upper()


def plate_ref(config: PolicyConfig, plate: str) -> str:
    """The pseudonym of a (normalised) plate on keys: 16 hex digits of HMAC-SHA-256."""
    message = "\x1f".join(("plate", plate)).encode("utf-8")
    return hmac.new(config.id_key, message, hashlib.sha256).hexdigest()[:16]


def request_id(config: PolicyConfig, category: str, source_key: str, subject: str) -> str:
    """Deterministic, pseudonymous id of an approval request."""
    message = "\x1f".join((category, source_key, subject)).encode("utf-8")
    return "req-" + hmac.new(config.id_key, message, hashlib.sha256).hexdigest()[:32]


def classify_incident(
    event: Mapping[str, Any],
    config: PolicyConfig,
    annex: Annex,
    *,
    now: datetime,
    escalation_until: datetime | None = None,
) -> Decision:
    """Apply rules 1-6 and 9 to one ``IncidentEvent``.

    ``now`` stamps approval requests (created_at, expires_at); pass the input record's time
    for replays to be identical. ``escalation_until`` is the validity end of an approved E35
    escalation for the incident's postcode, if any (rule 8).
    """
    location = event["location"]
    if location["municipality_code"].strip().upper() != config.municipality_code.upper():
        return Decision(False, reason=Reason.OTHER_MUNICIPALITY)
    code = normalise_mk_code(event["mk_code"])
    row = annex.get(code)
    if row is None or not row.shared:
        return Decision(False, reason=Reason.MK_NOT_SHARED)

    postcode = normalise_postcode(location.get("postcode"))
    escalated = escalation_until is not None and escalation_until > now
    if row.house_number_level is HouseNumberLevel.YES:
        detailed, qualifier = True, TER_HOOGTE_VAN if row.ter_hoogte_van else None
    elif row.house_number_level is HouseNumberLevel.ON_ESCALATION and escalated:
        detailed, qualifier = True, TER_HOOGTE_VAN
    else:
        detailed, qualifier = False, None
    if detailed and location.get("street") is None and location.get("house_number") is None:
        qualifier = None
    outputs = [
        Output(
            ENTRIES,
            event["registration_number"],
            _entry(event, row.description, code, postcode, detailed, qualifier),
        )
    ]
    outputs += _vehicle_signals(event, config)
    outputs += _person_requests(event, config, code, row, postcode, now)
    e35 = postcode if row.house_number_level is HouseNumberLevel.ON_ESCALATION else None
    return Decision(True, tuple(outputs), e35_postcode=e35)


def _entry(
    event: Mapping[str, Any],
    description: str,
    code: str,
    postcode: str | None,
    detailed: bool,
    qualifier: str | None,
) -> dict[str, Any]:
    """Rule 3: the Dagmonitor entry; street and number only at house-number level."""
    location = event["location"]
    return {
        "registration_number": event["registration_number"],
        "version": event["version"],
        "mk_code": code,
        "mk_description": description,
        "reported_at": event["reported_at"],
        "committed_from": event.get("committed_from"),
        "committed_until": event.get("committed_until"),
        "municipality_code": location["municipality_code"].strip().upper(),
        "district_code": location.get("district_code"),
        "district_name": location.get("district_name"),
        "neighbourhood_code": location.get("neighbourhood_code"),
        "neighbourhood_name": location.get("neighbourhood_name"),
        "city": location.get("city"),
        "postcode": postcode,
        "street": location.get("street") if detailed else None,
        "house_number": location.get("house_number") if detailed else None,
        "house_number_suffix": location.get("house_number_suffix") if detailed else None,
        "location_qualifier": qualifier,
    }


def _vehicle_signals(event: Mapping[str, Any], config: PolicyConfig) -> list[Output]:
    """Rule 6: stolen cars, vans, mopeds and scooters; plate and kind, no owner data."""
    location = event["location"]
    signals: dict[str, Output] = {}
    for vehicle in event.get("vehicles") or ():
        if not vehicle["stolen"] or vehicle["kind"] not in SIGNALLED_VEHICLE_KINDS:
            continue
        plate = normalise_plate(vehicle["plate"])
        if not plate:
            continue
        key = f"{event['registration_number']}:{plate_ref(config, plate)}"
        signals[key] = Output(
            VEHICLES,
            key,
            {
                "registration_number": event["registration_number"],
                "plate": plate,
                "kind": vehicle["kind"],
                "reported_at": event["reported_at"],
                "municipality_code": location["municipality_code"].strip().upper(),
                "district_code": location.get("district_code"),
            },
        )
    return list(signals.values())


def _person_requests(
    event: Mapping[str, Any],
    config: PolicyConfig,
    code: str,
    row: AnnexRow,
    postcode: str | None,
    now: datetime,
) -> list[Output]:
    """Rules 4, 5 and 9: persons whose role's conditions (``PERSON_ROLES``) hold, no others."""
    district = event["location"].get("district_code")
    holds = {
        Condition.SUSPECTS_SHARED: row.suspects_shared,
        Condition.VICTIMS_SHARED: row.victims_shared,
        Condition.TEAM_DISTRICT: district is not None and district in config.team_districts,
    }
    requests: dict[str, Output] = {}
    for person in event.get("persons") or ():
        role = PERSON_ROLES.get(person["role"])
        if role is None or not all(holds[condition] for condition in role.conditions):
            continue  # a condition fails, or a role that never leaves (rule 9)
        fields = FIELD_SETS[role.category]
        subject = _shared_person(person, fields)
        modus_operandi = event.get("modus_operandi") if fields.modus_operandi else None
        rid = request_id(config, role.category, event["registration_number"], _identity(person))
        requests[rid] = Output(
            REQUESTS,
            rid,
            {
                "request_id": rid,
                "category": role.category,
                "approver_role": role.approver_role,
                "source_key": event["registration_number"],
                "source_version": event["version"],
                "mk_code": code,
                "district_code": district,
                "subject": subject,
                "modus_operandi": modus_operandi,
                "notice_kind": None,
                "valid_until": None,
                "postcode": postcode,
                "created_at": now,
                "expires_at": now + config.approval_period,
            },
        )
    return list(requests.values())


def _shared_person(person: Mapping[str, Any], fields: FieldSet) -> dict[str, Any]:
    """A police ``Person`` as the ``SharedPerson`` of an approval request, for every category:
    the fields its field set shares as given, every other field null."""
    shared = {name: person.get(name) if name in fields.person else None for name in PERSON_FIELDS}
    if shared["address"] is not None:
        shared["address"] = dict(shared["address"])
    return shared


def _identity(person: Mapping[str, Any]) -> str:
    """What makes a person the same person across versions of a registration (only hashed
    into the request id, with the deployment's key: the birth date does not leave)."""
    parts = (
        person.get("first_names"),
        person.get("surname_prefix"),
        person.get("surname"),
        person.get("birth_date"),
    )
    return "|".join("" if p is None else str(p).strip().lower() for p in parts)


def classify_notice(notice: Mapping[str, Any], config: PolicyConfig, *, now: datetime) -> Decision:
    """Rule 7: a person notice whose districts overlap the team's goes to the OM for approval."""
    if notice["valid_until"] <= now:
        return Decision(False, reason=Reason.NOTICE_EXPIRED)
    overlap = sorted(set(notice["district_codes"]) & config.team_districts)
    if not overlap:
        return Decision(False, reason=Reason.NO_TEAM_DISTRICT)
    person = notice["person"]
    rid = request_id(config, "PERSON_OF_INTEREST", notice["notice_id"], _identity(person))
    mk_codes = [normalise_mk_code(code) for code in notice.get("mk_codes") or ()]
    value = {
        "request_id": rid,
        "category": "PERSON_OF_INTEREST",
        "approver_role": "OM",
        "source_key": notice["notice_id"],
        "source_version": notice["version"],
        "mk_code": mk_codes[0] if mk_codes else None,
        "district_code": overlap[0],
        "subject": _shared_person(person, FIELD_SETS["PERSON_OF_INTEREST"]),
        "modus_operandi": None,
        "notice_kind": notice["kind"],
        "valid_until": notice["valid_until"],
        "postcode": None,
        "created_at": now,
        "expires_at": min(now + config.approval_period, notice["valid_until"]),
    }
    return Decision(True, (Output(REQUESTS, rid, value),))


def escalation_request(
    postcode: str,
    trigger_key: str,
    district_code: str | None,
    config: PolicyConfig,
    *,
    now: datetime,
) -> Output:
    """Rule 8: one YOUTH_NUISANCE_DETAIL request for a postcode that crossed the threshold."""
    rid = request_id(config, "YOUTH_NUISANCE_DETAIL", postcode, trigger_key)
    return Output(
        REQUESTS,
        rid,
        {
            "request_id": rid,
            "category": "YOUTH_NUISANCE_DETAIL",
            "approver_role": "POLICE_DISTRICT",
            "source_key": postcode,
            "source_version": 1,
            "mk_code": "E35",
            "district_code": district_code,
            "subject": None,
            "modus_operandi": None,
            "notice_kind": None,
            "valid_until": None,
            "postcode": postcode,
            "created_at": now,
            "expires_at": now + config.approval_period,
        },
    )
