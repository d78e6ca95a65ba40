"""Sign-in with an API key, and sign-out."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.core.config import get_settings
from app.core.db import SessionDep
from app.dashboard import sessions
from app.dashboard.routes.common import page, see_other
from app.dashboard.security import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    CheckedOfficer,
    DashboardError,
    FormData,
    clear_cookie,
    new_form_token,
    safe_next,
    same_origin,
    set_cookie,
)

router = APIRouter()
SIGN_IN_FORM_SECONDS = 3600
REFUSED = (
    "This key cannot sign in: it is unknown or revoked, or it has neither the admin nor the "
    "dashboard scope."
)


def _sign_in_form(
    request: Request, *, next_path: str, error: str | None = None, status: int = 200
) -> HTMLResponse:
    token = new_form_token()
    settings = get_settings()
    response = page(
        request,
        "sign_in.html",
        None,
        status=status,
        form_token=token,
        next_path=next_path,
        sign_in_error=error,
        idle_minutes=f"{settings.dashboard_idle_minutes:g}",
        session_hours=f"{settings.dashboard_session_hours:g}",
    )
    set_cookie(request, response, SIGN_IN_COOKIE, token, max_age=SIGN_IN_FORM_SECONDS)
    return response


@router.get("/sign-in")
def sign_in_form(request: Request, session: SessionDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    next_path = safe_next(request, request.query_params.get("next"))
    if token and sessions.current(session, token=token) is not None:
        return RedirectResponse(next_path, status_code=303)
    return _sign_in_form(request, next_path=next_path)


@router.post("/sign-in")
def sign_in(request: Request, session: SessionDep, form: FormData) -> Response:
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    submitted = form.get(CSRF_FIELD, "")
    if not (expected and submitted and hmac.compare_digest(expected, submitted)):
        raise DashboardError(403, "The sign-in form expired; open it again and retry.")
    if not same_origin(request):
        raise DashboardError(403, "Sign-in is accepted only from the dashboard's own page.")
    next_path = safe_next(request, form.get("next"))
    try:
        token, row, _ = sessions.sign_in(session, key=form.get("key", ""))
    except sessions.SignInRefused:
        session.rollback()
        return _sign_in_form(request, next_path=next_path, error=REFUSED, status=401)
    session.commit()
    response = RedirectResponse(next_path, status_code=303)
    lifetime = int((row.expires_at - row.created_at).total_seconds())
    set_cookie(request, response, SESSION_COOKIE, token, max_age=lifetime)
    clear_cookie(request, response, SIGN_IN_COOKIE)
    return response


@router.post("/sign-out")
def sign_out(request: Request, session: SessionDep, officer: CheckedOfficer) -> Response:
    sessions.sign_out(session, officer=officer)
    session.commit()
    response = see_other(request, "/sign-in?done=signed_out")
    clear_cookie(request, response, SESSION_COOKIE)
    return response
