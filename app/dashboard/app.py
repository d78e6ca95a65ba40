"""The dashboard as an application mounted under `/dashboard`: its own error pages (HTML, not
problem+json), security headers, static files, and no OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import ProblemError
from app.dashboard.routes import audit, auth, delivery, registry, requests
from app.dashboard.security import (
    DashboardError,
    SecurityHeaders,
    SignInRequired,
    sign_in_redirect,
)
from app.dashboard.templating import render

STATIC = Path(__file__).parent / "static"
MOUNT_PATH = "/dashboard"
LIVE_HEADER = "x-lethe-live"

log = structlog.get_logger(__name__)


def _error_page(request: Request, status: int, heading: str, message: str) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {"officer": None, "heading": heading, "message": message},
        status=status,
    )


def _install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if request.headers.get(LIVE_HEADER):  # a live fragment: the page reloads itself
            return PlainTextResponse("sign-in required", status_code=401)
        return RedirectResponse(sign_in_redirect(request, exc.next_path), status_code=303)

    @app.exception_handler(DashboardError)
    async def _dashboard(request: Request, exc: DashboardError) -> Response:
        headings = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict"}
        return _error_page(request, exc.status, headings.get(exc.status, "Error"), exc.message)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        return _error_page(request, exc.status, exc.title, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error_page(request, 404, "Not found", "This address does not name a page.")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return _error_page(request, 405, "Not allowed", "This page does not take that method.")
        return _error_page(request, exc.status_code, "Not found", "There is no such page.")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("dashboard_error", error_type=type(exc).__name__, path=request.url.path)
        return _error_page(request, 500, "Error", "Something went wrong; it has been logged.")


def create_dashboard() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (auth, requests, registry, audit, delivery):
        app.include_router(module.router)
    _install_error_pages(app)
    return app


# On the main application: `/` leads people to the dashboard.
root_router = APIRouter()


@root_router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse(MOUNT_PATH + "/", status_code=307)
