"""Models and their versions, and the erasure debt."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.core.db import SessionDep
from app.dashboard.debt import erasure_debt
from app.dashboard.routes.common import page
from app.dashboard.security import DashboardError, SignedIn
from app.dashboard.views import models as models_view

router = APIRouter()


@router.get("/models")
def models(request: Request, session: SessionDep, officer: SignedIn) -> HTMLResponse:
    return page(
        request,
        "models.html",
        officer,
        models=models_view.models(session),
        debt=erasure_debt(session),
        single=False,
    )


@router.get("/models/{model_id}")
def model(
    model_id: uuid.UUID, request: Request, session: SessionDep, officer: SignedIn
) -> HTMLResponse:
    found = models_view.models(session, model_id=model_id)
    if not found:
        raise DashboardError(404, "There is no model with this id.")
    return page(request, "models.html", officer, models=found, debt=[], single=True)
