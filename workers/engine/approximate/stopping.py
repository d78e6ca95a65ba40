"""Stopping an unlearning run once the forget records look unseen.

A retrain leaves the forget records scored like records it never saw. So a method given
`reference` records (same dataset, never trained on) can measure, every few steps, the
membership AUC of the forget records against them, with the membership test's own score, and
stop once it has fallen to chance: going on would push the forget records below unseen ones,
which over-forgets; stopping earlier leaves them member-like. A fixed step budget cannot fit
both a large and a small forget set; this check adapts to either.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from workers.engine.data import RecordArrays
from workers.engine.mia import holdout_percentiles, model_membership_scores


class UnseenStop:
    """Says when the forget records score no higher than the reference records.

    Disabled (never stops) when `reference` is None or empty, or `every` is 0.
    """

    def __init__(
        self,
        *,
        forget: RecordArrays,
        reference: RecordArrays | None,
        every: int,
        target_auc: float = 0.5,
    ) -> None:
        self.forget = forget
        self.reference = reference if reference is not None and len(reference) > 0 else None
        self.every = every
        self.target_auc = target_auc
        self.last_auc: float | None = None

    @property
    def enabled(self) -> bool:
        return self.reference is not None and self.every > 0

    def reached(self, *, model: nn.Module, step: int) -> bool:
        """Whether to stop after `step` optimizer steps (checked every `every` steps, and
        before the first). Leaves `model` in train mode."""
        if not self.enabled or step % self.every != 0:
            return False
        assert self.reference is not None
        forget_scores = model_membership_scores(
            model=model, features=self.forget.features, labels=self.forget.labels
        )
        reference_scores = model_membership_scores(
            model=model, features=self.reference.features, labels=self.reference.labels
        )
        model.train()
        percentiles = holdout_percentiles(
            forget_scores=forget_scores, holdout_scores=reference_scores
        )
        self.last_auc = float(np.mean(percentiles) / 100.0)
        return self.last_auc <= self.target_auc
