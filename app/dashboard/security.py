"""The dashboard's request guards: who is signed in, who may act, CSRF on every form, the
session cookie, and the security headers of every page."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.db import SessionDep
from app.dashboard import sessions
from app.dashboard.sessions import Officer
from app.dashboard.templating import base_path

SESSION_COOKIE = "lethe_dashboard"
SIGN_IN_COOKIE = "lethe_dashboard_sign_in"  # the sign-in form's CSRF token (double submit)
CSRF_FIELD = "csrf_token"
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 50

# Scripts and styles from our own static files only; SVG charts are markup, not script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


class DashboardError(Exception):
    """Rendered as a dashboard page with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SignInRequired(Exception):
    """Not signed in (or the session ended): pages redirect to the sign-in form."""

    def __init__(self, next_path: str) -> None:
        super().__init__("sign-in required")
        self.next_path = next_path


def is_https(request: Request) -> bool:
    # uvicorn sets the scheme from X-Forwarded-Proto when run with --proxy-headers.
    return request.url.scheme == "https"


def set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=base_path(request) or "/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name,
        path=base_path(request) or "/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def new_form_token() -> str:
    return secrets.token_urlsafe(32)


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an `application/x-www-form-urlencoded` body (the dashboard's only kind);
    any other body reads as no fields, so its POST fails the CSRF check."""
    if request.method != "POST":
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise DashboardError(400, "This form is too large.")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise DashboardError(400, "This form could not be read.") from None
    return dict(pairs)


FormData = Annotated[dict[str, str], Depends(read_form)]


def same_origin(request: Request) -> bool:
    """A browser's POST names its origin; one from another site is refused even with a token."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.url.netloc and parts.scheme == request.url.scheme


def _signed_in(request: Request, session: SessionDep) -> Officer:
    token = request.cookies.get(SESSION_COOKIE)
    officer = sessions.current(session, token=token) if token else None
    if officer is None:
        raise SignInRequired(next_path=_return_path(request))
    return officer


def _return_path(request: Request) -> str:
    """Where to come back after signing in: this page, or for a form the page it was on."""
    if request.method == "GET":
        query = f"?{request.url.query}" if request.url.query else ""
        return request.url.path + query
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path:
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return f"{base_path(request)}/requests"


SignedIn = Annotated[Officer, Depends(_signed_in)]


def _checked(request: Request, officer: SignedIn, form: FormData) -> Officer:
    if not same_origin(request) or not sessions.csrf_ok(officer, form.get(CSRF_FIELD)):
        raise DashboardError(
            403, "This form has expired or did not come from the dashboard; reload and retry."
        )
    return officer


# A signed-in officer whose POST carries the session's CSRF token (sign-out: any officer).
CheckedOfficer = Annotated[Officer, Depends(_checked)]


def _acting(officer: CheckedOfficer) -> Officer:
    if not officer.can_act:
        raise DashboardError(403, "Your key is read-only (`dashboard`); actions need an admin key.")
    return officer


# A signed-in admin whose POST carries the session's CSRF token: every action.
ActingOfficer = Annotated[Officer, Depends(_acting)]


def sign_in_redirect(request: Request, next_path: str) -> str:
    return f"{base_path(request)}/sign-in?next={quote(next_path, safe='/')}"


def safe_next(request: Request, candidate: str | None) -> str:
    """Only a path inside the dashboard: never an open redirect."""
    base = base_path(request)
    if (
        candidate
        and candidate.startswith(base + "/")
        and "\\" not in candidate
        and "//" not in candidate
    ):
        return candidate
    return f"{base}/requests"


class SecurityHeaders:
    """CSP and friends on every dashboard response; pages are never cached (they describe
    people's requests), static files may be."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = "/static/" in str(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
