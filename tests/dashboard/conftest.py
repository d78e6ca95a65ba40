from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


class Browser:
    """A TestClient with its own cookie jar, signed in through the sign-in form."""

    def __init__(self, client) -> None:
        self.client = client
        self.csrf = ""

    def sign_in(self, key: str, *, next_path: str = "/dashboard/requests"):
        form = self.client.get("/dashboard/sign-in")
        assert form.status_code == 200
        response = self.client.post(
            "/dashboard/sign-in",
            data={"csrf_token": csrf_of(form.text), "key": key, "next": next_path},
            follow_redirects=False,
        )
        if response.status_code == 303:
            self.csrf = csrf_of(self.client.get("/dashboard/requests").text)
        return response

    def get(self, path: str, **kwargs):
        return self.client.get(path, follow_redirects=False, **kwargs)

    def post(self, path: str, data: dict | None = None, *, csrf: bool = True, **kwargs):
        body = dict(data or {})
        if csrf:
            body["csrf_token"] = self.csrf
        return self.client.post(path, data=body, follow_redirects=False, **kwargs)


@pytest.fixture
def browser(database) -> Iterator[Browser]:
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield Browser(client)


@pytest.fixture
def admin_key(make_key) -> str:
    return make_key(["admin"])


@pytest.fixture
def signed_in(browser, admin_key) -> Browser:
    assert browser.sign_in(admin_key).status_code == 303
    return browser


def submit(api, headers, *, value: str, reference: str | None = None) -> dict:
    body: dict = {"identities": [{"type": "email", "value": value}]}
    if reference:
        body["reference"] = reference
    response = api.post("/v1/erasure-requests", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


@pytest.fixture
def held_headers(make_key) -> dict[str, str]:
    """A portal whose requests wait for an admin's approval."""
    key = make_key(["requests:write", "requests:read"], requires_approval=True)
    return {"Authorization": f"Bearer {key}"}


def register_person(api, headers, *, value: str) -> None:
    """A dataset holding one training record of the person (no model trained on it): erasing
    the person purges the record and signs a certificate."""
    dataset = api.post("/v1/datasets", json={"name": "dashboard-people"}, headers=headers)
    assert dataset.status_code == 201, dataset.text
    record = {
        "key": f"record-{value}",
        "identities": [{"type": "email", "value": value}],
        "features": [0.1, 0.2],
        "label": 1,
        "split": "train",
    }
    added = api.post(
        f"/v1/datasets/{dataset.json()['id']}/records", json={"records": [record]}, headers=headers
    )
    assert added.status_code == 201, added.text


def plan_now(request_id: str) -> str:
    """What the worker's planning and purge tasks do, in this process."""
    import time
    import uuid
    from datetime import timedelta

    from app.core.db import get_sessionmaker
    from app.erasure.models import ErasureRequest
    from app.erasure.planning import plan_request
    from app.erasure.progress import after_purge
    from workers.pipeline.sweeper import sweep

    with get_sessionmaker()() as session:
        plan_request(session, request_id=uuid.UUID(request_id), window=timedelta(0), max_attempts=3)
        session.commit()
    # The storage scrub the certificate waits for, as the worker's sweeper does; the worker's
    # own sweep may take the item first, so look again until one of them has.
    deadline = time.monotonic() + 30
    while True:
        swept = sweep()
        with get_sessionmaker()() as session:
            after_purge(
                session,
                job_ids=swept.job_ids,
                request_ids=swept.request_ids | {uuid.UUID(request_id)},
            )
            session.commit()
            request = session.get(ErasureRequest, uuid.UUID(request_id))
            assert request is not None
            if request.status != "planned" or time.monotonic() > deadline:
                return request.status
        time.sleep(0.2)
