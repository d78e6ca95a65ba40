"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against a real
server, Postgres and the Celery worker: an officer's day, start to end.

One browser for the module; the flows share it and run in order.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.dashboard.conftest import register_person, submit

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
CHROMIUM = os.environ.get("LETHE_TEST_CHROMIUM", "/usr/bin/chromium")

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(database) -> Iterator[str]:
    """The API and dashboard under uvicorn, in a thread of this process."""
    import uvicorn

    from app.main import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        tab = context.new_page()
        tab.on("dialog", lambda dialog: dialog.accept())
        yield tab
        context.close()
        browser.close()


@pytest.fixture(scope="module")
def people(api, make_key) -> dict[str, str]:
    """Three requests waiting for approval, whose identity values must never reach a page;
    the first has a training record, so completing it purges data and signs a certificate."""
    tag = uuid.uuid4().hex[:8]
    values = {name: f"subject-{name}-{tag}@example.com" for name in ("approve", "deny", "extend")}
    lineage = {"Authorization": f"Bearer {make_key(['lineage:write'])}"}
    register_person(api, lineage, value=values["approve"])
    held = {
        "Authorization": "Bearer "
        + make_key(["requests:write", "requests:read"], requires_approval=True)
    }
    ids = {
        name: submit(api, held, value=value, reference=f"BR-{name}-{tag}")["id"]
        for name, value in values.items()
    }
    return {"tag": tag, **{f"{n}_id": i for n, i in ids.items()}, **values}


@pytest.fixture(scope="module")
def pages_seen() -> list[str]:
    return []


def _visit(page, pages_seen, path: str) -> None:
    page.goto(path)
    pages_seen.append(page.content())


def test_sign_in_and_see_the_pending_request(page, people, make_key, pages_seen):
    page.goto("/dashboard/requests")
    assert page.url.endswith("/dashboard/sign-in?next=/dashboard/requests")
    page.get_by_label("API key").fill(make_key(["admin"]))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/requests")
    page.get_by_label("Reference or request id").fill(f"BR-approve-{people['tag']}")
    page.get_by_role("button", name="Apply").click()
    row = page.get_by_role("row").filter(has_text=f"BR-approve-{people['tag']}")
    assert "pending approval" in row.inner_text()
    pages_seen.append(page.content())


def test_approve_and_watch_it_complete_without_a_reload(page, people, celery_worker, pages_seen):
    _visit(page, pages_seen, f"/dashboard/requests/{people['approve_id']}")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"**/requests/{people['approve_id']}?done=approve")
    page.evaluate("window.__sameDocument = true")
    status = page.locator("#live .status-line .badge")
    status.filter(has_text="completed").wait_for(timeout=60_000)
    assert page.evaluate("window.__sameDocument") is True  # the live region, not a reload
    assert page.get_by_text("Status changed to completed").count() == 1
    assert page.locator("#actions").inner_text().startswith("No action is possible")
    pages_seen.append(page.content())

    page.get_by_role("link", name="Certificate and evidence").click()
    verdict = page.locator("#certificate-verdict")
    assert verdict.inner_text().startswith("Signature valid.")
    assert "found in the audit log" in page.content()
    pages_seen.append(page.content())


def test_deny_another_with_a_reason(page, people, pages_seen):
    _visit(page, pages_seen, f"/dashboard/requests/{people['deny_id']}")
    page.get_by_label("Reason for denial").fill("Art. 17(3)(e): legal claims")
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url("**?done=deny")
    assert page.locator("#live .status-line .badge").inner_text() == "denied"
    assert "Art. 17(3)(e): legal claims" in page.locator(".timeline").inner_text()
    pages_seen.append(page.content())


def test_extend_a_third(page, people, pages_seen):
    _visit(page, pages_seen, f"/dashboard/requests/{people['extend_id']}")
    page.get_by_label("Extend the due date by").select_option("1")
    page.get_by_label("Reason for the extension").fill("complex request across many systems")
    page.get_by_role("button", name="Extend").click()
    page.wait_for_url("**?done=extend")
    assert "by 1 month: complex request across many systems" in page.inner_text("main")
    pages_seen.append(page.content())


def test_verify_the_audit_chain(page, pages_seen):
    _visit(page, pages_seen, "/dashboard/audit")
    page.get_by_role("button", name="Verify the audit chain").click()
    assert page.locator("#verification").inner_text().startswith("The chain holds.")
    pages_seen.append(page.content())


def test_revoke_a_key_and_it_stops_working(page, server, pages_seen):
    _visit(page, pages_seen, "/dashboard/clients")
    page.get_by_label("Name (who or what the key is for)").fill("browser-made portal")
    page.get_by_role("checkbox", name="requests:read").check()
    page.get_by_role("button", name="Create client").click()
    key = page.get_by_label("API key").input_value()
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{server}/v1/erasure-requests", headers=headers).status_code == 200
    pages_seen.append(page.content())

    page.goto("/dashboard/clients")
    page.get_by_role("button", name="Revoke browser-made portal").click()
    page.wait_for_url("**?done=revoke")
    assert "revoked" in page.get_by_role("row").filter(has_text="browser-made portal").inner_text()
    assert httpx.get(f"{server}/v1/erasure-requests", headers=headers).status_code == 401


def test_a_post_without_the_csrf_token_is_refused(page, people):
    url = f"/dashboard/requests/{people['extend_id']}/cancel"
    refused = page.request.post(url, form={"reason": "no token"})
    assert refused.status == 403
    forged = page.request.post(url, form={"csrf_token": "forged"})
    assert forged.status == 403
    page.goto(f"/dashboard/requests/{people['extend_id']}")
    assert page.locator("#live .status-line .badge").inner_text() == "pending approval"


def test_no_identity_value_appears_in_any_page(page, people, pages_seen):
    for path in ("/dashboard/requests?status=all", "/dashboard/models", "/dashboard/webhooks"):
        _visit(page, pages_seen, path)
    assert len(pages_seen) >= 10
    for value in (people["approve"], people["deny"], people["extend"]):
        for html in pages_seen:
            assert value not in html
            assert value.split("@")[0] not in html
