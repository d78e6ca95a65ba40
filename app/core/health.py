"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.core.broker import broker_reachable
from app.core.db import get_engine
from app.core.errors import problem_response
from app.core.metrics import install_domain_figures

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    checks["broker"] = "ok" if broker_reachable() else "unreachable"
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, value in checks.items() if value != "ok")
    return problem_response(
        request,
        status=503,
        detail=f"Not ready: {failing} unreachable",
        slug="not-ready",
        title="Not ready",
        headers={"Retry-After": "5"},
        checks=checks,
    )


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    install_domain_figures()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
