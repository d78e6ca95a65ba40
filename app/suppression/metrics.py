"""The suppression list's figures in `/metrics`: erased identities by type, and the lawful
bases clients stated to process one again. A `FigureSource` (see `app.core.metrics`)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.metrics import register_figures
from app.suppression.models import SuppressionOverride
from app.suppression.service import counts_by_type


@register_figures
def suppression_figures(session: Session) -> Iterator[Metric]:
    suppressed = GaugeMetricFamily(
        "lethe_suppressed_identities",
        "Identities on the suppression list (erased on request), by identity type",
        labels=["identity_type"],
    )
    for identity_type, count in sorted(counts_by_type(session).items()):
        suppressed.add_metric([identity_type], count)
    yield suppressed
    overrides = GaugeMetricFamily(
        "lethe_suppression_overrides",
        "Suppressions a client lifted for its own datasets by stating a lawful basis",
        labels=["basis"],
    )
    rows = session.execute(
        select(SuppressionOverride.basis, func.count()).group_by(SuppressionOverride.basis)
    )
    for basis, count in sorted(rows):
        overrides.add_metric([basis], count)
    yield overrides
