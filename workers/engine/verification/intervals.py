"""An estimate with its two-sided interval, shared by the gate's tests."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist


@dataclass(frozen=True)
class Interval:
    """An estimate and its two-sided interval."""

    estimate: float
    low: float
    high: float


def normal_interval(*, estimate: float, error: float, confidence: float) -> Interval:
    """`estimate` +- the normal quantile of two-sided `confidence` times its standard error."""
    quantile = NormalDist().inv_cdf(0.5 + confidence / 2)
    return Interval(
        estimate=estimate, low=estimate - quantile * error, high=estimate + quantile * error
    )
