"""The per-record gate's statistics and verdict, on precomputed membership scores (numpy only).

Per record. A model's score for a record is the log-odds it gives the record's label (see
`workers.engine.mia.membership_scores`). The reference models that never saw the record show how
a model that never saw it scores it: their mean and spread. The record's standardized score is

    z = (score - mean of the unseen references' scores) / spread, clipped to +-4,

where the spread is the record's own variance among its ~8 unseen references, shrunk toward the
median such variance over the holdout (an underestimated spread would blow one record's z up).
A record the model still remembers has z far above what unseen records get.

Against the holdout. Holdout records are unseen by the model and by every reference, so their
z's show what "unseen" looks like for this model, whatever its overall confidence. With ``m``
the holdout's median z, two excesses, each a mean over records and each in units of the
unseen references' spread:

* memory: mean over the forget records of ``max(z - m, 0)`` minus the same over the holdout;
* overshoot: mean over the forget records of ``max(m - z, 0)`` minus the same over the holdout.

A record still remembered adds to memory only, one pushed beyond unseen adds to overshoot only,
so the two directions cannot cancel each other in one pooled number.

The retained share. The memory excess averages over records, so a few records memorized
strongly (a CNN on digits) vanish in it. Where the references allow (three that saw a record and
three that did not, for at least two records), the memory side is instead the retained share
(`workers.engine.verification.retained`): how much of a training run's per-record signal the
model still shows, 0 for never seen, 1 for trained on, judged against its own ``retained_margin``.
Without it (too few references on one side, as with a small ``reference_share``), the memory
excess decides, and the reason says so.

Verdict, with margin ``d`` for the excesses, ``r`` for the retained share, and two-sided
intervals at ``confidence`` (a Welch normal interval on a difference of two means; the ratio
estimator's for the share). Each excess measures one harm, so only its upper bound must be shown
below the margin; the share is harmful both ways (above 0 remembered, below pushed past unseen):

* ``pass``: the overshoot's upper bound below d, and the retained share's interval within
  (-r, r) (or, without it, the memory excess's upper bound below d): equivalence shown, each
  bound tested at (1 - confidence) / 2;
* ``remembers``: the retained share's interval lies wholly above r (without it, the memory
  excess's above d);
* ``over_forgot``: the overshoot's interval lies wholly above d, or the retained share's wholly
  below -r (the records training moves most are pushed below unseen);
* ``inconclusive``: anything else: an interval straddles its margin. With few records the
  intervals are wide (the ``resolution`` figure says how wide the excesses' would be with
  nothing to find). Never a pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from workers.engine.verification.intervals import Interval, normal_interval
from workers.engine.verification.moments import masked_moments, shrunk_spread
from workers.engine.verification.retained import RetainedShare, retained_share

GateVerdict = Literal["pass", "remembers", "over_forgot", "inconclusive"]

CLIP = 4.0
MIN_UNSEEN_REFERENCES = 3


__all__ = ["ForgettingVerdict", "GateVerdict", "Interval", "decide", "judge"]


@dataclass(frozen=True)
class ForgettingVerdict:
    """The per-record gate's answer, its figures, and each forget record's standardized score.

    `resolution` is the half-width the intervals would have with this many records and nothing
    to find (from the holdout's spread): the smallest margin a pass could be shown within.
    Forget records that fewer than three references never saw are left out and counted in
    `unreferenced`. `retained` is the retained share (None where the references cannot give
    it), `retained_signal` its denominator, `retained_records` the forget records it used.
    """

    verdict: GateVerdict
    reason: str
    memory: Interval
    overshoot: Interval
    margin: float
    retained: Interval | None
    retained_margin: float
    retained_signal: float | None
    retained_records: int
    confidence: float
    resolution: float
    n_forget: int
    n_holdout: int
    unreferenced: int
    references: int
    record_ids: tuple[int, ...]
    record_z: tuple[float, ...]
    record_unseen_references: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able figures, for the job's metrics and the certificate. A figure the test
        could not compute (fewer than two records) is None: strict JSON has no NaN."""
        out = _finite(asdict(self))
        for key in ("record_ids", "record_z", "record_unseen_references"):
            out[key] = list(out[key])
        out["test"] = "per_record_references"
        return out


def _finite(document: dict[str, Any]) -> dict[str, Any]:
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, float) and not np.isfinite(value):
            return None
        return value

    cleaned: dict[str, Any] = clean(document)
    return cleaned


def standardized_scores(
    *,
    target: np.ndarray,
    mean: np.ndarray,
    variance: np.ndarray,
    count: np.ndarray,
    prior_variance: float,
) -> np.ndarray:
    """z per record: the target's score against the unseen references', clipped to +-CLIP."""
    spread = shrunk_spread(
        variance=variance, dof=np.maximum(count - 1, 0), prior_variance=prior_variance
    )
    z = (np.asarray(target, dtype=np.float64) - mean) / spread
    clipped: np.ndarray = np.clip(z, -CLIP, CLIP)
    return clipped


def excess(*, forget: np.ndarray, holdout: np.ndarray, confidence: float) -> Interval:
    """Difference of two means with its Welch normal interval."""
    return normal_interval(
        estimate=float(forget.mean() - holdout.mean()),
        error=float(np.sqrt(forget.var(ddof=1) / len(forget) + holdout.var(ddof=1) / len(holdout))),
        confidence=confidence,
    )


def decide(
    *,
    memory: Interval,
    overshoot: Interval,
    margin: float,
    retained: Interval | None,
    retained_margin: float,
) -> GateVerdict:
    """The verdict from the intervals (see the module docstring)."""
    if retained is None:
        shown_unseen = memory.high < margin
        remembered = memory.low > margin
        pushed_below = False
    else:
        shown_unseen = -retained_margin < retained.low and retained.high < retained_margin
        remembered = retained.low > retained_margin
        pushed_below = retained.high < -retained_margin
    if shown_unseen and overshoot.high < margin:
        return "pass"
    if remembered:
        return "remembers"
    if overshoot.low > margin or pushed_below:
        return "over_forgot"
    return "inconclusive"


def judge(
    *,
    forget_ids: np.ndarray,
    forget_scores: np.ndarray,
    forget_reference_scores: np.ndarray,
    forget_unseen: np.ndarray,
    holdout_scores: np.ndarray,
    holdout_reference_scores: np.ndarray,
    holdout_unseen: np.ndarray,
    margin: float,
    confidence: float,
    retained_margin: float,
) -> ForgettingVerdict:
    """The verdict from the target's scores ([n]) and the references' ([K, n], with the mask of
    which references never saw each record), for the forget and the holdout records."""
    f_mean, f_var, f_count = masked_moments(
        reference_scores=forget_reference_scores, mask=forget_unseen
    )
    h_mean, h_var, h_count = masked_moments(
        reference_scores=holdout_reference_scores, mask=holdout_unseen
    )
    f_ok, h_ok = f_count >= MIN_UNSEEN_REFERENCES, h_count >= MIN_UNSEEN_REFERENCES
    prior = float(np.nanmedian(h_var[h_ok])) if h_ok.any() else float("nan")
    z_f = standardized_scores(
        target=forget_scores[f_ok],
        mean=f_mean[f_ok],
        variance=f_var[f_ok],
        count=f_count[f_ok],
        prior_variance=prior,
    )
    z_h = standardized_scores(
        target=holdout_scores[h_ok],
        mean=h_mean[h_ok],
        variance=h_var[h_ok],
        count=h_count[h_ok],
        prior_variance=prior,
    )
    retained: RetainedShare | None = None
    share: Interval | None = None
    if len(z_f) < 2 or len(z_h) < 2:
        nothing = Interval(estimate=float("nan"), low=float("nan"), high=float("nan"))
        memory, overshoot, resolution = nothing, nothing, float("inf")
        verdict: GateVerdict = "inconclusive"
        reason = (
            f"{len(z_f)} forget and {len(z_h)} holdout records have enough unseen references; "
            "the test needs at least two of each"
        )
    else:
        centre = float(np.median(z_h))
        above_h, below_h = np.maximum(z_h - centre, 0.0), np.maximum(centre - z_h, 0.0)
        memory = excess(
            forget=np.maximum(z_f - centre, 0.0), holdout=above_h, confidence=confidence
        )
        overshoot = excess(
            forget=np.maximum(centre - z_f, 0.0), holdout=below_h, confidence=confidence
        )
        resolution = _resolution(
            holdout_parts=(above_h, below_h), n_forget=len(z_f), confidence=confidence
        )
        retained = retained_share(
            forget_scores=forget_scores[f_ok],
            reference_scores=forget_reference_scores[:, f_ok],
            unseen=forget_unseen[:, f_ok],
            holdout_scores=holdout_scores[h_ok],
            holdout_reference_scores=holdout_reference_scores[:, h_ok],
            prior_variance=prior,
            confidence=confidence,
        )
        share = None if retained is None else retained.share
        verdict = decide(
            memory=memory,
            overshoot=overshoot,
            margin=margin,
            retained=share,
            retained_margin=retained_margin,
        )
        reason = _reason(
            verdict=verdict,
            memory=memory,
            overshoot=overshoot,
            margin=margin,
            retained=share,
            retained_margin=retained_margin,
            resolution=resolution,
            n_forget=len(z_f),
        )
    return ForgettingVerdict(
        verdict=verdict,
        reason=reason,
        memory=memory,
        overshoot=overshoot,
        margin=margin,
        retained=share,
        retained_margin=retained_margin,
        retained_signal=None if retained is None else retained.signal,
        retained_records=0 if retained is None else retained.records,
        confidence=confidence,
        resolution=resolution,
        n_forget=len(z_f),
        n_holdout=len(z_h),
        unreferenced=int((~f_ok).sum()),
        references=int(forget_unseen.shape[0]),
        record_ids=tuple(int(i) for i in np.asarray(forget_ids)[f_ok]),
        record_z=tuple(float(z) for z in z_f),
        record_unseen_references=tuple(int(c) for c in f_count[f_ok]),
    )


def _resolution(
    *, holdout_parts: tuple[np.ndarray, np.ndarray], n_forget: int, confidence: float
) -> float:
    """The wider of the two intervals' half-widths if the forget records were spread like the
    holdout records: what the test can resolve at this size."""
    quantile = NormalDist().inv_cdf(0.5 + confidence / 2)
    return max(
        quantile * float(np.sqrt(part.var(ddof=1) * (1 / n_forget + 1 / len(part))))
        for part in holdout_parts
    )


def _reason(
    *,
    verdict: GateVerdict,
    memory: Interval,
    overshoot: Interval,
    margin: float,
    retained: Interval | None,
    retained_margin: float,
    resolution: float,
    n_forget: int,
) -> str:
    def show(name: str, i: Interval) -> str:
        return f"{name} {i.estimate:+.2f} [{i.low:+.2f}, {i.high:+.2f}]"

    figures = f"{show('memory', memory)}, {show('overshoot', overshoot)} sd; margin {margin:.2f}"
    if retained is None:
        figures += (
            "; no retained share (too few references on one side of the records, or no gap "
            "between the two sides): the memory excess decides"
        )
    else:
        figures += f"; {show('retained share', retained)}, margin {retained_margin:.2f}"
    if verdict == "pass":
        return f"the forget records score like unseen records ({figures})"
    if verdict == "remembers":
        return f"the forget records are still scored like training records ({figures})"
    if verdict == "over_forgot":
        return f"the forget records are pushed beyond unseen records ({figures})"
    if retained is None and resolution >= margin:
        return (
            f"{n_forget} forget records are too few to show equivalence: the test resolves "
            f"+-{resolution:.2f} sd, wider than the margin ({figures})"
        )
    if retained is not None and (retained.high - retained.low) / 2 >= retained_margin:
        return (
            f"{n_forget} forget records are too few, for the signal training leaves on them, to "
            f"show equivalence: the retained share's interval is wider than its margin "
            f"({figures})"
        )
    return f"an interval straddles the margin ({figures})"
