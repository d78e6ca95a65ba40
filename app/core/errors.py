"""RFC 9457 problem details for every error the API returns.

Validation errors list each offending field as a JSON pointer into the request body (or the
name of the query/header/path parameter). Input values are never echoed: they may be identities.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://lethe.dev/problems/"

log = structlog.get_logger(__name__)

_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Missing or invalid API key"),
    403: ("forbidden", "Insufficient scope"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("unprocessable", "Unprocessable request"),
    500: ("internal", "Internal server error"),
    503: ("unavailable", "Service unavailable"),
}


class ProblemError(Exception):
    """Raise from services or routers; rendered as application/problem+json."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        default_slug, default_title = _STATUS_SLUGS.get(status, ("error", "Error"))
        self.status = status
        self.detail = detail
        self.slug = slug or default_slug
        self.title = title or default_title
        self.errors = errors
        self.headers = headers
        self.extensions = extensions


class NotFound(ProblemError):
    def __init__(self, what: str) -> None:
        super().__init__(404, f"{what} not found")


def problem_response(
    request: Request | None,
    *,
    status: int,
    detail: str,
    slug: str | None = None,
    title: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    default_slug, default_title = _STATUS_SLUGS.get(status, ("error", "Error"))
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or default_slug),
        "title": title or default_title,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    if errors:
        body["errors"] = errors
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _pointer(loc: tuple[Any, ...]) -> dict[str, str]:
    """Map a pydantic location to a JSON pointer (body) or a parameter name."""
    if not loc:
        return {"pointer": "#"}
    where, *rest = loc
    if where == "body":
        parts = [str(p).replace("~", "~0").replace("/", "~1") for p in rest]
        return {"pointer": "#/" + "/".join(parts) if parts else "#"}
    return {"parameter": ".".join(str(p) for p in rest) or str(where), "in": str(where)}


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            message = "Body is not valid JSON"
        # pydantic puts the offending value in the message of value errors; never echo inputs.
        if err.get("type") == "value_error":
            message = message.removeprefix("Value error, ")
        errors.append({**_pointer(tuple(err.get("loc", ()))), "detail": message})
    return errors


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            request,
            status=exc.status,
            detail=exc.detail,
            slug=exc.slug,
            title=exc.title,
            errors=exc.errors,
            headers=exc.headers,
            **exc.extensions,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc)
        malformed = any(e["detail"] == "Body is not valid JSON" for e in errors)
        return problem_response(
            request,
            status=400 if malformed else 422,
            slug="malformed-json" if malformed else "validation",
            title="Malformed JSON" if malformed else "Validation failed",
            detail="The request body is not valid JSON"
            if malformed
            else f"{len(errors)} field(s) failed validation",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = (
            exc.detail
            if isinstance(exc.detail, str)
            else _STATUS_SLUGS.get(exc.status_code, ("", "Error"))[1]
        )
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route for {request.url.path}"
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(
            request, status=exc.status_code, detail=detail, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", error_type=type(exc).__name__, path=request.url.path)
        return problem_response(
            request, status=500, detail="An unexpected error occurred; it has been logged"
        )
