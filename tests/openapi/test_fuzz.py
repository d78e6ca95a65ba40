"""Schemathesis over the OpenAPI document, against the real server with an admin key: a bounded
number of generated requests per operation, valid and invalid. No answer is a 5xx, every error
is a problem document (or an OpenDSR error on OpenDSR routes), and every answer conforms to the
document: a declared status, media type, headers and schema.

`bench/fuzz.py` runs the same checks over many more cases, outside the suite.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bench.fuzz_checks import problem_document

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# About 48 operations: 6 cases each, valid and invalid, keeps the run near 300 requests.
CASES_PER_OPERATION = 6

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _fuzzed_api() -> Any:
    from app.main import create_app

    schema = schemathesis.openapi.from_dict(copy.deepcopy(create_app().openapi()))
    schema.config.generation.update(
        max_examples=CASES_PER_OPERATION,
        modes=["positive", "negative"],
        deterministic=True,
        no_shrink=True,
        database="none",  # no example database left in the working directory
    )
    # The coverage phase's boundary cases alone are about 2,000 requests: `bench/fuzz.py`.
    schema.config.phases.update(phases=["examples", "fuzzing"])
    return schema


# Loaded when the module is collected (no database needed): one test per operation.
fuzzed = _fuzzed_api()


@pytest.fixture(scope="session")
def admin_key(make_key) -> str:
    return make_key(["admin"])


@fuzzed.parametrize()
def test_generated_requests_get_documented_answers(case: Any, server: str, admin_key: str) -> None:
    case.call_and_validate(
        base_url=server,
        headers={"Authorization": f"Bearer {admin_key}"},
        checks=CHECKS,
        additional_checks=[problem_document],
    )
