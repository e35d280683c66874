"""The HTTP API for officers (ARCHITECTURE.md, section 6), described by ``openapi.json``.

- ``GET /v1/requests?status=pending&limit=100``: summaries (no personal data) of the requests
  the caller may decide;
- ``GET /v1/requests/{request_id}``: one request with its personal data, for review (audited);
- ``POST /v1/requests/{request_id}/decision``: ``{"decision": "approve"|"reject",
  "reason": "..."}`` (reason required to reject);
- ``GET /v1/consents``: the OM's standing consents (revoked ones too), newest first;
- ``POST /v1/consents``: ``{"category": "DAGMONITOR"|"VEHICLE_SIGNAL", "reference": "...",
  "valid_until": "..."}`` (``valid_until`` optional: the covenant's end) grants one (201);
- ``POST /v1/consents/{consent_id}/revoke``: ``{"reason": "..."}`` revokes it;
- ``GET /v1/covenant``: the covenant's term in force, its recorded renewals and early ends,
  and the evaluation reports sent (any officer);
- ``POST /v1/covenant/renewals``: ``{"evaluation_id"?, "reason"?}`` renews it for a year on an
  evaluation of the ending term (201; 409 without one); ``POST /v1/covenant/end``:
  ``{"at"?, "reason"?}`` ends it early (201). The OM's only (403 otherwise); audited.
- ``GET /openapi.json``: the document.

Outside the covenant's term the request list is empty, and viewing, deciding and granting
answer 409 (docs/adr/0018-covenant-term.md).

Consents are the OM's only (403 for any other role); each grant and revocation is audited.

Every ``/v1`` call needs a bearer token (401 otherwise). A request outside the caller's
scope is answered exactly like a missing one (404). Errors are ``{"error": code, "detail":
text}``; no error body ever carries personal data.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from dagmonitor.covenant import Evaluation, Term
from dagmonitor.gates import GateCategory
from dagmonitor.jsonio import InputError, parse_document
from dagmonitor.streaming import TRANSIENT_ERRORS
from dagmonitor.telemetry import get_logger
from dagmonitor.validation import InvalidRecord, check_text
from services.approval import consent
from services.approval.access import Principal
from services.approval.auth import TokenVerifier
from services.approval.consent import Consent
from services.approval.domain import (
    CHAINS,
    MAX_REASON_LENGTH,
    Action,
    Decision,
    Status,
    valid_request_id,
)
from services.approval.errors import (
    AuthenticationError,
    ConsentNotFound,
    ConsentRevoked,
    CovenantRefused,
    Forbidden,
    InvalidConsent,
    InvalidTransition,
    OutsideTerm,
    ReasonRequired,
    RequestExpired,
    RequestNotFound,
    SameOfficer,
)
from services.approval.store import CovenantEvent, StoredRequest
from services.approval.workflow import Workflow

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
_DECISIONS = {"approve": Action.APPROVE, "reject": Action.REJECT}
_BODY_FIELDS = frozenset({"decision", "reason"})
_NOT_FOUND = "no such request"
_GRANT_FIELDS = frozenset({"category", "reference", "valid_until"})
_REVOKE_FIELDS = frozenset({"reason"})
_RENEW_FIELDS = frozenset({"evaluation_id", "reason"})
_END_FIELDS = frozenset({"at", "reason"})

_log = get_logger(__name__)
WorkflowSource = Callable[[], Workflow | None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AuthedHandler = Callable[[web.Request, Principal, Workflow], Awaitable[web.StreamResponse]]


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3 document of this API (``services/approval/openapi.json``)."""
    document: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
    return document


def error(status: int, code: str, detail: str, **headers: str) -> web.Response:
    return web.json_response({"error": code, "detail": detail}, status=status, headers=headers)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    return value


def summary(request: StoredRequest) -> dict[str, Any]:
    """What a list shows: ids, category, authority, state and dates; no personal data."""
    return _json_value(
        {
            "request_id": request.request_id,
            "category": request.category.value,
            "approver_role": request.approver_role.value,
            "status": request.status.value,
            "chain": [role.value for role in CHAINS[request.category]],
            "step": request.step,
            "mk_code": request.mk_code,
            "district_code": request.district_code,
            "created_at": request.created_at,
            "expires_at": request.expires_at,
            "decided_at": request.decided_at,
        }
    )


def detail(request: StoredRequest, record: dict[str, Any] | None) -> dict[str, Any]:
    """The review view: the summary, the decision, and the personal data while it exists."""
    record = record or {}
    body = summary(request)
    body.update(
        _json_value(
            {
                "decided_by": request.decided_by,
                "reason": request.reason,
                "personal_data_deleted": not record,
                "source_key": record.get("source_key"),
                "source_version": record.get("source_version"),
                "subject": record.get("subject"),
                "modus_operandi": record.get("modus_operandi"),
                "notice_kind": record.get("notice_kind"),
                "valid_until": record.get("valid_until"),
                "postcode": record.get("postcode"),
            }
        )
    )
    return body


def decision_body(decision: Decision) -> dict[str, Any]:
    return _json_value(
        {
            "request_id": decision.request_id,
            "status": decision.outcome.value,
            "decided_by": decision.decided_by,
            "decided_at": decision.decided_at,
            "reason": decision.reason,
            "next_approver_role": decision.next_role.value if decision.next_role else None,
        }
    )


def consent_body(state: Consent, now: datetime) -> dict[str, Any]:
    """A consent as the API shows it, with whether it is in force ``now``."""
    return _json_value({**state.record(), "in_force": state.in_force(now)})


def covenant_body(
    term: Term,
    events: list[CovenantEvent],
    evaluations: list[Evaluation],
    now: datetime,
    tz: ZoneInfo,
) -> dict[str, Any]:
    """The term as the API shows it: dates, whether it runs ``now``, its last month, the
    recorded events (who, when, on which evaluation) and the evaluations sent."""
    return _json_value(
        {
            "start_date": term.start,
            "end_date": term.end,
            "period": term.label(),
            "ends_at": term.ends_at(tz),
            "ended_early_at": term.ended_at,
            "in_term": term.in_term(now, tz),
            "last_month_start": term.last_month_start(),
            "days_remaining": term.days_remaining(now.astimezone(tz).date()),
            "revision": term.revision,
            "events": [
                {
                    "kind": e.kind,
                    "end_before": e.end_before,
                    "end_after": e.end_after,
                    "ended_at": e.ended_at,
                    "evaluation_id": e.evaluation_id,
                    "recorded_by": e.actor,
                    "recorded_at": e.occurred_at,
                    "reason": e.reason,
                }
                for e in events
            ],
            "evaluations": [
                {"evaluation_id": e.evaluation_id, "sent_at": e.sent_at} for e in evaluations
            ],
        }
    )


class BadRequest(Exception):
    """A malformed call; the message says precisely what is wrong."""


def parse_decision(raw: bytes) -> tuple[Action, str | None]:
    """The action and reason of a decision body; raises BadRequest naming the problem."""
    body = _object(raw, _BODY_FIELDS)
    if "decision" not in body:
        raise BadRequest("field 'decision' is required")
    decision = body["decision"]
    if not isinstance(decision, str) or decision not in _DECISIONS:
        raise BadRequest('field \'decision\' must be "approve" or "reject"')
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadRequest("field 'reason' must be a string")
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise BadRequest(f"field 'reason' is longer than {MAX_REASON_LENGTH} characters")
    return _DECISIONS[decision], reason


def _object(raw: bytes, allowed: frozenset[str]) -> dict[str, Any]:
    try:
        body = parse_document(raw)
    except InputError as exc:
        raise BadRequest(f"the body is {exc.problem}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(repr(u[:40]) for u in unknown[:5])}")
    try:
        # PostgreSQL text holds no NUL, and a reason is read back in the audit log and mails.
        check_text(body)
    except InvalidRecord as exc:
        raise BadRequest(f"field {exc.detail}") from None
    return body


def _text(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str):
        raise BadRequest(f"field '{field}' is required and must be a string")
    return value


def parse_grant(raw: bytes, tz: ZoneInfo) -> tuple[GateCategory, str, datetime | None]:
    """Category, reference and valid_until (None: the covenant's end) of a grant body.

    ``valid_until`` is an ISO 8601 date-time with an offset, or a date: valid through that
    (local) day. Raises BadRequest or InvalidConsent naming the field.
    """
    body = _object(raw, _GRANT_FIELDS)
    category = consent.consent_category(_text(body, "category"))
    reference = _text(body, "reference")
    until = body.get("valid_until")
    if until is None:
        return category, reference, None
    if not isinstance(until, str) or len(until) > 40:
        raise BadRequest("field 'valid_until' must be an ISO 8601 date or date-time")
    try:
        if len(until) == 10:
            day = date.fromisoformat(until)
            return category, reference, datetime.combine(day, datetime.max.time(), tzinfo=tz)
        return category, reference, datetime.fromisoformat(until)
    except ValueError:
        raise BadRequest("field 'valid_until' must be an ISO 8601 date or date-time") from None


def parse_revoke(raw: bytes) -> str:
    """The reason of a revocation body (required)."""
    body = _object(raw, _REVOKE_FIELDS)
    reason = _text(body, "reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise BadRequest(f"field 'reason' is longer than {MAX_REASON_LENGTH} characters")
    return reason


def _optional_text(body: dict[str, Any], field: str, max_length: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise BadRequest(f"field '{field}' must be a string of at most {max_length} characters")
    return value


def parse_renewal(raw: bytes) -> tuple[str | None, str | None]:
    """The evaluation id (None: the latest that counts) and reason of a renewal body."""
    body = _object(raw or b"{}", _RENEW_FIELDS)
    return _optional_text(body, "evaluation_id", 200), _optional_text(
        body, "reason", MAX_REASON_LENGTH
    )


def parse_end(raw: bytes) -> tuple[datetime | None, str | None]:
    """The moment (None: now) and reason of an early end."""
    body = _object(raw or b"{}", _END_FIELDS)
    at = _optional_text(body, "at", 40)
    reason = _optional_text(body, "reason", MAX_REASON_LENGTH)
    if at is None:
        return None, reason
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise BadRequest("field 'at' must be an ISO 8601 date-time with an offset") from None
    if moment.tzinfo is None:
        raise BadRequest("field 'at' must be an ISO 8601 date-time with an offset")
    return moment, reason


def _status_param(request: web.Request) -> Status:
    value = request.query.get("status", "pending")
    try:
        status = Status(value.upper())
    except ValueError:
        status = None
    if status is None or value != value.lower():
        allowed = ", ".join(s.value.lower() for s in Status)
        raise BadRequest(f"query parameter 'status' must be one of: {allowed}")
    return status


def _limit_param(request: web.Request) -> int:
    value = request.query.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"query parameter 'limit' must be an integer from 1 to {MAX_LIMIT}")
    return int(value)


def _challenge(request: web.Request) -> str:
    """The RFC 6750 challenge: with ``error`` only when a token was sent."""
    realm = 'Bearer realm="dagmonitor-approval"'
    return f'{realm}, error="invalid_token"' if "Authorization" in request.headers else realm


class ApprovalApi:
    """The route handlers around a workflow and a token verifier."""

    def __init__(self, workflow: WorkflowSource, verifier: TokenVerifier) -> None:
        self._workflow = workflow
        self._verifier = verifier

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/requests", self._authed(self.list_requests), allow_head=False),
            web.get("/v1/requests/{request_id}", self._authed(self.show), allow_head=False),
            web.post("/v1/requests/{request_id}/decision", self._authed(self.decide)),
            web.get("/v1/consents", self._authed(self.list_consents), allow_head=False),
            web.post("/v1/consents", self._authed(self.grant_consent)),
            web.post("/v1/consents/{consent_id}/revoke", self._authed(self.revoke_consent)),
            web.get("/v1/covenant", self._authed(self.covenant), allow_head=False),
            web.post("/v1/covenant/renewals", self._authed(self.renew)),
            web.post("/v1/covenant/end", self._authed(self.end_covenant)),
            web.get("/openapi.json", self.openapi, allow_head=False),
        ]

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    def _authed(self, handler: AuthedHandler) -> Handler:
        """Authenticate, then run ``handler``; map the domain's errors to HTTP answers."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                principal = self._verifier.authenticate(request.headers.get("Authorization"))
            except AuthenticationError as exc:
                return error(
                    401, "unauthorized", exc.detail, **{"WWW-Authenticate": _challenge(request)}
                )
            workflow = self._workflow()
            if workflow is None:
                return error(503, "unavailable", "the service is starting")
            try:
                return await handler(request, principal, workflow)
            except BadRequest as exc:
                return error(400, "bad_request", str(exc))
            except (ReasonRequired, InvalidConsent) as exc:
                return error(400, "bad_request", str(exc))
            except Forbidden as exc:
                return error(403, "forbidden", str(exc))
            except RequestNotFound:
                return error(404, "not_found", _NOT_FOUND)
            except ConsentNotFound as exc:
                return error(404, "not_found", str(exc))
            except (InvalidTransition, RequestExpired, ConsentRevoked, SameOfficer) as exc:
                return error(409, "conflict", str(exc))
            except OutsideTerm as exc:
                return error(409, "outside_term", str(exc))
            except CovenantRefused as exc:
                return error(409, "covenant_refused", str(exc))
            except TRANSIENT_ERRORS as exc:
                _log.warning("api_backend_unavailable", error=type(exc).__name__)
                return error(503, "unavailable", "the database is not reachable; try again")

        return wrapped

    async def list_requests(
        self, request: web.Request, principal: Principal, workflow: Workflow
    ) -> web.Response:
        status, limit = _status_param(request), _limit_param(request)
        found = await workflow.list_requests(principal, status, limit)
        return web.json_response({"items": [summary(r) for r in found], "count": len(found)})

    async def show(
        self, request: web.Request, principal: Principal, workflow: Workflow
    ) -> web.Response:
        request_id = request.match_info["request_id"]
        if not valid_request_id(request_id):
            raise RequestNotFound(_NOT_FOUND)
        stored, record = await workflow.view(principal, request_id)
        return web.json_response(detail(stored, record))

    async def decide(
        self, request: web.Request, principal: Principal, workflow: Workflow
    ) -> web.Response:
        request_id = request.match_info["request_id"]
        action, reason = parse_decision(await request.read())
        if not valid_request_id(request_id):
            raise RequestNotFound(_NOT_FOUND)
        decision = await workflow.decide(principal, request_id, action, reason)
        return web.json_response(decision_body(decision))

    async def list_consents(
        self, _request: web.Request, principal: Principal, workflow: Workflow
    ) -> web.Response:
        found = await workflow.list_consents(principal)
        now = workflow.now()
        return web.json_response(
            {"items": [consent_body(c, now) for c in found], "count": len(found)}
        )

    async def grant_consent(
        self, request: web.Request, principal: Principal, workflow: Workflow
    ) -> web.Response:
        category, reference, valid_until = parse_grant(await request.read(), workflow.tz)
        granted = await workflow.grant_consent(principal, category, reference, valid_until)
        return web.json_response(consent_body(granted, workflow.now()), status=201)

    async def revoke_consent(
        self, request: web.Request, principal: Principal, workflow: Workflow
    ) -> web.Response:
        consent_id = request.match_info["consent_id"]
        reason = parse_revoke(await request.read())
        if not consent.valid_consent_id(consent_id):
            raise ConsentNotFound("no such consent")
        revoked = await workflow.revoke_consent(principal, consent_id, reason)
        return web.json_response(consent_body(revoked, workflow.now()))

    async def _covenant_answer(self, workflow: Workflow, status: int = 200) -> web.Response:
        term, events, evaluations = await workflow.covenant_status()
        body = covenant_body(term, events, evaluations, workflow.now(), workflow.tz)
        return web.json_response(body, status=status)

    async def covenant(
        self, _request: web.Request, _principal: Principal, workflow: Workflow
    ) -> web.Response:
        return await self._covenant_answer(workflow)

    async def renew(
        self, request: web.Request, principal: Principal, workflow: Workflow
    ) -> web.Response:
        evaluation_id, reason = parse_renewal(await request.read())
        await workflow.renew(principal, evaluation_id, reason)
        return await self._covenant_answer(workflow, 201)

    async def end_covenant(
        self, request: web.Request, principal: Principal, workflow: Workflow
    ) -> web.Response:
        at, reason = parse_end(await request.read())
        await workflow.end_covenant(principal, at, reason)
        return await self._covenant_answer(workflow, 201)
