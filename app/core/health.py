"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.core.broker import broker_reachable
from app.core.db import get_engine
from app.core.errors import problem_response
from app.core.metrics import install_domain_figures
from app.core.problems import Answer, Problem, problems

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"]


class Checks(BaseModel):
    database: str = Field(description="`ok`, or why it is unreachable.")
    broker: str = Field(description="`ok` or `unreachable`.")


class Ready(BaseModel):
    status: Literal["ready"]
    checks: Checks


class NotReady(Problem):
    """The database or the broker cannot be reached (503): `checks` says which."""

    checks: Checks


@router.get("/healthz", response_model=Health)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    responses=problems(
        Answer(503, "The database or the broker is unreachable", NotReady, ("Retry-After",))
    ),
)
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
