"""The gate's memory test: the share of a training run's per-record signal a model still shows.

Each forget record is seen by some reference models and unseen by others (about half each with
the defaults). Per record, a Gaussian fit to each side (one pooled spread, shrunk toward the
holdout's median variance) gives the log-likelihood ratio of a score under "trained on it"
against "never saw it": linear in the score, weighted by how far training moves the record
(``delta``, in spreads), so a record that no model memorizes weighs nothing and a record that
training moves by several spreads weighs much. Averaged over many records, the few memorized
records a mean of standardized scores would dilute carry the test.

Calibration by the references themselves. Each reference, left out of the fits, is scored as
the target is: over the references that never saw a record its ratios give the record's
unseen level ``m0``, over those that saw it the trained level ``m1``. With ``d`` the target's
ratio minus ``m0`` and ``g = m1 - m0``, the retained share

    alpha = mean(d) / mean(g)

is 0 for a model that never saw the records and 1 for one that trained on them as the
references did; its interval is the ratio estimator's (residuals ``d - alpha g``).

The target trained on all the records, the references on a share of them, so it is more
confident everywhere. Before the ratio, its scores are mapped onto the references' scale by a
line fitted on the holdout (its holdout scores against the references' mean there), and each
left-out reference is mapped the same way against the others.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from workers.engine.verification.intervals import Interval, normal_interval
from workers.engine.verification.moments import masked_moments, shrunk_spread
from workers.engine.verification.settings import MIN_EACH_SIDE

CLIP = 4.0
_MIN_SLOPE = 0.05


@dataclass(frozen=True)
class RetainedShare:
    """The retained share's estimate and interval, the mean trained-minus-unseen gap `signal`
    its denominator rests on, and how many forget records it used."""

    share: Interval
    signal: float
    records: int


@dataclass(frozen=True)
class _Fit:
    trained: np.ndarray
    unseen: np.ndarray
    spread: np.ndarray


def _fit(*, scores: np.ndarray, unseen: np.ndarray, include: np.ndarray, prior: float) -> _Fit:
    trained, trained_variance, n_trained = masked_moments(
        reference_scores=scores, mask=(~unseen) & include[:, None]
    )
    unseen_mean, unseen_variance, n_unseen = masked_moments(
        reference_scores=scores, mask=unseen & include[:, None]
    )
    dof = n_trained + n_unseen - 2
    pooled = ((n_trained - 1) * trained_variance + (n_unseen - 1) * unseen_variance) / dof
    spread = shrunk_spread(variance=pooled, dof=dof, prior_variance=prior)
    return _Fit(trained=trained, unseen=unseen_mean, spread=spread)


def _log_ratio(*, scores: np.ndarray, fit: _Fit) -> np.ndarray:
    delta = (fit.trained - fit.unseen) / fit.spread
    position = (scores - fit.unseen) / fit.spread - delta / 2
    ratio: np.ndarray = delta * np.clip(position, -CLIP, CLIP)
    return ratio


def _onto_reference_scale(
    *, scores: np.ndarray, holdout_scores: np.ndarray, holdout_reference_mean: np.ndarray
) -> np.ndarray | None:
    """`scores` mapped by the line that takes this model's holdout scores to the references'
    mean there; None when the line is flat (the model's scores do not follow the records)."""
    try:
        slope, intercept = np.polyfit(holdout_reference_mean, holdout_scores, 1)
    except (np.linalg.LinAlgError, ValueError):
        return None
    if not np.isfinite(slope) or slope < _MIN_SLOPE:
        return None
    mapped: np.ndarray = (scores - intercept) / slope
    return mapped


def retained_share(
    *,
    forget_scores: np.ndarray,
    reference_scores: np.ndarray,
    unseen: np.ndarray,
    holdout_scores: np.ndarray,
    holdout_reference_scores: np.ndarray,
    prior_variance: float,
    confidence: float,
) -> RetainedShare | None:
    """The target's retained share on the forget records (see the module docstring), or None
    when fewer than two records have three references on each side, when the references show
    no trained-minus-unseen gap on them, or when the target's scores cannot be mapped."""
    usable = ((~unseen).sum(axis=0) >= MIN_EACH_SIDE) & (unseen.sum(axis=0) >= MIN_EACH_SIDE)
    if usable.sum() < 2 or len(holdout_scores) < 2:
        return None
    scores, mask = reference_scores[:, usable], unseen[:, usable]
    count = scores.shape[0]
    everyone = np.ones(count, dtype=bool)
    target = _onto_reference_scale(
        scores=forget_scores[usable],
        holdout_scores=holdout_scores,
        holdout_reference_mean=holdout_reference_scores.mean(axis=0),
    )
    if target is None:
        return None
    left_out = np.full(scores.shape, np.nan)
    for k in range(count):
        others = everyone.copy()
        others[k] = False
        mapped = _onto_reference_scale(
            scores=scores[k],
            holdout_scores=holdout_reference_scores[k],
            holdout_reference_mean=holdout_reference_scores[others].mean(axis=0),
        )
        if mapped is not None:
            fit = _fit(scores=scores, unseen=mask, include=others, prior=prior_variance)
            left_out[k] = _log_ratio(scores=mapped, fit=fit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a record no reference could score
        unseen_level = np.nanmean(np.where(mask, left_out, np.nan), axis=0)
        trained_level = np.nanmean(np.where(~mask, left_out, np.nan), axis=0)
    fit = _fit(scores=scores, unseen=mask, include=everyone, prior=prior_variance)
    d = _log_ratio(scores=target, fit=fit) - unseen_level
    g = trained_level - unseen_level
    keep = np.isfinite(d) & np.isfinite(g)
    d, g = d[keep], g[keep]
    if len(d) < 2 or g.mean() <= 0:
        return None
    share = float(d.mean() / g.mean())
    return RetainedShare(
        share=normal_interval(
            estimate=share,
            error=float((d - share * g).std(ddof=1) / np.sqrt(len(d)) / g.mean()),
            confidence=confidence,
        ),
        signal=float(g.mean()),
        records=len(d),
    )
