"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI

from app.audit.router import router as audit_router
from app.audit.router import well_known as well_known_router
from app.clients.router import router as clients_router
from app.core.config import get_settings
from app.core.errors import install_error_handlers
from app.core.health import router as health_router
from app.core.observability import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    configure_logging,
)
from app.core.openapi import DocumentedAPI
from app.core.strict import checked_request
from app.dashboard.app import MOUNT_PATH, create_dashboard, root_router
from app.erasure.router import debt_router
from app.erasure.router import router as erasure_router
from app.jobs.router import router as jobs_router
from app.lineage.router import router as lineage_router
from app.opendsr.router import router as opendsr_router
from app.registry.router import base_models_router
from app.registry.router import router as registry_router
from app.suppression.router import router as suppression_router
from app.webhooks.router import router as webhooks_router
from app.wiring import connect_domains


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Sync endpoints run in a thread pool. Every request appends to the one audit chain under a
    # database lock; with many threads the lock holder waits for the GIL behind the others, so
    # a small pool serves more requests per second than a large one.
    anyio.to_thread.current_default_thread_limiter().total_tokens = get_settings().api_threads
    yield


def create_app() -> FastAPI:
    connect_domains()
    settings = get_settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    app = DocumentedAPI(
        lifespan=_lifespan,
        title="Lethe",
        version="0.1.0",
        summary="GDPR erasure requests for machine-learning models, carried out end to end.",
        dependencies=[Depends(checked_request)],
    )
    install_error_handlers(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    for router in (
        health_router,
        erasure_router,
        debt_router,
        lineage_router,
        registry_router,
        base_models_router,
        jobs_router,
        audit_router,
        well_known_router,
        webhooks_router,
        opendsr_router,
        clients_router,
        suppression_router,
        root_router,
    ):
        app.include_router(router)
    app.mount(MOUNT_PATH, create_dashboard())
    return app
