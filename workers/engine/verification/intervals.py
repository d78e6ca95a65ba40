"""An estimate with its two-sided interval, shared by the gate's tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    """An estimate and its two-sided interval."""

    estimate: float
    low: float
    high: float
