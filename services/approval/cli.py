"""``dagmonitor approvals list|show|approve|reject|migrate``, ``dagmonitor consent
list|grant|revoke`` (the OM's standing consents), ``dagmonitor covenant status|renew|end``
(the covenant's term) and ``dagmonitor token``.

The approvals verbs call the HTTP API (``DAGMONITOR_APPROVAL_API_URL``, default
http://127.0.0.1:8083) with a bearer token from ``--token`` or ``DAGMONITOR_TOKEN``; nothing
here connects at import time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from dagmonitor.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def _settings() -> Any:
    from services.approval.config import ApprovalSettings

    return ApprovalSettings.load()


def _client(token: str | None, api_url: str | None) -> Any:
    from services.approval.client import ApprovalClient

    settings = _settings()
    token = token or (settings.token.get_secret_value() if settings.token else None)
    if not token:
        raise ConfigError(
            "no bearer token: pass --token or set DAGMONITOR_TOKEN "
            "(locally: `dagmonitor token --sub NAME --role OM`)"
        )
    return ApprovalClient(api_url or settings.approval_api_url, token)


def _api_options(func: F) -> F:
    func = click.option("--api-url", default=None, help="Approval API (default from settings).")(
        func
    )
    func = click.option("--token", default=None, help="Bearer token (default DAGMONITOR_TOKEN).")(
        func
    )
    return func


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


@click.group()
def approvals() -> None:
    """Review and decide approval requests (OM, burglary team, district police)."""


@approvals.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "rejected", "expired"]),
    default="pending",
    show_default=True,
)
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@_api_options
def list_requests(
    status: str, limit: int, as_json: bool, token: str | None, api_url: str | None
) -> None:
    """Summaries of the requests you may decide (no personal data)."""
    items = asyncio.run(_client(token, api_url).list(status, limit))
    if as_json:
        _print_json(items)
        return
    if not items:
        click.echo(f"no {status} requests for your roles")
        return
    click.echo(f"{'REQUEST':<34} {'CATEGORY':<22} {'APPROVER':<21} {'MK':<5} {'EXPIRES':<20}")
    for item in items:
        click.echo(
            f"{item['request_id']:<34} {item['category']:<22} {item['approver_role']:<21} "
            f"{item['mk_code'] or '-':<5} {item['expires_at'][:19]:<20}"
        )


@approvals.command()
@click.argument("request_id")
@_api_options
def show(request_id: str, token: str | None, api_url: str | None) -> None:
    """One request with its personal data, for review (this view is audited)."""
    _print_json(asyncio.run(_client(token, api_url).show(request_id)))


@approvals.command()
@click.argument("request_id")
@click.option("--reason", default=None, help="Why (optional when approving).")
@_api_options
def approve(request_id: str, reason: str | None, token: str | None, api_url: str | None) -> None:
    """Approve a pending request: its data is then provided as the covenant allows."""
    _print_json(asyncio.run(_client(token, api_url).decide(request_id, "approve", reason)))


@approvals.command()
@click.argument("request_id")
@click.option("--reason", required=True, help="Why the request is rejected (required).")
@_api_options
def reject(request_id: str, reason: str, token: str | None, api_url: str | None) -> None:
    """Reject a pending request: its personal data is deleted at once."""
    _print_json(asyncio.run(_client(token, api_url).decide(request_id, "reject", reason)))


@approvals.command()
def migrate() -> None:
    """Apply the approval service's database migrations (idempotent)."""
    from dagmonitor.db import migrate_service
    from services.approval.app import MIGRATIONS

    settings = _settings()
    applied = asyncio.run(migrate_service(settings, MIGRATIONS))
    for name in applied:
        click.echo(f"applied {settings.db_schema}: {name}")
    if not applied:
        click.echo(f"{settings.db_schema}: up to date")


@click.group()
def consent() -> None:
    """The OM's standing consents: the Dagmonitor and stolen-vehicle plates are provided only
    while one is in force (dagmonitor/gates.py). OM role only; every grant and revocation is
    audited."""


@consent.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@_api_options
def list_consents(as_json: bool, token: str | None, api_url: str | None) -> None:
    """Every consent, revoked ones too, newest first, and whether it is in force now."""
    items = asyncio.run(_client(token, api_url).consents())
    if as_json:
        _print_json(items)
        return
    if not items:
        click.echo("no consents recorded: the Dagmonitor and vehicle notices are held")
        return
    click.echo(f"{'CONSENT':<41} {'CATEGORY':<15} {'IN FORCE':<9} {'VALID UNTIL':<20} REFERENCE")
    for item in items:
        state = "yes" if item["in_force"] else ("revoked" if item["revoked_at"] else "no")
        click.echo(
            f"{item['consent_id']:<41} {item['category']:<15} {state:<9} "
            f"{item['valid_until'][:19]:<20} {item['reference']}"
        )


@consent.command("grant")
@click.argument("category", type=click.Choice(["DAGMONITOR", "VEHICLE_SIGNAL"]))
@click.option("--reference", required=True, help="The OM's reference, e.g. its letter's number.")
@click.option(
    "--valid-until",
    default=None,
    help="ISO date or date-time (default and at most: the covenant's end).",
)
@_api_options
def grant_consent(
    category: str,
    reference: str,
    valid_until: str | None,
    token: str | None,
    api_url: str | None,
) -> None:
    """Grant the standing consent of CATEGORY (supersedes its current one)."""
    client = _client(token, api_url)
    _print_json(asyncio.run(client.grant_consent(category, reference, valid_until)))


@consent.command("revoke")
@click.argument("consent_id")
@click.option("--reason", required=True, help="Why the consent is revoked (required).")
@_api_options
def revoke_consent(consent_id: str, reason: str, token: str | None, api_url: str | None) -> None:
    """Revoke a consent: from now on its category is held."""
    _print_json(asyncio.run(_client(token, api_url).revoke_consent(consent_id, reason)))


@click.group()
def covenant() -> None:
    """The covenant's term: status, renewal (on an evaluation of the ending term), early end,
    and the evaluation report (docs/adr/0018-covenant-term.md)."""


def _print_term(body: dict[str, Any]) -> None:
    state = "in force" if body["in_term"] else "NOT in force: nothing is provided"
    click.echo(f"term         {body['start_date']} .. {body['end_date']} ({state})")
    click.echo(f"period       {body['period']}, last month from {body['last_month_start']}")
    if body["ended_early_at"]:
        click.echo(f"ended early  {body['ended_early_at']}")
    click.echo(f"days left    {body['days_remaining']}")
    for event in body["events"]:
        on = f" on evaluation {event['evaluation_id']}" if event["evaluation_id"] else ""
        click.echo(
            f"{event['kind'].lower():<12} {event['recorded_at'][:19]} by {event['recorded_by']}"
            f"{on}: {event['end_before']} -> {event['end_after']}"
        )
    for evaluation in body["evaluations"]:
        click.echo(f"evaluation   {evaluation['evaluation_id']} sent {evaluation['sent_at'][:19]}")


@covenant.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@_api_options
def covenant_status(as_json: bool, token: str | None, api_url: str | None) -> None:
    """The term in force, its renewals and early end, and the evaluations sent."""
    body = asyncio.run(_client(token, api_url).covenant())
    if as_json:
        _print_json(body)
    else:
        _print_term(body)


@covenant.command("renew")
@click.option(
    "--evaluation",
    "evaluation_id",
    default=None,
    help="The evaluation report's provision id (default: the latest of the ending term).",
)
@click.option("--reason", default=None, help="The parties' decision, e.g. its reference.")
@_api_options
def covenant_renew(
    evaluation_id: str | None, reason: str | None, token: str | None, api_url: str | None
) -> None:
    """Renew the covenant for a year; refused without an evaluation of the ending term."""
    _print_term(asyncio.run(_client(token, api_url).renew_covenant(evaluation_id, reason)))


@covenant.command("end")
@click.option("--at", default=None, help="ISO 8601 date-time with offset (default: now).")
@click.option("--reason", required=True, help="Why the parties end it (required).")
@_api_options
def covenant_end(at: str | None, reason: str, token: str | None, api_url: str | None) -> None:
    """End the covenant early: from then on nothing is provided."""
    _print_term(asyncio.run(_client(token, api_url).end_covenant(at, reason)))


@click.command()
@click.option("--sub", default=None, help="The officer's id (the token's 'sub').")
@click.option(
    "--role",
    "roles",
    multiple=True,
    help="A role claim, e.g. OM, POLICE_BURGLARY_TEAM, POLICE_DISTRICT (repeatable).",
)
@click.option("--minutes", type=click.IntRange(1, 7 * 24 * 60), default=None)
@click.option(
    "--init-dev-key", is_flag=True, help="Create the local development key pair and exit."
)
@click.option("--force", is_flag=True, help="With --init-dev-key: replace an existing key.")
def token(
    sub: str | None, roles: tuple[str, ...], minutes: int | None, init_dev_key: bool, force: bool
) -> None:
    """Issue a development bearer token for the approval API (local development only).

    Refused unless DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE names a development key; create
    one with --init-dev-key.
    """
    from services.approval import tokens

    settings = _settings()
    if init_dev_key:
        path = settings.approval_dev_signing_key_file or tokens.default_dev_key_path()
        key_path, jwks_path = tokens.init_dev_key(path, force=force)
        click.echo(f"development signing key: {key_path}")
        click.echo(f"public key set (JWKS):   {jwks_path}")
        click.echo("use it (the service then trusts it too):")
        click.echo(f"  export DAGMONITOR_APPROVAL_DEV_SIGNING_KEY_FILE={key_path}")
        return
    if not sub or not roles:
        raise click.UsageError("--sub and at least one --role are required")
    click.echo(tokens.issue_dev_token(settings, sub=sub, roles=roles, minutes=minutes))
