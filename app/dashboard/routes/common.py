"""What every page needs: rendering with the officer, notices after a redirect, redirects."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.dashboard.sessions import Officer
from app.dashboard.templating import base_path, render

# Notices after a POST-redirect-GET, by code: the URL never carries free text.
NOTICES = {
    "approve": "Approved. Planning starts now.",
    "deny": "Denied; the reason is in the request's audit trail.",
    "extend": "The due date was extended.",
    "cancel": "Cancelled.",
    "retry": "A new attempt started.",
    "redeliver": "The delivery was queued again.",
    "revoke": "The key was revoked; it stopped working at once.",
    "signed_out": "You are signed out.",
}


def page(
    request: Request,
    template: str,
    officer: Officer | None,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("done", ""))
    defaults: dict[str, Any] = {"field_errors": {}, "form_values": {}, "notice": notice}
    return render(request, template, {**defaults, **context, "officer": officer}, status=status)


def see_other(request: Request, path: str) -> RedirectResponse:
    """303 to a dashboard path (after a POST: the browser then GETs it)."""
    return RedirectResponse(base_path(request) + path, status_code=303)
