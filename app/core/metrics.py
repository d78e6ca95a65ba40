"""Domain figures in `/metrics`, computed from the rows (and the broker's queues) at scrape time.

The HTTP counters next to them are per process; these are the same from every API process,
since they are read from the database, the source of truth. Each domain contributes a
`FigureSource` with `register_figures` (the erasure domain's are in `app.erasure.metrics`);
a source that fails is logged and left out of that scrape, never failing the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy.orm import Session

from app.core.broker import QUEUE_CPU, QUEUE_GPU, get_celery
from app.core.db import get_sessionmaker

FigureSource = Callable[[Session], Iterable[Metric]]

log = structlog.get_logger(__name__)
_sources: list[FigureSource] = []
_installed: list[Collector] = []


def register_figures(source: FigureSource) -> FigureSource:
    """Add a source of figures to every later scrape (a decorator)."""
    if source not in _sources:
        _sources.append(source)
    return source


def queue_depth() -> Iterator[Metric]:
    """Messages waiting in each of Lethe's queues (tasks a worker holds are not counted)."""
    depth = GaugeMetricFamily(
        "lethe_queue_depth", "Messages waiting in the broker queue", labels=["queue"]
    )
    with get_celery().connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        with conn.channel() as channel:
            for queue in (QUEUE_CPU, QUEUE_GPU):
                try:
                    count = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:  # a queue nothing was ever sent to does not exist yet
                    count = 0
                depth.add_metric([queue], count)
    yield depth


class DomainCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        with get_sessionmaker()() as session:
            for source in _sources:
                yield from _guarded(source.__name__, partial(source, session))
                session.rollback()
        yield from _guarded("queue_depth", queue_depth)


def _guarded(name: str, source: Callable[[], Iterable[Metric]]) -> Iterator[Metric]:
    try:
        figures = list(source())
    except Exception as exc:
        log.warning("metrics_source_failed", source=name, error_type=type(exc).__name__)
        return
    yield from figures


def install_domain_figures(registry: Any = REGISTRY) -> None:
    """Register the collector once per process."""
    if not _installed:
        collector = DomainCollector()
        registry.register(collector)
        _installed.append(collector)
