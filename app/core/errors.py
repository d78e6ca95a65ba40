"""RFC 9457 problem details for every error the API returns.

Validation errors list each offending field as a JSON pointer into the request body (or the
name of the query/header/path parameter). Input values are never echoed: they may be identities.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://lethe.dev/problems/"

DATABASE_RETRY_AFTER_SECONDS = 5
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


class BodyTooLarge(StarletteHTTPException):
    """A request body over the limit, raised while it is being read (see
    `BodySizeLimitMiddleware`); an HTTPException so that body parsing passes it on untouched."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"Request bodies are limited to {max_bytes} bytes")
        self.max_bytes = max_bytes


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def json_pointer_at(document: str, position: int) -> str:
    """The JSON Pointer of the value being parsed at `position` of a malformed document: the
    deepest path that parsed, plus the member or element it had reached (`#` at the top)."""
    frames: list[list[Any]] = []  # [kind "{" or "[", key or index, expecting a key]
    i, end = 0, min(max(position, 0), len(document))
    while i < end:
        char = document[i]
        if char == '"':
            j = i + 1
            while j < len(document) and document[j] != '"':
                j += 2 if document[j] == "\\" else 1
            if frames and frames[-1][0] == "{" and frames[-1][2] and j < end:
                try:
                    frames[-1][1] = json.loads(document[i : j + 1])
                except ValueError:
                    frames[-1][1] = document[i + 1 : j]
            i = j + 1
            continue
        if char in "{[":
            frames.append([char, None if char == "{" else 0, char == "{"])
        elif char in "}]" and frames:
            frames.pop()
        elif char == ":" and frames and frames[-1][0] == "{":
            frames[-1][2] = False
        elif char == "," and frames:
            if frames[-1][0] == "[":
                frames[-1][1] += 1
            else:
                frames[-1][1:] = [None, True]
        i += 1
    parts = [_escape(str(frame[1])) for frame in frames if frame[1] is not None]
    return "#/" + "/".join(parts) if parts else "#"


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
            loc = tuple(err.get("loc", ()))
            offset = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
            document = exc.body if isinstance(exc.body, str) else ""
            errors.append(
                {"pointer": json_pointer_at(document, offset), "detail": "Body is not valid JSON"}
            )
            continue
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
        extensions: dict[str, Any] = (
            {"max_bytes": exc.max_bytes} if isinstance(exc, BodyTooLarge) else {}
        )
        return problem_response(
            request,
            status=exc.status_code,
            detail=detail,
            headers=getattr(exc, "headers", None),
            **extensions,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        # The statement and its parameters stay out of the log: they may hold identity hashes.
        log.warning("database_unavailable", error_type=type(exc).__name__, path=request.url.path)
        return problem_response(
            request,
            status=503,
            detail="The database cannot be reached; nothing was changed. Retry shortly",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", error_type=type(exc).__name__, path=request.url.path)
        return problem_response(
            request, status=500, detail="An unexpected error occurred; it has been logged"
        )
