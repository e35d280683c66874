"""The approval service's exceptions. Messages name fields and states, never personal data."""

from __future__ import annotations

from dagmonitor.errors import DagmonitorError


class ApprovalError(DagmonitorError):
    """Root of the approval service's errors."""


class InvalidRequest(ApprovalError):
    """An ``ApprovalRequest`` breaks a rule of the contract (e.g. category and approver differ)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class RequestNotFound(ApprovalError):
    """No such request, or none the caller may see: both are answered alike (404)."""


class InvalidTransition(ApprovalError):
    """The transition table has no row for this state and action (409)."""

    def __init__(self, current: str, action: str) -> None:
        super().__init__(f"a request in state {current} cannot be {action.lower()}d")
        self.current = current
        self.action = action


class RequestExpired(ApprovalError):
    """The request's deadline passed before the decision (409); it is expired instead."""


class ReasonRequired(ApprovalError):
    """A rejection without a reason (400)."""


class AuthenticationError(ApprovalError):
    """The bearer token is missing or not acceptable (401). ``detail`` is safe to show."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ApiError(ApprovalError):
    """The approval API answered the CLI with an error status (0: it could not be reached)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail


class InvalidConsent(ApprovalError):
    """A consent's grant or revocation breaks a rule (400); names the field, never a value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ConsentNotFound(ApprovalError):
    """No such consent (404)."""


class ConsentRevoked(ApprovalError):
    """The consent is revoked already (409)."""


class Forbidden(ApprovalError):
    """The caller's roles do not grant this (403): consents are the OM's."""


class SameOfficer(ApprovalError):
    """The officer decided an earlier step of this request's chain (409): the chain's steps
    are two checks, by two people."""


class OutsideTerm(ApprovalError):
    """The covenant is not in force now (409): no request is put before an officer and no
    decision or consent is accepted (docs/adr/0018-covenant-term.md)."""


class CovenantRefused(ApprovalError):
    """A renewal or early end the covenant does not allow (409); the message names the rule."""
