"""Geometry of the evidence charts, drawn as inline SVG by the templates (no script, no
library): the attack's AUC interval against the tolerance band, and where the forgotten
records' scores fall among records no model saw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WIDTH = 640
LEFT, RIGHT = 150, 20
ROW = 44
TOP = 16


def _x(value: float) -> float:
    return round(LEFT + max(0.0, min(1.0, value)) * (WIDTH - LEFT - RIGHT), 1)


@dataclass(frozen=True)
class IntervalRow:
    label: str
    y: float
    auc: float
    low: float
    high: float
    x_auc: float
    x_low: float
    x_high: float
    verdict: str


@dataclass(frozen=True)
class IntervalChart:
    width: int
    height: int
    band_x: float
    band_width: float
    band_low: float
    band_high: float
    chance_x: float
    axis_y: float
    ticks: list[tuple[float, str]]
    rows: list[IntervalRow]


def interval_chart(rows: list[tuple[str, dict[str, Any]]]) -> IntervalChart | None:
    """One row per (label, membership-test figures) with an `auc` and its interval."""
    usable = [(label, f) for label, f in rows if isinstance(f, dict) and "auc" in f]
    if not usable:
        return None
    tolerance = float(usable[-1][1].get("tolerance", 0.02))
    drawn = []
    for i, (label, f) in enumerate(usable):
        auc = float(f["auc"])
        low, high = float(f.get("ci_low", auc)), float(f.get("ci_high", auc))
        drawn.append(
            IntervalRow(
                label=label,
                y=TOP + ROW * i + ROW / 2,
                auc=auc,
                low=low,
                high=high,
                x_auc=_x(auc),
                x_low=_x(low),
                x_high=_x(high),
                verdict=str(f.get("verdict", "")),
            )
        )
    axis_y = TOP + ROW * len(drawn) + 4
    return IntervalChart(
        width=WIDTH,
        height=int(axis_y + 40),
        band_x=_x(0.5 - tolerance),
        band_width=round(_x(0.5 + tolerance) - _x(0.5 - tolerance), 1),
        band_low=0.5 - tolerance,
        band_high=0.5 + tolerance,
        chance_x=_x(0.5),
        axis_y=axis_y,
        ticks=[(_x(t), f"{t:.2f}") for t in (0.0, 0.25, 0.5, 0.75, 1.0)],
        rows=drawn,
    )


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    count: int
    label: str


@dataclass(frozen=True)
class PercentileChart:
    width: int
    height: int
    bar_width: float
    base_y: float
    expected_y: float
    expected: float
    bars: list[Bar]
    records: int
    median: float
    edges: list[tuple[float, str]]  # axis ticks at bin edges: (x, percentile)


BINS = 10
CHART_HEIGHT = 160
PLOT_TOP, PLOT_BOTTOM = 20, 124


def percentile_chart(percentiles: list[float]) -> PercentileChart | None:
    """A histogram of the forgotten records' percentiles among unseen records' scores, in ten
    bins, against the flat line that records never trained on would follow."""
    values = [float(p) for p in percentiles if isinstance(p, int | float)]
    if not values:
        return None
    counts = [0] * BINS
    for p in values:
        counts[min(BINS - 1, max(0, int(p // (100 / BINS))))] += 1
    expected = len(values) / BINS
    top = max(max(counts), expected) or 1
    plot_h = PLOT_BOTTOM - PLOT_TOP
    slot = (WIDTH - 40 - RIGHT) / BINS
    bars = [
        Bar(
            x=round(40 + i * slot + 2, 1),
            y=round(PLOT_BOTTOM - plot_h * c / top, 1),
            height=round(plot_h * c / top, 1),
            count=c,
            label=f"{i * 10}-{(i + 1) * 10}",
        )
        for i, c in enumerate(counts)
    ]
    ordered = sorted(values)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return PercentileChart(
        width=WIDTH,
        height=CHART_HEIGHT,
        bar_width=round(slot - 4, 1),
        base_y=PLOT_BOTTOM,
        expected_y=round(PLOT_BOTTOM - plot_h * expected / top, 1),
        expected=expected,
        bars=bars,
        records=len(values),
        median=median,
        edges=[(round(40 + i * slot, 1), str(i * 10)) for i in range(0, BINS + 1, 2)],
    )
