"""Per-record moments of the reference models' scores, shared by the gate's two tests."""

from __future__ import annotations

import numpy as np

PRIOR_WEIGHT = 4.0  # pseudo-observations of the holdout's median variance in each spread


def masked_moments(
    *, reference_scores: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per record (columns): mean and variance of the scores of the references `mask` selects
    (say, those that never saw it), and how many there are. [K, n] scores and mask in; NaN
    where fewer than two."""
    count = mask.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(mask, reference_scores, 0.0).sum(axis=0) / count
        squares = np.where(mask, (reference_scores - mean) ** 2, 0.0).sum(axis=0)
        variance = np.where(count >= 2, squares / np.maximum(count - 1, 1), np.nan)
    return mean, variance, count


def shrunk_spread(*, variance: np.ndarray, dof: np.ndarray, prior_variance: float) -> np.ndarray:
    """A record's spread: its own variance (with `dof` degrees of freedom; NaN counts as none)
    shrunk toward `prior_variance`, so that a few references cannot make it collapse."""
    own = np.nan_to_num(variance, nan=prior_variance)
    spread: np.ndarray = np.sqrt((dof * own + PRIOR_WEIGHT * prior_variance) / (dof + PRIOR_WEIGHT))
    return spread
