"""The HTTP contract around every route: unknown query parameters, content types, body size,
malformed JSON, readiness. Each answer is a problem document naming what is wrong."""

from __future__ import annotations

import uuid

import pytest

from app.core.errors import json_pointer_at

URL = "/v1/erasure-requests"
GOOD = b'{"identities": [{"type": "email", "value": "contract@example.com"}]}'


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


@pytest.mark.parametrize(
    "path",
    [
        f"{URL}?refrence=DSR-1",
        f"{URL}/{uuid.uuid4()}?refrence=DSR-1",
        "/v1/audit/events?after=3&refrence=DSR-1",
        "/healthz?refrence=1",
        "/v1/jobs?refrence=1",
    ],
)
def test_unknown_query_parameters_are_named(api, admin_headers, path):
    body = _problem(api.get(path, headers=admin_headers), 400)
    assert "refrence" in [e["parameter"] for e in body["errors"]]
    assert body["errors"][0]["in"] == "query"


def test_known_query_parameters_still_work(api, admin_headers):
    assert api.get(f"{URL}?limit=5&status=completed", headers=admin_headers).status_code == 200


def test_opendsr_names_an_unknown_query_parameter_in_its_own_shape(api, admin_headers):
    response = api.get("/opendsr/v1/discovery?foo=1")
    assert response.status_code == 400
    assert response.json()["error"]["errors"][0]["location"] == "foo"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_sent_as_json_is_415(api, admin_headers, content_type):
    headers = dict(admin_headers)
    if content_type:
        headers["content-type"] = content_type
    body = _problem(api.post(URL, content=GOOD, headers=headers), 415)
    assert body["errors"][0]["parameter"] == "Content-Type"


def test_json_with_a_charset_and_problem_json_are_fine(api, admin_headers):
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        headers = admin_headers | {"content-type": content_type}
        assert api.post(URL, content=GOOD, headers=headers).status_code == 202


def test_a_chunked_body_over_the_limit_is_413(api, admin_headers):
    chunk = b"x" * (1024 * 1024)

    def chunks():
        yield b'{"identities": [{"type": "email", "value": "'
        for _ in range(9):  # the suite's limit is 8 MiB
            yield chunk
        yield b'"}]}'

    response = api.post(
        URL, content=chunks(), headers=admin_headers | {"content-type": "application/json"}
    )
    body = _problem(response, 413)
    assert body["max_bytes"] == 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("raw", "pointer"),
    [
        (b"nonsense", "#"),
        (b'{"identities": [', "#/identities/0"),
        (b'{"identities": [{"type": "email", "value": tru}]}', "#/identities/0/value"),
        (b'{"identities": [{"type": "email"}, {"type" "x"}]}', "#/identities/1/type"),
        (b'{"a/b": {"c~d": [1, 2, oops]}}', "#/a~1b/c~0d/2"),
    ],
)
def test_malformed_json_points_at_a_json_pointer(api, admin_headers, raw, pointer):
    response = api.post(
        URL, content=raw, headers=admin_headers | {"content-type": "application/json"}
    )
    body = _problem(response, 400)
    assert body["errors"] == [{"pointer": pointer, "detail": "Body is not valid JSON"}]


def test_json_pointer_at_escaped_strings():
    document = '{"k\\"ey": ["a\\\\", {"x": '
    assert json_pointer_at(document, len(document)) == '#/k"ey/1/x'
    assert json_pointer_at("", 0) == "#"
