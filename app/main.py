"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from app.audit.router import router as audit_router
from app.core.config import get_settings
from app.core.errors import install_error_handlers
from app.core.health import router as health_router
from app.core.observability import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    configure_logging,
)
from app.erasure.router import router as erasure_router
from app.lineage.router import router as lineage_router


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    app = FastAPI(
        title="Lethe",
        version="0.1.0",
        summary="GDPR erasure requests for machine-learning models, carried out end to end.",
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    for router in (health_router, erasure_router, lineage_router, audit_router):
        app.include_router(router)
    return app
