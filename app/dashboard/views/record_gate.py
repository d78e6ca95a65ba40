"""The per-record gate's figures on the evidence page: each forgotten record scored against
reference models that never saw it, summed into a memory and an overshoot excess, and against
those that saw it too, into the retained share, each with its interval (see
`workers.engine.verification.verdict`)."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from app.dashboard.views.charts import PercentileChart, percentile_chart

PER_RECORD_TEST = "per_record_references"

VERDICTS = {
    "pass": (
        "Pass: record by record, the model scores the forgotten records as models that never "
        "saw them do. The figures below lie within their margins, so a memory (or an "
        "overshoot) larger than the margin is ruled out; a smaller one is not."
    ),
    "remembers": (
        "Remembers: record by record, the model still scores the forgotten records above what "
        "models that never saw them give (the retained share, or without it the memory "
        "excess, lies above its margin). Lethe did "
        "not accept this result and retrained the model instead."
    ),
    "over_forgot": (
        "Over-forgot: the forgotten records now score below what models that never saw them "
        "give, which itself reveals which records were erased. Lethe did not accept this "
        "result and retrained the model instead."
    ),
    "inconclusive": (
        "Inconclusive: the intervals straddle the margin, so the test could show neither that "
        "the records look unseen nor that they are remembered. This is never counted as a "
        "pass; with few records the resolution figure below says why."
    ),
}


@dataclass
class RecordGate:
    label: str
    figures: dict[str, Any]
    before: dict[str, Any] | None
    verdict_text: str
    percentiles: PercentileChart | None


def _is_per_record(figures: object) -> bool:
    return isinstance(figures, dict) and figures.get("test") == PER_RECORD_TEST


def record_gate(label: str, figures: dict[str, Any]) -> RecordGate | None:
    """The per-record gate's view of a job's verification figures, or None when another test
    gated the step."""
    after = figures.get("verification")
    if not isinstance(after, dict) or not _is_per_record(after):
        return None
    before = figures.get("verification_before")
    verdict = str(after.get("verdict", ""))
    normal = NormalDist()
    z_scores = [z for z in after.get("record_z") or [] if isinstance(z, int | float)]
    return RecordGate(
        label=label,
        figures=after,
        before=before if _is_per_record(before) else None,
        verdict_text=VERDICTS.get(verdict, f"Verdict: {verdict}."),
        percentiles=percentile_chart([100 * normal.cdf(z) for z in z_scores]),
    )
