"""Kafka ACLs through the admin protocol (aiokafka has the wire formats, not the calls).

``create_acls`` and ``delete_acls`` send CreateAcls / DeleteAcls (version 1, the oldest Kafka
4 still takes) to a broker, as the admin principal; both are idempotent on the broker's side.
A binding names resources and operations as Strimzi spells them (``topic``, ``Read``), so the
one principal table (``deploy/k8s/access.py``) renders to both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
)
from aiokafka.protocol.api import Request

from dagmonitor import kafka_clients
from dagmonitor.errors import DagmonitorError
from dagmonitor.settings import DagmonitorSettings

RESOURCE_TYPES = {"topic": 2, "group": 3, "cluster": 4, "transactionalId": 5}
PATTERN_TYPES = {"literal": 3, "prefixed": 4}
OPERATIONS = {
    "All": 2,
    "Read": 3,
    "Write": 4,
    "Create": 5,
    "Delete": 6,
    "Alter": 7,
    "Describe": 8,
    "DescribeConfigs": 10,
    "AlterConfigs": 11,
    "IdempotentWrite": 12,
}
_ALLOW = 3
_BATCH = 200


class AclError(DagmonitorError):
    """The broker refused to create or delete an ACL."""


@dataclass(frozen=True)
class AclBinding:
    """Allow ``principal`` (``User:<name>``) ``operation`` on one resource pattern, any host."""

    principal: str
    resource: str
    name: str
    pattern: str
    operation: str

    def wire(self) -> tuple[int, str, int, str, str, int, int]:
        return (
            RESOURCE_TYPES[self.resource],
            "kafka-cluster" if self.resource == "cluster" else self.name,
            PATTERN_TYPES[self.pattern],
            self.principal,
            "*",
            OPERATIONS[self.operation],
            _ALLOW,
        )


class _CreateAcls(Request[CreateAclsRequest_v1]):
    API_KEY = 30

    def __init__(self, bindings: Sequence[AclBinding]) -> None:
        self._bindings = bindings

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class([binding.wire() for binding in self._bindings])


class _DeleteAcls(Request[DeleteAclsRequest_v1]):
    API_KEY = 31

    def __init__(self, bindings: Sequence[AclBinding]) -> None:
        self._bindings = bindings

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class([binding.wire() for binding in self._bindings])


async def _send(settings: DagmonitorSettings, requests: Iterable[Request]) -> list[tuple[int, str]]:
    admin = kafka_clients.admin(settings, client_id="dagmonitor-acls")
    errors: list[tuple[int, str]] = []
    try:
        await admin.start()
        for request in requests:
            response = await admin._send_request(request)
            results = response.to_object()
            for entry in results.get("creation_responses", results.get("filter_responses", [])):
                if entry["error_code"] != 0:
                    errors.append((entry["error_code"], entry["error_message"] or ""))
    except KafkaError as exc:
        raise AclError(f"talking to Kafka at {settings.kafka_bootstrap} failed: {exc}") from exc
    finally:
        await admin.close()
    return errors


def _batches(bindings: Sequence[AclBinding]) -> list[Sequence[AclBinding]]:
    return [bindings[start : start + _BATCH] for start in range(0, len(bindings), _BATCH)]


async def create_acls(settings: DagmonitorSettings, bindings: Sequence[AclBinding]) -> int:
    """Create the ``bindings`` (existing ones are kept as they are); returns how many."""
    errors = await _send(settings, [_CreateAcls(batch) for batch in _batches(bindings)])
    if errors:
        raise AclError(f"the broker refused {len(errors)} ACL(s), e.g. {errors[0]}")
    return len(bindings)


async def delete_acls(settings: DagmonitorSettings, bindings: Sequence[AclBinding]) -> None:
    """Delete exactly the ``bindings`` (each one a filter that matches only itself)."""
    errors = await _send(settings, [_DeleteAcls(batch) for batch in _batches(bindings)])
    if errors:
        raise AclError(f"the broker refused to delete {len(errors)} ACL(s), e.g. {errors[0]}")
