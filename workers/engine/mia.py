"""Membership-inference verification of an unlearned model.

The question: after unlearning, can an attacker tell the forgotten records apart from records the
model never saw? We answer it with a loss-threshold attack (Yeom et al., 2018), the attack whose
signal is exactly what training leaves behind: a model fits the records it trained on better than
records it did not.

Scores. Each record gets a membership score from the model's output on it:

* ``loss`` (default): the log-odds of the true label, ``log(p_y / (1 - p_y))``, which ranks
  records exactly as minus the cross-entropy loss does. Higher means "fits better", which is
  what a training member looks like. It is computed from the logits, so that records fitted to
  a probability that rounds to 1 still rank by how well they are fitted.
* ``confidence``: the log-odds of the top class, label-free.

Two groups are scored: the forget records, and holdout records of the same dataset that no version
of the model ever trained on. If unlearning worked, the forget records look like holdout records.

AUC. The attack's ROC AUC (scikit-learn's ``roc_auc_score``, forget = positive class) equals the
probability that a random forget record scores higher than a random holdout record, ties counting
one half (the Mann-Whitney U statistic divided by ``n_forget * n_holdout``):

* 0.5: indistinguishable, what retraining from scratch gives in expectation;
* above 0.5: the forget records still fit better than unseen data: the model **remembers**;
* below 0.5: the forget records fit *worse* than unseen data. A retrained model would not do
  that; the method pushed them away (the "Streisand effect"), which itself reveals which records
  were erased: the model **over-forgot**.

Per-record percentiles. Each forget record's score is placed among the holdout scores:
``100 * (#holdout below + 0.5 * #holdout equal) / n_holdout``. Around 50 means the record looks
like an unseen record; near 100 means it is still fitted like a training record. Their mean,
divided by 100, is the AUC, so they show which records carry a remaining signal.

Confidence interval. A stratified bootstrap: the forget and the holdout scores are resampled
with replacement, each within its own group, the AUC recomputed ``bootstrap_samples`` times, and
the central ``confidence`` interval of those AUCs taken (percentile method). Its width is set
mostly by the smaller group, normally the forget set: about ``+-1 / sqrt(3 * n_forget)`` around
0.5 at 95 %, i.e. +-0.08 for 50 records and +-0.26 for 5.

Verdict, with ``t`` = ``tolerance``:

* ``remembers`` when ``ci_low > 0.5 + t``: the AUC is significantly above chance by more than t;
* ``over_forgot`` when ``ci_high < 0.5 - t``: significantly below chance by more than t;
* ``pass`` otherwise.

What "pass" means. It means the test found no evidence of remaining membership signal *at this
sample size* and with *this attack*; it does not prove the records were forgotten. For a small
forget set the interval is wide, and a pass only rules out leaks larger than ``ci_high - 0.5``
(reported as ``undetectable_above``). A single request's handful of records can pass while the
model still holds a modest signal on them. Stronger attacks (shadow models, LiRA) can find signal
that this one misses. The tolerance keeps a retrained model, whose true AUC is 0.5, from failing
on sampling noise of the holdout/forget split; it also means that a true AUC inside
``0.5 +- t`` is accepted as "like retraining".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

Verdict = Literal["pass", "remembers", "over_forgot"]
_SCORE_LIMIT = 1e12

AttackScore = Literal["loss", "confidence"]
ATTACK_SCORES: tuple[str, ...] = ("loss", "confidence")


@dataclass(frozen=True)
class VerificationSettings:
    """Thresholds of the pooled membership-inference test.

    Attributes:
        attack: ``loss`` (log-odds of the true label) or ``confidence`` (of the top class).
        confidence: coverage of the bootstrap interval, in (0.5, 1). Default 0.95.
        tolerance: AUC distance from 0.5 that is accepted as chance even when significant.
            Default 0.02.
        bootstrap_samples: bootstrap resamples for the interval, at least 100. Default 1000.
        seed: seed of the bootstrap resampling, so a verdict can be reproduced. Default 0.
    """

    attack: AttackScore = "loss"
    confidence: float = 0.95
    tolerance: float = 0.02
    bootstrap_samples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.attack not in ATTACK_SCORES:
            problems.append(f"attack must be one of {list(ATTACK_SCORES)}, got {self.attack!r}")
        if not isinstance(self.confidence, int | float) or not 0.5 < self.confidence < 1.0:
            problems.append(f"confidence must be a number in (0.5, 1), got {self.confidence!r}")
        if not isinstance(self.tolerance, int | float) or not 0.0 <= self.tolerance < 0.5:
            problems.append(f"tolerance must be a number in [0, 0.5), got {self.tolerance!r}")
        if (
            not isinstance(self.bootstrap_samples, int)
            or isinstance(self.bootstrap_samples, bool)
            or self.bootstrap_samples < 100
        ):
            problems.append(
                f"bootstrap_samples must be an integer >= 100, got {self.bootstrap_samples!r}"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            problems.append(f"seed must be an integer, got {self.seed!r}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class MembershipTestResult:
    """Outcome of a membership-inference test of forget records against holdout records."""

    auc: float
    ci_low: float
    ci_high: float
    confidence: float
    tolerance: float
    attack: str
    percentiles: tuple[float, ...]
    verdict: Verdict
    n_forget: int
    n_holdout: int

    @property
    def undetectable_above(self) -> float:
        """Largest AUC deviation above chance that this test could not rule out."""
        return max(0.0, self.ci_high - 0.5)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able form, for the job's metrics."""
        out = asdict(self)
        out["percentiles"] = list(self.percentiles)
        out["undetectable_above"] = self.undetectable_above
        return out


def membership_scores(
    *, logits: np.ndarray, labels: np.ndarray, attack: AttackScore = "loss"
) -> np.ndarray:
    """Per-record membership scores from a model's logits; higher = more member-like.

    Both scores are log-odds, ``log(p / (1 - p))``, computed from the logits in float64 as
    ``z_c - logsumexp(z_k for k != c)``: ``c`` is the true label for ``loss`` (a monotone
    function of the cross-entropy loss, so it ranks records exactly as the loss does) and the
    top class for ``confidence``. Working from logits keeps confidently fitted records apart;
    probabilities in float32 round many of them to exactly 1, which would hide the very records
    a model memorized best.

    Args:
        logits: float array [n, num_classes].
        labels: int array [n], the true labels.
        attack: ``loss`` or ``confidence``.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0] or logits.shape[1] < 2:
        raise ValueError(
            f"logits must be [n, classes >= 2] matching labels [n]; got "
            f"{logits.shape} and {labels.shape}"
        )
    if attack == "loss":
        chosen = labels
    elif attack == "confidence":
        chosen = logits.argmax(axis=1)
    else:
        raise ValueError(f"attack must be one of {list(ATTACK_SCORES)}, got {attack!r}")
    rows = np.arange(logits.shape[0])
    others = logits.copy()
    others[rows, chosen] = -np.inf
    top = others.max(axis=1, keepdims=True)
    log_rest = top[:, 0] + np.log(np.exp(others - top).sum(axis=1))
    scores: np.ndarray = logits[rows, chosen] - log_rest
    # A diverged model's NaN or infinite outputs rank as fitting nothing (or everything) rather
    # than breaking the test; the utility check is what rejects such a model.
    clipped: np.ndarray = np.clip(
        np.nan_to_num(scores, nan=-_SCORE_LIMIT), -_SCORE_LIMIT, _SCORE_LIMIT
    )
    return clipped


@torch.no_grad()
def model_logits(
    *, model: torch.nn.Module, features: np.ndarray, batch_size: int = 4096
) -> np.ndarray:
    """The model's logits (eval mode) as a float64 numpy array [n, num_classes]."""
    model.eval()
    device = next(model.parameters()).device
    inputs = torch.from_numpy(np.asarray(features, dtype=np.float32))
    chunks = [
        model(inputs[start : start + batch_size].to(device)).double().cpu()
        for start in range(0, inputs.shape[0], batch_size)
    ]
    return torch.cat(chunks).numpy()


def model_membership_scores(
    *,
    model: torch.nn.Module,
    features: np.ndarray,
    labels: np.ndarray,
    attack: AttackScore = "loss",
) -> np.ndarray:
    """Scores of ``membership_scores`` computed by running ``model`` (in eval mode) on records."""
    logits = model_logits(model=model, features=features)
    return membership_scores(logits=logits, labels=labels, attack=attack)


def holdout_percentiles(*, forget_scores: np.ndarray, holdout_scores: np.ndarray) -> np.ndarray:
    """Percentile (0-100, ties counted half) of each forget score among the holdout scores."""
    ordered = np.sort(np.asarray(holdout_scores, dtype=np.float64))
    forget_scores = np.asarray(forget_scores, dtype=np.float64)
    below = np.searchsorted(ordered, forget_scores, side="left")
    below_or_equal = np.searchsorted(ordered, forget_scores, side="right")
    return 100.0 * (below + 0.5 * (below_or_equal - below)) / len(ordered)


def attack_auc(*, forget_scores: np.ndarray, holdout_scores: np.ndarray) -> float:
    """ROC AUC of separating forget (positive) from holdout (negative) records by score."""
    scores = np.concatenate([forget_scores, holdout_scores])
    is_forget = np.concatenate([np.ones(len(forget_scores)), np.zeros(len(holdout_scores))])
    return float(roc_auc_score(is_forget, scores))


def bootstrap_auc_interval(
    *,
    forget_scores: np.ndarray,
    holdout_scores: np.ndarray,
    confidence: float,
    samples: int,
    seed: int,
) -> tuple[float, float]:
    """Percentile interval of the AUC under a bootstrap that resamples each group on its own."""
    rng = np.random.default_rng(seed)
    forget_scores = np.asarray(forget_scores, dtype=np.float64)
    holdout_scores = np.asarray(holdout_scores, dtype=np.float64)
    aucs = np.empty(samples)
    for i in range(samples):
        forget_draw = forget_scores[rng.integers(0, len(forget_scores), len(forget_scores))]
        holdout_draw = holdout_scores[rng.integers(0, len(holdout_scores), len(holdout_scores))]
        # Same statistic as roc_auc_score (the mean holdout percentile), minus its input checks,
        # which dominate the cost of a thousand resamples.
        percentiles = holdout_percentiles(forget_scores=forget_draw, holdout_scores=holdout_draw)
        aucs[i] = percentiles.mean() / 100.0
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(aucs, [tail, 1.0 - tail])
    return float(low), float(high)


def decide_verdict(*, ci_low: float, ci_high: float, tolerance: float) -> Verdict:
    """``remembers`` / ``over_forgot`` when the interval lies wholly beyond 0.5 +- tolerance."""
    if ci_low > 0.5 + tolerance:
        return "remembers"
    if ci_high < 0.5 - tolerance:
        return "over_forgot"
    return "pass"


def membership_test_from_scores(
    *,
    forget_scores: np.ndarray,
    holdout_scores: np.ndarray,
    settings: VerificationSettings | None = None,
) -> MembershipTestResult:
    """Run the test on precomputed membership scores (higher = more member-like)."""
    settings = settings or VerificationSettings()
    forget_scores = np.asarray(forget_scores, dtype=np.float64)
    holdout_scores = np.asarray(holdout_scores, dtype=np.float64)
    if len(forget_scores) == 0 or len(holdout_scores) == 0:
        raise ValueError(
            f"the test needs at least one forget and one holdout record; got "
            f"{len(forget_scores)} forget and {len(holdout_scores)} holdout"
        )
    auc = attack_auc(forget_scores=forget_scores, holdout_scores=holdout_scores)
    ci_low, ci_high = bootstrap_auc_interval(
        forget_scores=forget_scores,
        holdout_scores=holdout_scores,
        confidence=settings.confidence,
        samples=settings.bootstrap_samples,
        seed=settings.seed,
    )
    return MembershipTestResult(
        auc=auc,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=settings.confidence,
        tolerance=settings.tolerance,
        attack=settings.attack,
        percentiles=tuple(
            float(p)
            for p in holdout_percentiles(forget_scores=forget_scores, holdout_scores=holdout_scores)
        ),
        verdict=decide_verdict(ci_low=ci_low, ci_high=ci_high, tolerance=settings.tolerance),
        n_forget=len(forget_scores),
        n_holdout=len(holdout_scores),
    )


class LabelledRecords(Protocol):
    """What the test reads from a record set (``workers.engine.data.RecordArrays`` fits)."""

    @property
    def features(self) -> np.ndarray: ...

    @property
    def labels(self) -> np.ndarray: ...


def membership_test(
    *,
    model: torch.nn.Module,
    forget: LabelledRecords,
    holdout: LabelledRecords,
    settings: VerificationSettings | None = None,
) -> MembershipTestResult:
    """Membership-inference test of the forget records against never-trained-on holdout records."""
    settings = settings or VerificationSettings()
    forget_scores = model_membership_scores(
        model=model, features=forget.features, labels=forget.labels, attack=settings.attack
    )
    holdout_scores = model_membership_scores(
        model=model, features=holdout.features, labels=holdout.labels, attack=settings.attack
    )
    return membership_test_from_scores(
        forget_scores=forget_scores, holdout_scores=holdout_scores, settings=settings
    )
