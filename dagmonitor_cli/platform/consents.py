"""The development stack's standing consents of the OM (``dagmonitor.gates``).

The Dagmonitor and stolen-vehicle plates are provided only while the OM's standing consent is
in force. ``dagmonitor up`` records one per such category for the local stack, through the
approval API as a development OM officer would, so that the demo mails everything; an
existing consent in force is left as it is.
"""

from __future__ import annotations

from dagmonitor.gates import CONSENT_CATEGORIES

DEV_OFFICER = "om-officier-dev"
DEV_REFERENCE = "OM/DEV-{category} (lokale ontwikkelomgeving)"


async def grant_development_consents(api_url: str) -> list[str]:
    """Grant each consent category that has none in force; returns the categories granted."""
    from services.approval.client import ApprovalClient
    from services.approval.config import ApprovalSettings
    from services.approval.tokens import issue_dev_token

    token = issue_dev_token(ApprovalSettings.load(), sub=DEV_OFFICER, roles=["OM"], minutes=10)
    client = ApprovalClient(api_url, token)
    in_force = {c["category"] for c in await client.consents() if c["in_force"]}
    granted = []
    for category in CONSENT_CATEGORIES:
        if category.value not in in_force:
            reference = DEV_REFERENCE.format(category=category.value)
            await client.grant_consent(category.value, reference)
            granted.append(category.value)
    return granted
