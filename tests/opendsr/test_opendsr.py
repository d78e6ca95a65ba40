"""OpenDSR 2.0: discovery, requests, status, cancellation, errors and signed callbacks."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.conftest import table_counts, wait_for
from tests.webhooks.receiver import Receiver

IDENTITY = "johndoe@example.com"


def spec_example(**overrides) -> dict:
    """The sample request of the OpenDSR 2.0 specification."""
    body = {
        "subject_request_id": "a7551968-d5d6-44b2-9831-815ac9017798",
        "regulation": "gdpr",
        "subject_request_type": "erasure",
        "submitted_time": "2018-10-02T15:00:00Z",
        "subject_identities": [
            {"identity_type": "email", "identity_value": IDENTITY, "identity_format": "raw"}
        ],
        "api_version": "2.0",
        "status_callback_urls": ["https://example-controller.com/opendsr/callbacks"],
        "extensions": {
            "example-processor.com": {"foo-processor-custom-id": 123456, "property_id": "123456"}
        },
    }
    return body | overrides


@pytest.fixture
def portal(make_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(['requests:write', 'requests:read'])}"}


@pytest.fixture
def held_portal(make_key) -> dict[str, str]:
    key = make_key(["requests:write", "requests:read"], requires_approval=True)
    return {"Authorization": f"Bearer {key}"}


def verify_signature(api, body: bytes, headers) -> None:
    certificate = x509.load_pem_x509_certificate(api.get("/opendsr/v1/certificate.pem").content)
    signature = base64.b64decode(headers["x-opendsr-signature"])
    certificate.public_key().verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
    assert headers["x-opendsr-processor-domain"] == "localhost"


def assert_spec_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status
    assert error["message"]
    assert IDENTITY not in response.text
    return error


def test_discovery_describes_what_is_supported(api):
    response = api.get("/opendsr/v1/discovery")
    assert response.status_code == 200
    body = response.json()
    assert body["api_version"] == "2.0"
    assert body["supported_subject_request_types"] == ["erasure"]
    assert {"identity_type": "email", "identity_format": "sha256"} in body["supported_identities"]
    assert body["processor_certificate"] == "https://localhost/opendsr/v1/certificate.pem"
    verify_signature(api, response.content, response.headers)


def test_the_certificate_url_never_comes_from_the_request(api):
    for headers in ({"Host": "evil.example"}, {"X-Forwarded-Host": "evil.example"}):
        response = api.get("/opendsr/v1/discovery", headers=headers)
        assert response.status_code == 200
        assert response.json()["processor_certificate"] == (
            "https://localhost/opendsr/v1/certificate.pem"
        )
        assert b"evil" not in response.content
        verify_signature(api, response.content, response.headers)


def test_the_public_base_url_setting():
    from pydantic import ValidationError

    from app.core.config import Settings

    configured = Settings(public_base_url="https://privacy.example.com/lethe/")
    assert configured.resolved_public_base_url == "https://privacy.example.com/lethe"
    by_domain = Settings(opendsr_processor_domain="dsr.example.com")
    assert by_domain.resolved_public_base_url == "https://dsr.example.com"
    for wrong in ("ftp://example.com", "example.com", "https://example.com/?x=1"):
        with pytest.raises(ValidationError):
            Settings(public_base_url=wrong)


def test_the_specification_example_is_accepted(api, portal, session):
    response = api.post("/opendsr/v1/requests", json=spec_example(), headers=portal)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "controller_id",
        "expected_completion_time",
        "received_time",
        "subject_request_id",
        "api_version",
    }
    assert body["subject_request_id"] == "a7551968-d5d6-44b2-9831-815ac9017798"
    assert body["expected_completion_time"].endswith("Z")
    verify_signature(api, response.content, response.headers)
    assert IDENTITY not in response.text

    # subject_request_id is the idempotency key. A worker left running by earlier tests plans
    # the new request in the background: a longer quiet spell lets it finish on a slow machine.
    before = table_counts(session, quiet=3.0)
    replay = api.post("/opendsr/v1/requests", json=spec_example(), headers=portal)
    assert (replay.status_code, replay.json()) == (201, body)
    changed = api.post(
        "/opendsr/v1/requests",
        json=spec_example(submitted_time="2019-01-01T00:00:00Z"),
        headers=portal,
    )
    error = assert_spec_error(changed, 400)
    assert error["message"] == "This subject_request_id was already used with a different request"
    assert "Idempotency-Key" not in changed.text
    assert error["errors"] == [
        {
            "domain": "Request",
            "reason": "subject-request-id-reused",
            "message": "subject_request_id: already used with a different request",
            "location": "#/subject_request_id",
        }
    ]
    assert table_counts(session) == before

    status = api.get(f"/opendsr/v1/requests/{body['subject_request_id']}", headers=portal)
    assert status.status_code == 200
    verify_signature(api, status.content, status.headers)
    assert status.json()["request_status"] in {"pending", "in_progress", "completed"}
    assert status.json()["controller_id"] == body["controller_id"]


@pytest.mark.parametrize("kind", ["access", "portability", "deletion"])
def test_other_request_types_name_what_is_supported(api, portal, kind):
    response = api.post(
        "/opendsr/v1/requests", json=spec_example(subject_request_type=kind), headers=portal
    )
    error = assert_spec_error(response, 400)
    assert "erasure" in error["message"]
    assert error["errors"][0]["location"] == "#/subject_request_type"
    assert error["errors"][0]["domain"] == "Validation"


def test_malformed_requests_get_the_specification_error(api, portal):
    body = spec_example()
    del body["subject_request_id"]
    error = assert_spec_error(api.post("/opendsr/v1/requests", json=body, headers=portal), 400)
    assert error["errors"][0]["location"] == "#/subject_request_id"

    sha1 = spec_example(
        subject_request_id=str(uuid.uuid4()),
        subject_identities=[
            {"identity_type": "email", "identity_value": "a" * 40, "identity_format": "sha1"}
        ],
    )
    error = assert_spec_error(api.post("/opendsr/v1/requests", json=sha1, headers=portal), 400)
    assert "raw, sha256" in error["message"]

    bad_digest = spec_example(
        subject_request_id=str(uuid.uuid4()),
        subject_identities=[
            {"identity_type": "email", "identity_value": "zz", "identity_format": "sha256"}
        ],
    )
    error = assert_spec_error(
        api.post("/opendsr/v1/requests", json=bad_digest, headers=portal), 400
    )
    assert error["errors"][0]["location"] == "#/subject_identities/0"
    assert "64 hexadecimal" in error["message"]

    unknown_type = spec_example(
        subject_request_id=str(uuid.uuid4()),
        subject_identities=[{"identity_type": "ios_vendor_id", "identity_value": IDENTITY}],
    )
    assert_spec_error(api.post("/opendsr/v1/requests", json=unknown_type, headers=portal), 400)
    assert_spec_error(api.post("/opendsr/v1/requests", content=b"{not json", headers=portal), 400)
    assert_spec_error(api.post("/opendsr/v1/requests", json=spec_example()), 401)
    assert_spec_error(api.get(f"/opendsr/v1/requests/{uuid.uuid4()}", headers=portal), 404)
    assert_spec_error(api.get("/opendsr/v1/requests/not-a-uuid", headers=portal), 400)


@pytest.mark.parametrize("version", ["1.0", "2", "2.1", "3.0"])
def test_an_unsupported_api_version_is_refused(api, portal, version):
    body = spec_example(subject_request_id=str(uuid.uuid4()), api_version=version)
    error = assert_spec_error(api.post("/opendsr/v1/requests", json=body, headers=portal), 400)
    assert error["errors"][0]["location"] == "#/api_version"
    assert error["errors"][0]["domain"] == "Validation"
    assert "supported: 2.0" in error["message"]


def test_api_version_may_be_left_out(api, portal):
    body = spec_example(subject_request_id=str(uuid.uuid4()))
    del body["api_version"]
    response = api.post("/opendsr/v1/requests", json=body, headers=portal)
    assert response.status_code == 201, response.text
    assert response.json()["api_version"] == "2.0"


@pytest.mark.parametrize("made", [uuid.uuid1, lambda: uuid.uuid3(uuid.NAMESPACE_DNS, "x")])
def test_subject_request_id_must_be_a_version_4_uuid(api, portal, made):
    body = spec_example(subject_request_id=str(made()))
    error = assert_spec_error(api.post("/opendsr/v1/requests", json=body, headers=portal), 400)
    assert error["errors"][0]["location"] == "#/subject_request_id"
    assert "UUID version 4" in error["message"]


def test_an_admin_sees_every_clients_requests(api, make_key, admin_headers):
    keys = [make_key(["requests:write", "requests:read"]) for _ in range(2)]
    first, second = ({"Authorization": f"Bearer {key}"} for key in keys)
    body = spec_example(subject_request_id=str(uuid.uuid4()), status_callback_urls=[])
    url = f"/opendsr/v1/requests/{body['subject_request_id']}"
    created = api.post("/opendsr/v1/requests", json=body, headers=first)
    assert created.status_code == 201
    controller = created.json()["controller_id"]

    seen = api.get(url, headers=admin_headers)
    assert seen.status_code == 200, seen.text
    assert seen.json()["controller_id"] == controller
    verify_signature(api, seen.content, seen.headers)
    assert_spec_error(api.get(url, headers=second), 404)

    # Another controller may use the same id; the admin then names whose request it means.
    assert api.post("/opendsr/v1/requests", json=body, headers=second).status_code == 201
    error = assert_spec_error(api.get(url, headers=admin_headers), 409)
    assert error["errors"][0]["location"] == "controller_id"
    mine = api.get(url, params={"controller_id": controller}, headers=admin_headers)
    assert mine.status_code == 200
    assert mine.json()["controller_id"] == controller
    assert api.get(url, headers=second).json()["controller_id"] != controller
    assert_spec_error(api.get(url, params={"controller_id": controller}, headers=second), 404)


def test_callback_urls_must_not_point_inside(api, portal):
    body = spec_example(
        subject_request_id=str(uuid.uuid4()),
        status_callback_urls=["http://169.254.169.254/latest"],
    )
    error = assert_spec_error(api.post("/opendsr/v1/requests", json=body, headers=portal), 400)
    assert error["errors"][0]["location"] == "#/status_callback_urls/0"


def test_cancel_while_pending_then_the_specification_error(api, held_portal):
    body = spec_example(subject_request_id=str(uuid.uuid4()), status_callback_urls=[])
    assert api.post("/opendsr/v1/requests", json=body, headers=held_portal).status_code == 201
    url = f"/opendsr/v1/requests/{body['subject_request_id']}"
    assert api.get(url, headers=held_portal).json()["request_status"] == "pending"

    cancelled = api.delete(url, headers=held_portal)
    assert cancelled.status_code == 202
    assert set(cancelled.json()) == {
        "controller_id",
        "subject_request_id",
        "received_time",
        "api_version",
    }
    verify_signature(api, cancelled.content, cancelled.headers)
    assert api.get(url, headers=held_portal).json()["request_status"] == "cancelled"
    error = assert_spec_error(api.delete(url, headers=held_portal), 400)
    assert "cancelled" in error["message"]


def test_cancel_after_pending_is_refused(api, portal, celery_worker):
    body = spec_example(subject_request_id=str(uuid.uuid4()), status_callback_urls=[])
    assert api.post("/opendsr/v1/requests", json=body, headers=portal).status_code == 201
    url = f"/opendsr/v1/requests/{body['subject_request_id']}"
    wait_for(lambda: api.get(url, headers=portal).json()["request_status"] == "completed")
    error = assert_spec_error(api.delete(url, headers=portal), 400)
    assert "only `pending` requests can be cancelled" in error["message"]


def test_a_denial_is_cancelled_and_says_so(api, held_portal, admin_headers):
    body = spec_example(subject_request_id=str(uuid.uuid4()), status_callback_urls=[])
    api.post("/opendsr/v1/requests", json=body, headers=held_portal)
    url = f"/opendsr/v1/requests/{body['subject_request_id']}"
    details = api.get(url, headers=held_portal).json()["extensions"]["localhost"]
    denied = api.post(
        f"/v1/erasure-requests/{details['erasure_request_id']}/deny",
        json={"reason": "Art. 17(3)(e): legal claims"},
        headers=admin_headers,
    )
    assert denied.status_code == 200
    status = api.get(url, headers=held_portal).json()
    assert status["request_status"] == "cancelled"
    assert status["extensions"]["localhost"]["denied"] is True
    assert status["extensions"]["localhost"]["lethe_status"] == "denied"


def test_status_callbacks_arrive_signed(api, portal, celery_worker, receiver: Receiver):
    callback_url = receiver.url("/opendsr/callbacks")
    body = spec_example(subject_request_id=str(uuid.uuid4()), status_callback_urls=[callback_url])
    created = api.post("/opendsr/v1/requests", json=body, headers=portal)
    assert created.status_code == 201, created.text

    def statuses() -> list[str]:
        return [json.loads(r.body)["request_status"] for r in receiver.at("/opendsr/callbacks")]

    wait_for(lambda: "completed" in statuses())
    assert list(dict.fromkeys(statuses())) == ["pending", "in_progress", "completed"]
    for item in receiver.at("/opendsr/callbacks"):
        verify_signature(api, item.body, item.headers)
        callback = json.loads(item.body)
        assert callback["status_callback_url"] == callback_url
        assert callback["subject_request_id"] == body["subject_request_id"]
        assert callback["controller_id"] == created.json()["controller_id"]
        assert IDENTITY.encode() not in item.body


@pytest.mark.parametrize(
    ("lethe", "opendsr"),
    [
        ("received", "pending"),
        ("pending_approval", "pending"),
        ("approved", "pending"),
        ("planning", "in_progress"),
        ("planned", "in_progress"),
        ("running", "in_progress"),
        ("verifying", "in_progress"),
        ("failed", "in_progress"),
        ("completed", "completed"),
        ("cancelled", "cancelled"),
        ("denied", "cancelled"),
    ],
)
def test_status_mapping(lethe, opendsr):
    from app.erasure.enums import RequestStatus as Status
    from app.opendsr.mapping import request_status

    assert Status(lethe)
    assert request_status(lethe) == opendsr
