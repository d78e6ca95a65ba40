"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from app.audit.router import router as audit_router
from app.audit.router import well_known as well_known_router
from app.core.config import get_settings
from app.core.errors import install_error_handlers
from app.core.health import router as health_router
from app.core.observability import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    configure_logging,
)
from app.erasure.router import router as erasure_router
from app.jobs.router import router as jobs_router
from app.lineage.router import router as lineage_router
from app.opendsr.router import router as opendsr_router
from app.registry.router import router as registry_router
from app.webhooks.router import router as webhooks_router


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
    for router in (
        health_router,
        erasure_router,
        lineage_router,
        registry_router,
        jobs_router,
        audit_router,
        well_known_router,
        webhooks_router,
        opendsr_router,
    ):
        app.include_router(router)
    return app
