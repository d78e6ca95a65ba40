"""Signing in with a key, the session cookie, CSRF on every form, viewers, sign-out, and a
revoked key ending its sessions."""

from __future__ import annotations

from tests.dashboard.conftest import Browser, csrf_of, submit


def _cookie(response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return header
    raise AssertionError(f"no {name} cookie set")


def test_pages_need_a_session(browser):
    response = browser.get("/dashboard/requests?status=all")
    assert response.status_code == 303
    assert (
        response.headers["location"] == "/dashboard/sign-in?next=/dashboard/requests%3Fstatus%3Dall"
    )
    live = browser.get(
        "/dashboard/requests/00000000-0000-0000-0000-000000000000/live",
        headers={"X-Lethe-Live": "1"},
    )
    assert live.status_code == 401
    assert browser.get("/").headers["location"] == "/dashboard/"


def test_sign_in_sets_a_strict_http_only_session_cookie(browser, admin_key):
    response = browser.sign_in(admin_key, next_path="/dashboard/models")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/models"
    cookie = _cookie(response, "lethe_dashboard")
    attributes = cookie.lower()
    assert "httponly" in attributes and "samesite=strict" in attributes
    assert "path=/dashboard" in attributes and "max-age=28800" in attributes
    assert "secure" not in attributes  # plain http here; see the https test below
    assert admin_key not in cookie
    page = browser.get("/dashboard/models")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"


def test_the_cookie_is_secure_behind_https(database, admin_key):
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(), base_url="https://lethe.example") as client:
        browser = Browser(client)
        response = browser.sign_in(admin_key)
        assert response.status_code == 303
        assert "secure" in _cookie(response, "lethe_dashboard").lower()


def test_refused_keys_get_no_session(browser, make_key):
    for key in ("lth_nope_nope", make_key(["requests:read", "requests:write"])):
        response = browser.sign_in(key)
        assert response.status_code == 401
        assert "cannot sign in" in response.text
        assert key not in response.text
        assert not any(
            h.startswith("lethe_dashboard=") for h in response.headers.get_list("set-cookie")
        )


def test_the_sign_in_form_needs_its_token(browser, admin_key):
    browser.get("/dashboard/sign-in")
    response = browser.client.post(
        "/dashboard/sign-in",
        data={"key": admin_key, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    form = browser.get("/dashboard/sign-in")
    cross_site = browser.client.post(
        "/dashboard/sign-in",
        data={"key": admin_key, "csrf_token": csrf_of(form.text)},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert cross_site.status_code == 403


def test_an_open_redirect_is_not_offered(browser, admin_key):
    response = browser.sign_in(admin_key, next_path="https://evil.example/")
    assert response.headers["location"] == "/dashboard/requests"
    browser.client.cookies.clear()
    response = browser.sign_in(admin_key, next_path="/dashboard//evil.example")
    assert response.headers["location"] == "/dashboard/requests"


def test_a_post_without_the_csrf_token_is_refused(signed_in, api, held_headers):
    request = submit(api, held_headers, value="csrf-less@example.com")
    url = f"/dashboard/requests/{request['id']}/approve"
    assert signed_in.post(url, csrf=False).status_code == 403
    assert signed_in.post(url, {"csrf_token": "x" * 43}, csrf=False).status_code == 403
    other_site = signed_in.post(url, headers={"Origin": "https://evil.example"})
    assert other_site.status_code == 403
    status = api.get(f"/v1/erasure-requests/{request['id']}", headers=held_headers).json()
    assert status["status"] == "pending_approval"


def test_a_viewer_reads_but_cannot_act(browser, make_key, api, held_headers):
    request = submit(api, held_headers, value="viewer-case@example.com")
    assert browser.sign_in(make_key(["dashboard"])).status_code == 303
    page = browser.get(f"/dashboard/requests/{request['id']}")
    assert page.status_code == 200
    assert "read-only" in page.text and "/approve" not in page.text
    refused = browser.post(f"/dashboard/requests/{request['id']}/approve")
    assert refused.status_code == 403
    clients = browser.get("/dashboard/clients")
    assert clients.status_code == 200 and "Create a client" not in clients.text


def test_sign_out_ends_the_session_for_good(signed_in):
    token = signed_in.client.cookies.get("lethe_dashboard")
    response = signed_in.post("/dashboard/sign-out")
    assert response.status_code == 303
    assert "lethe_dashboard=" in _cookie(response, "lethe_dashboard")
    signed_in.client.cookies.set("lethe_dashboard", token, path="/dashboard")
    assert signed_in.get("/dashboard/requests").status_code == 303


def test_revoking_a_key_ends_its_sessions(browser, api, admin_headers, make_key):
    key = make_key(["dashboard"])
    assert browser.sign_in(key).status_code == 303
    assert browser.get("/dashboard/requests").status_code == 200
    key_id = key.removeprefix("lth_").split("_", 1)[0]
    listed = api.get("/v1/clients?revoked=false&limit=200", headers=admin_headers).json()
    [client] = [c for c in listed["items"] if c["key_id"] == key_id]
    assert api.post(f"/v1/clients/{client['id']}/revoke", headers=admin_headers).status_code == 200
    assert browser.get("/dashboard/requests").status_code == 303


def test_sign_in_and_out_are_audited(signed_in, session, admin_key):
    from sqlalchemy import select

    from app.audit.models import AuditEvent

    signed_in.post("/dashboard/sign-out")
    session.rollback()
    actions = list(
        session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.action.like("dashboard.%"))
            .order_by(AuditEvent.seq.desc())
            .limit(2)
        )
    )
    assert actions == ["dashboard.signed_out", "dashboard.signed_in"]


def test_a_form_sent_after_the_session_ended_comes_back_to_its_page(browser, api, held_headers):
    request = submit(api, held_headers, value="expired-form@example.com")
    page = f"/dashboard/requests/{request['id']}"
    response = browser.client.post(
        f"{page}/approve",
        data={"csrf_token": "stale"},
        headers={"Referer": f"http://testserver{page}"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/dashboard/sign-in?next={page}"
