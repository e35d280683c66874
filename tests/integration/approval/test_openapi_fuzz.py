"""schemathesis against the OpenAPI document, over real HTTP: no 500 on any generated input.

Cases come from the document (valid ones and deliberately invalid ones), for random request
ids and for real pending requests, with a good token of each approver role, none, or junk.
Each response must not be a server error and must match the documented status codes and
response schemas.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from services.approval.api import openapi_document
from services.approval.domain import Category
from tests.integration.approval.conftest import Officers, approval_settings, seed
from tests.integration.approval.threaded import ThreadedService
from tests.unit.approval.samples import approval_request

pytestmark = [
    pytest.mark.integration,
    # schemathesis' own strategies use `random` internally; not ours to fix
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

SCHEMA = schemathesis.openapi.from_dict(copy.deepcopy(openapi_document()))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def service(approval_kafka, officers: Officers) -> Iterator[ThreadedService]:
    with ThreadedService(approval_settings(approval_kafka, officers)) as running:
        running.pending = [  # type: ignore[attr-defined]
            running.run(seed(running.app, approval_request(c))) for c in Category for _ in range(5)
        ]
        yield running


def _auth(officers: Officers) -> st.SearchStrategy[dict[str, str]]:
    return st.sampled_from(
        [
            officers.header(["OM"]),
            officers.header(["POLICE_BURGLARY_TEAM"]),
            officers.header(["POLICE_DISTRICT"]),
            officers.header(["SOMETHING_ELSE"]),
            {},
            {"Authorization": "Bearer not-a-token"},
            {"Authorization": "Basic b206b20="},
        ]
    )


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_server_error_on_generated_input(
    service: ThreadedService, officers: Officers, data: st.DataObject
) -> None:
    mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
    real_id = data.draw(st.booleans())
    pending = service.pending  # type: ignore[attr-defined]
    path_parameters = {"request_id": data.draw(st.sampled_from(pending))} if real_id else None
    case = data.draw(SCHEMA.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    headers = data.draw(_auth(officers))
    case.call_and_validate(base_url=service.url, headers=headers, checks=CHECKS)
