"""The forgetting score of the NeurIPS 2023 machine-unlearning competition (Triantafillou et al.,
2024, "Are we making progress in unlearning?"), from its published description.

Unlearning is judged as a distribution: N models unlearned from the same original, against N
models retrained without the forget set. For each forget record, each model gives one number
(here the log-odds of the record's label, which ranks models exactly as the cross-entropy loss
does; threshold attacks only see the ranking). Then, per record:

1. Threshold attacks. Every threshold between the 2N values is an attack that calls a model
   "unlearned" on one side of it, either side. Each has a false-positive rate (retrained models
   called unlearned) and a false-negative rate (unlearned models called retrained).
2. Epsilon. An attack with rates (FPR, FNR) shows an (epsilon, delta) gap of
   ``max(log((1 - delta - FPR) / FNR), log((1 - delta - FNR) / FPR))``, delta = 0.01. An attack
   with both rates 0 separates the two groups perfectly: epsilon is infinite. An attack with
   exactly one rate 0 is discarded, as in the competition (one empty cell out of N models is no
   evidence of an infinite gap); NaN (a logarithm of a negative number) counts as no evidence.
   The record's epsilon is the largest over attacks, and 0 when no attack beats guessing.
3. Buckets. The epsilons are bucketed in steps of 0.5 (13 edges from 0 to 6); a record in bucket
   n (1 for [0, 0.5), 2 for [0.5, 1), ..., 13 from 6 up, infinity included) scores 2 / 2**n.

F is the mean over the forget records (1 is perfect; retrained models against other retrained
models score well below 1 because N samples are few), and the final score is
``F * (retain accuracy ratio) * (test accuracy ratio)``, each ratio the unlearned models' mean
accuracy over the retrained models'.

Two properties worth knowing when reading the figures: epsilon is capped by N (the smallest
nonzero rate is 1/N), so F depends on N and compares only at equal N; and N identical models
(a deterministic method) whose common value lies inside the retrained models' range escape
every attack through the discard rule, so a method must be run with N different seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DELTA = 0.01
BIN_WIDTH = 0.5
BINS = 13


def attack_rates(*, unlearned: np.ndarray, retrained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, FNR) of every threshold attack that calls a value above the threshold unlearned,
    for each of the 2N values as threshold. The other side's attacks have rates 1 - FPR and
    1 - FNR."""
    unlearned = np.asarray(unlearned, dtype=np.float64)
    retrained = np.asarray(retrained, dtype=np.float64)
    thresholds = np.unique(np.concatenate([unlearned, retrained]))
    false_positive = (retrained[None, :] > thresholds[:, None]).mean(axis=1)
    false_negative = (unlearned[None, :] <= thresholds[:, None]).mean(axis=1)
    return false_positive, false_negative


def record_epsilon(*, unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> float:
    """The largest epsilon that a threshold attack shows for one record (see the module)."""
    false_positive, false_negative = attack_rates(unlearned=unlearned, retrained=retrained)
    best = 0.0
    for fpr, fnr in ((false_positive, false_negative), (1 - false_positive, 1 - false_negative)):
        if ((fpr == 0) & (fnr == 0)).any():
            return float("inf")
        kept = (fpr > 0) & (fnr > 0)
        fpr, fnr = fpr[kept], fnr[kept]
        with np.errstate(invalid="ignore", divide="ignore"):
            epsilons = np.fmax(
                np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr)
            )
        epsilons = epsilons[~np.isnan(epsilons)]
        if epsilons.size:
            best = max(best, float(epsilons.max()))
    return best


def bucket_scores(epsilons: np.ndarray) -> np.ndarray:
    """2 / 2**n per record, n its bucket: 1 for [0, 0.5), ..., 13 from 6 up."""
    buckets = np.digitize(np.asarray(epsilons, dtype=np.float64), np.arange(BINS) * BIN_WIDTH)
    scores: np.ndarray = 2.0 / 2.0**buckets
    return scores


@dataclass(frozen=True)
class ForgettingScore:
    """F, the final score, and what they came from."""

    forgetting: float
    final: float
    retain_ratio: float
    test_ratio: float
    models: int
    epsilons: tuple[float, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "F": self.forgetting,
            "final": self.final,
            "retain_ratio": self.retain_ratio,
            "test_ratio": self.test_ratio,
            "models": self.models,
            "median_epsilon": float(np.median(self.epsilons)),
        }


def forgetting_score(
    *,
    unlearned_scores: np.ndarray,
    retrained_scores: np.ndarray,
    unlearned_retain_accuracy: float,
    retrained_retain_accuracy: float,
    unlearned_test_accuracy: float,
    retrained_test_accuracy: float,
    delta: float = DELTA,
) -> ForgettingScore:
    """The score of N unlearned models against N retrained ones.

    The score arrays are [N, forget records]: each model's value for each forget record. The
    accuracies are means over each group's models.
    """
    unlearned_scores = np.asarray(unlearned_scores, dtype=np.float64)
    retrained_scores = np.asarray(retrained_scores, dtype=np.float64)
    if unlearned_scores.shape != retrained_scores.shape or unlearned_scores.ndim != 2:
        raise ValueError(
            f"expected two [models, records] arrays of one shape, got {unlearned_scores.shape} "
            f"and {retrained_scores.shape}"
        )
    epsilons = np.array(
        [
            record_epsilon(
                unlearned=unlearned_scores[:, j], retrained=retrained_scores[:, j], delta=delta
            )
            for j in range(unlearned_scores.shape[1])
        ]
    )
    forgetting = float(bucket_scores(epsilons).mean())
    retain_ratio = unlearned_retain_accuracy / retrained_retain_accuracy
    test_ratio = unlearned_test_accuracy / retrained_test_accuracy
    return ForgettingScore(
        forgetting=forgetting,
        final=forgetting * retain_ratio * test_ratio,
        retain_ratio=retain_ratio,
        test_ratio=test_ratio,
        models=int(unlearned_scores.shape[0]),
        epsilons=tuple(float(e) for e in epsilons),
    )
