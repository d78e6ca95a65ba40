"""The OpenDSR error shape: `{"error": {"code", "message", "errors": [{domain, reason, message}]}}`.

Every error raised inside an OpenDSR route (validation, auth, our problems) is rendered in it.
The specification answers request errors with 400, so 415 and 422 become 400; 401, 403, 404, 409 and
5xx keep their codes. Like every Lethe error, none echoes an identity value.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import ProblemError, validation_errors
from app.opendsr.documents import OpenDsrError

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def opendsr_error(
    status: int,
    message: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": status, "message": message}
    if errors:
        body["errors"] = errors
    return JSONResponse(
        {"error": body},
        status_code=status,
        headers=_NO_STORE | (headers or {}),
    )


def _details(
    problems: list[dict[str, str]] | None, *, domain: str, reason: str
) -> list[dict[str, str]]:
    details = []
    for problem in problems or []:
        where = problem.get("pointer") or problem.get("parameter") or ""
        message = problem.get("detail", "")
        details.append(
            {
                "domain": domain,
                "reason": reason,
                "message": f"{where.removeprefix('#/')}: {message}" if where else message,
                "location": where,
            }
        )
    return details


def _from_validation(exc: RequestValidationError) -> JSONResponse:
    problems = validation_errors(exc)
    if any(p["detail"] == "Body is not valid JSON" for p in problems):
        return opendsr_error(400, "The request body is not valid JSON")
    details = _details(problems, domain="Validation", reason="InvalidField")
    first = details[0]["message"] if details else "invalid request"
    return opendsr_error(400, f"{len(details)} field(s) failed validation; {first}", errors=details)


def _from_problem(exc: ProblemError) -> JSONResponse:
    status = 400 if exc.status in (415, 422) else exc.status
    details = _details(exc.errors, domain="Request", reason=exc.slug)
    if not details:
        details = [{"domain": "Request", "reason": exc.slug, "message": exc.detail}]
    return opendsr_error(
        status, exc.detail, errors=details, headers=dict(exc.headers) if exc.headers else None
    )


class OpenDsrRoute(APIRoute):
    """Renders errors raised while handling the route in the OpenDSR shape."""

    # How the OpenAPI document describes these errors (`app.core.openapi`).
    error_media_type = "application/json"
    error_model = OpenDsrError
    error_statuses = {415: 400, 422: 400}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _from_validation(exc)
            except ProblemError as exc:
                return _from_problem(exc)
            except StarletteHTTPException as exc:
                message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
                return opendsr_error(
                    exc.status_code, message, headers=dict(exc.headers) if exc.headers else None
                )

        return route
