"""The principals of the local broker: SCRAM passwords and ACLs from the one principal table.

Every principal of ``deploy/k8s/access.py`` (and the broker's own user) gets a random password,
kept in ``.local/kafka/credentials.json`` (mode 0600) and created on the broker when its
storage is formatted. ``apply_acls`` creates the table's ACLs for a deployment prefix, as the
admin; the broker denies everything else (ADR 0021).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from dagmonitor.acl_admin import AclBinding, create_acls, delete_acls
from dagmonitor.settings import DagmonitorSettings
from deploy.k8s.access import ADMIN, PRINCIPALS, Row, acl_rules

BROKER_USER = "dagmonitor-broker"
"""The broker's own SCRAM user (inter-broker listener), a super user."""


def scram_users() -> list[str]:
    """Every SCRAM user the local broker knows: the table's principals and the broker."""
    return [BROKER_USER, *(row.principal for row in PRINCIPALS)]


def ensure_credentials(path: Path) -> dict[str, str]:
    """The password of every SCRAM user, created for users that have none yet."""
    try:
        passwords: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError):
        passwords = {}
    missing = [user for user in scram_users() if user not in passwords]
    if missing:
        # token_urlsafe: no ',' '[' ']' '=' the storage tool's --add-scram syntax would trip on.
        passwords.update({user: secrets.token_urlsafe(24) for user in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(passwords, handle, indent=2, sort_keys=True)
        path.chmod(0o600)
    return passwords


def bindings(rows: Iterable[Row] = PRINCIPALS, prefix: str = "") -> list[AclBinding]:
    """The ACL bindings of ``rows`` for the deployment with topic prefix ``prefix``."""
    return [
        AclBinding(f"User:{row.principal}", rule.resource, rule.name, rule.pattern, operation)
        for row in rows
        for rule in acl_rules(row, prefix)
        for operation in rule.operations
    ]


async def apply_acls(
    settings: DagmonitorSettings, prefix: str = "", rows: Iterable[Row] = PRINCIPALS
) -> list[AclBinding]:
    """Create the ACLs of ``rows`` under ``prefix`` on the broker, connected as the admin."""
    wanted = bindings(rows, prefix)
    await create_acls(settings.as_principal(ADMIN), wanted)
    return wanted


async def remove_acls(settings: DagmonitorSettings, applied: list[AclBinding], prefix: str) -> None:
    """Delete the ACLs ``apply_acls`` created for the deployment ``prefix`` (a test's, at its
    end): only those naming its own resources, never the admin's or the test suite's, which
    hold for every deployment."""
    if not prefix:
        raise ValueError("the stack's own ACLs are not removed")
    own = [binding for binding in applied if binding.name.startswith(prefix)]
    await delete_acls(settings.as_principal(ADMIN), own)
