"""Registering, listing, deleting endpoints; the SSRF guard."""

from __future__ import annotations

import ipaddress

import pytest

from app.webhooks.urls import refusal
from tests.conftest import table_counts


def _headers(make_key, scopes=("requests:write", "requests:read")) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(list(scopes))}"}


def test_create_shows_the_secret_once(api, make_key, receiver):
    headers = _headers(make_key)
    created = api.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url(), "events": ["erasure_request.completed", "*"]},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["status"] == "active"
    assert body["events"] == ["*", "erasure_request.completed"]

    listed = api.get("/v1/webhook-endpoints", headers=headers).json()
    assert [e["id"] for e in listed] == [body["id"]]
    assert "secret" not in listed[0]
    single = api.get(f"/v1/webhook-endpoints/{body['id']}", headers=headers).json()
    assert "secret" not in single
    assert single["links"]["deliveries"].endswith("/deliveries")


def test_idempotent_create_replays_the_first_response(api, make_key, receiver):
    headers = _headers(make_key) | {"Idempotency-Key": "endpoint-1"}
    body = {"url": receiver.url(), "events": ["*"]}
    first = api.post("/v1/webhook-endpoints", json=body, headers=headers)
    again = api.post("/v1/webhook-endpoints", json=body, headers=headers)
    assert again.json() == first.json()
    assert len(api.get("/v1/webhook-endpoints", headers=headers).json()) == 1


def test_delete_stops_the_endpoint(api, make_key, receiver):
    headers = _headers(make_key)
    endpoint = api.post(
        "/v1/webhook-endpoints", json={"url": receiver.url(), "events": ["*"]}, headers=headers
    ).json()
    assert api.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=headers).status_code == 204
    assert api.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=headers).status_code == 404
    assert api.get("/v1/webhook-endpoints", headers=headers).json() == []


def test_endpoints_belong_to_their_client(api, make_key, receiver):
    owner, other = _headers(make_key), _headers(make_key)
    endpoint = api.post(
        "/v1/webhook-endpoints", json={"url": receiver.url(), "events": ["*"]}, headers=owner
    ).json()
    assert api.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=other).status_code == 404
    assert api.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=other).status_code == 404
    reader = _headers(make_key, scopes=("requests:read",))
    refused = api.post(
        "/v1/webhook-endpoints", json={"url": receiver.url(), "events": ["*"]}, headers=reader
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("url", "category"),
    [
        ("http://10.1.2.3/hook", "private"),
        ("https://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://0.0.0.0/hook", "reserved"),
    ],
)
def test_private_addresses_are_refused_with_a_pointer(api, make_key, session, url, category):
    headers = _headers(make_key)
    before = table_counts(session)
    refused = api.post("/v1/webhook-endpoints", json={"url": url, "events": ["*"]}, headers=headers)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"].endswith("/unsafe-url")
    assert problem["errors"][0]["pointer"] == "#/url"
    assert category in problem["errors"][0]["detail"]
    assert table_counts(session) == before


def test_bad_bodies_are_refused(api, make_key):
    headers = _headers(make_key)
    unknown = api.post(
        "/v1/webhook-endpoints",
        json={"url": "https://example.com/hook", "events": ["erasure_request.exploded"]},
        headers=headers,
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["pointer"] == "#/events"
    not_http = api.post(
        "/v1/webhook-endpoints",
        json={"url": "ftp://example.com/x", "events": ["*"]},
        headers=headers,
    )
    assert not_http.status_code == 422
    assert not_http.json()["errors"][0]["pointer"] == "#/url"


def _ips(*values: str) -> list:
    return [ipaddress.ip_address(v) for v in values]


def test_address_categories():
    assert refusal(_ips("8.8.8.8", "2606:4700::1111"), allowed=()) is None
    assert refusal(_ips("8.8.8.8", "172.16.5.4"), allowed=()) == "private"
    assert refusal(_ips("100.64.0.1"), allowed=()) == "private"  # carrier-grade NAT
    assert refusal(_ips("127.0.0.1"), allowed=()) == "loopback"
    assert refusal(_ips("::ffff:127.0.0.1"), allowed=()) == "loopback"
    assert refusal(_ips("fe80::1"), allowed=()) == "link-local"
    assert refusal(_ips("fd00::1"), allowed=()) == "private"
    assert refusal(_ips("224.0.0.1"), allowed=()) == "multicast"
    allowed = (ipaddress.ip_network("10.20.0.0/16"),)
    assert refusal(_ips("10.20.3.4"), allowed=allowed) is None
    assert refusal(_ips("10.21.3.4"), allowed=allowed) == "private"
