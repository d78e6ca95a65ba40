"""The erasure debt in `/metrics`, read from the database at each scrape."""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.core.db import get_sessionmaker
from app.erasure.debt import erasure_debt

log = structlog.get_logger(__name__)


class ErasureDebtCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        requests = GaugeMetricFamily(
            "lethe_erasure_debt_requests",
            "Requests mitigated (approximate) but not yet erased exactly, per model",
            labels=["model_id"],
        )
        try:
            with get_sessionmaker()() as session:
                debts = erasure_debt(session)
        except Exception as exc:  # a scrape must not fail because the database is away
            log.warning("erasure_debt_unavailable", error_type=type(exc).__name__)
            debts = []
        for debt in debts:
            requests.add_metric([str(debt.model_id)], debt.requests)
        yield requests


_registered: list[Collector] = []


def register_collectors() -> None:
    """Add the erasure figures to the default registry (once per process)."""
    if not _registered:
        _registered.append(ErasureDebtCollector())
        REGISTRY.register(_registered[0])
