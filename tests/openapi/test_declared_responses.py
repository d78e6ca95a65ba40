"""The document against the server: for a table of bad inputs, each route's answer has a status
the document declares for that route, a declared media type, and a body that validates against
the declared schema."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
import pytest

pytestmark = pytest.mark.integration

NOBODY = str(uuid.uuid4())
JSON = {"content-type": "application/json"}
ONE = {"identities": [{"type": "email", "value": "declared@example.com"}]}


@dataclass(frozen=True)
class Bad:
    """One bad input: the route (as the document names it), the request, the status expected."""

    method: str
    template: str
    status: int
    path: str = ""
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    key: str = "admin"  # which key: admin, portal, none or held (see `keys`)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path or self.template} -> {self.status}"


def _chunks() -> Iterator[bytes]:
    yield b'{"identities": [{"type": "email", "value": "'
    for _ in range(9):  # the suite's limit is 8 MiB
        yield b"x" * (1024 * 1024)
    yield b'"}]}'


R = "/v1/erasure-requests"
TABLE = [
    Bad("POST", R, 422, json={"identities": []}),
    Bad("POST", R, 422, json={"identities": [{"type": "email", "value": "a\x00b@example.com"}]}),
    Bad("POST", R, 400, content=b'{"identities": [', headers=JSON),
    Bad("POST", R, 415, content=b"{}", headers={"content-type": "text/plain"}),
    Bad("POST", R, 401, json={"identities": []}, key="none"),
    Bad("POST", R, 403, json={"identities": []}, key="lineage"),
    Bad("POST", R, 413, headers=JSON, content=b"stream"),
    Bad("POST", R, 400, json=ONE, headers={"Idempotency-Key": "k" * 256}),
    Bad("GET", R, 422, path=f"{R}?limit=0"),
    Bad("GET", R, 422, path=f"{R}?cursor=not-a-cursor"),
    Bad("GET", R, 400, path=f"{R}?refrence=DSR-1"),
    Bad("GET", R + "/{request_id}", 422, path=f"{R}/not-a-uuid"),
    Bad("GET", R + "/{request_id}", 404, path=f"{R}/{NOBODY}"),
    Bad("GET", R + "/{request_id}/certificate", 409, path=f"{R}/HELD/certificate"),
    Bad("POST", R + "/{request_id}/approve", 403, path=f"{R}/HELD/approve", key="portal"),
    Bad("POST", R + "/{request_id}/retry", 409, path=f"{R}/HELD/retry"),
    Bad("POST", R + "/{request_id}/extend", 422, path=f"{R}/HELD/extend", json={"months": 3}),
    Bad("POST", R + "/{request_id}/deny", 422, path=f"{R}/HELD/deny", json={"reason": ""}),
    Bad("POST", "/v1/datasets", 422, json={"name": ""}),
    Bad("POST", "/v1/datasets/{dataset_id}/records", 404, path=f"/v1/datasets/{NOBODY}/records",
        json={"records": [{"key": "k", "identities": [{"type": "email", "value": "r@ex.com"}],
                           "features": [1.0], "label": 0}]}),
    Bad("POST", "/v1/models", 404, json={"name": "m", "dataset_id": NOBODY, "architecture": "mlp"}),
    Bad("POST", "/v1/models/{model_id}/train", 404, path=f"/v1/models/{NOBODY}/train"),
    Bad("POST", "/v1/models/{model_id}/predict", 422, path=f"/v1/models/{NOBODY}/predict",
        json={"features": []}),
    Bad("POST", "/v1/models/{model_id}/generate", 422, path=f"/v1/models/{NOBODY}/generate",
        json={"prompts": []}),
    Bad("POST", "/v1/models/{model_id}/generate", 404, path=f"/v1/models/{NOBODY}/generate",
        json={"prompts": ["Question: who?\nAnswer:"]}),
    Bad("GET", "/v1/base-models/{base_model_id}", 404, path=f"/v1/base-models/{NOBODY}"),
    Bad("GET", "/v1/jobs/{job_id}", 404, path=f"/v1/jobs/{NOBODY}"),
    Bad("GET", "/v1/jobs", 422, path="/v1/jobs?status=sleeping"),
    Bad("GET", "/v1/audit/events", 422, path="/v1/audit/events?after_seq=-1"),
    Bad("GET", "/v1/audit/verify", 403, key="portal"),
    Bad("POST", "/v1/webhook-endpoints", 422,
        json={"url": "http://169.254.169.254/", "events": ["*"]}),
    Bad("POST", "/v1/webhook-endpoints", 422,
        json={"url": "https://ex.com/", "events": ["*"], "ordering": "random"}),
    Bad("PATCH", "/v1/webhook-endpoints/{endpoint_id}", 404,
        path=f"/v1/webhook-endpoints/{NOBODY}", json={"ordering": "independent"}),
    Bad("PATCH", "/v1/webhook-endpoints/{endpoint_id}", 422,
        path=f"/v1/webhook-endpoints/{NOBODY}", json={"ordering": "random"}),
    Bad("POST", "/v1/webhook-endpoints", 422, json={"url": "https://ex.com/", "events": ["x"]}),
    Bad("DELETE", "/v1/webhook-endpoints/{endpoint_id}", 404,
        path=f"/v1/webhook-endpoints/{NOBODY}"),
    Bad("POST", "/v1/webhook-deliveries/{delivery_id}/redeliver", 422,
        path="/v1/webhook-deliveries/0/redeliver"),
    Bad("POST", "/v1/webhook-deliveries/{delivery_id}/redeliver", 404,
        path="/v1/webhook-deliveries/999999999/redeliver"),
    Bad("POST", "/v1/clients", 422, json={"name": "c", "scopes": ["root"]}),
    Bad("POST", "/v1/clients/{client_id}/revoke", 404, path=f"/v1/clients/{NOBODY}/revoke"),
    Bad("GET", "/opendsr/v1/discovery", 400, path="/opendsr/v1/discovery?x=1"),
    Bad("POST", "/opendsr/v1/requests", 400, json={"regulation": "gdpr"}),
    Bad("POST", "/opendsr/v1/requests", 401, json={}, key="none"),
    Bad("POST", "/opendsr/v1/requests", 400, json={"regulation": "gdpr", "api_version": "1.0",
        "subject_request_id": str(uuid.uuid1()), "subject_request_type": "erasure",
        "submitted_time": "2018-10-02T15:00:00Z",
        "subject_identities": [{"identity_type": "email", "identity_value": "d@example.com"}]}),
    Bad("GET", "/opendsr/v1/requests/{subject_request_id}", 400,
        path=f"/opendsr/v1/requests/{NOBODY}?controller_id=nobody"),
    Bad("GET", "/opendsr/v1/requests/{subject_request_id}", 404,
        path=f"/opendsr/v1/requests/{NOBODY}"),
    Bad("DELETE", "/opendsr/v1/requests/{subject_request_id}", 400,
        path="/opendsr/v1/requests/not-a-uuid"),
    Bad("GET", "/opendsr/v1/requests/{subject_request_id}", 403,
        path=f"/opendsr/v1/requests/{NOBODY}", key="lineage"),
]  # fmt: skip


@pytest.fixture(scope="module")
def keys(make_key, api) -> dict[str, str]:
    return {
        "admin": make_key(["admin"]),
        "portal": make_key(["requests:write", "requests:read"]),
        "lineage": make_key(["lineage:write"]),
        "held": make_key(["requests:write", "requests:read"], requires_approval=True),
    }


@pytest.fixture(scope="module")
def held_request(api, keys) -> str:
    """A request waiting for an admin's approval: it stays `pending_approval`."""
    response = api.post(
        R,
        json={"identities": [{"type": "email", "value": "declared-held@example.com"}]},
        headers={"Authorization": f"Bearer {keys['held']}"},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Callable[[Any], None]:
    """Validates an instance against `schema`, whose `$ref`s point into the document."""
    check = jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})
    return check.validate


def declared(document: dict[str, Any], method: str, template: str, response: Any) -> None:
    """`response` is what the document says this route may answer."""
    operation = document["paths"][template][method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], f"{status} is not declared: {response.text[:300]}"
    content = operation["responses"][status].get("content", {})
    media_type = response.headers.get("content-type", "").split(";")[0]
    assert media_type in content, f"{media_type} is not declared for {status}: {list(content)}"
    validator(document, content[media_type]["schema"])(response.json())


@pytest.mark.parametrize("bad", TABLE, ids=[bad.id for bad in TABLE])
def test_every_answer_is_declared(api, document, keys, held_request, bad: Bad) -> None:
    headers = dict(bad.headers)
    if bad.key != "none":
        headers["Authorization"] = f"Bearer {keys[bad.key]}"
    content = _chunks() if bad.content == b"stream" else bad.content
    response = api.request(
        bad.method,
        (bad.path or bad.template).replace("HELD", held_request),
        json=bad.json,
        content=content,
        headers=headers,
    )
    assert response.status_code == bad.status, response.text[:500]
    declared(document, bad.method, bad.template, response)


def test_the_document_declares_no_fastapi_validation_error(document) -> None:
    text = str(document)
    assert "HTTPValidationError" not in text
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    media = set(response["content"])
                    own = {"application/json"} if path.startswith("/opendsr/") else set()
                    assert media <= {"application/problem+json"} | own, (method, path, status)
