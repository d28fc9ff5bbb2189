"""The API fuzzed from its own OpenAPI schema (schemathesis): no generated request may cause a server error,
and every answer must match the responses the schema declares (status codes, content type, body schema).

schemathesis' pytest plugin does not run under pytest 9, so each operation's Hypothesis strategy is driven here.
Its positive-data check is left out: the schema cannot say that `image` must be a real PNG or that an array's
bytes must match its shape, so schema-valid requests are rightly refused with BAD_INPUT.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

pytestmark = pytest.mark.slow
EXAMPLES_PER_OPERATION = 30


def test_api_never_answers_with_a_server_error(server) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"GET /v1/health", "POST /v1/jobs", "POST /v1/fit-jobs"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        fuzz()
    assert server.client().health()["status"] == "ok"
