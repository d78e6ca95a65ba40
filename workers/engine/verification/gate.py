"""The per-record membership gate: is each forgotten record scored the way models that never saw
it score it? The statistics are in `verdict`; this module runs the models."""

from __future__ import annotations

import numpy as np
from torch import nn

from workers.engine.data import RecordArrays
from workers.engine.mia import model_membership_scores
from workers.engine.verification.references import ReferenceSet
from workers.engine.verification.settings import GateSettings
from workers.engine.verification.verdict import ForgettingVerdict, judge


def _reference_view(
    *, references: ReferenceSet, records: RecordArrays
) -> tuple[np.ndarray, np.ndarray]:
    """The references' scores for `records` [K, n] and which of them never saw each record."""
    scores = np.stack(
        [
            model_membership_scores(model=model, features=records.features, labels=records.labels)
            for model in references.models
        ]
    )
    unseen = np.stack(
        [
            manifest.unseen(record_ids=records.record_ids, subject_ids=records.subject_ids)
            for manifest in references.manifests
        ]
    )
    return scores, unseen


def verify_forgetting(
    *,
    model: nn.Module,
    forget: RecordArrays,
    holdout: RecordArrays,
    references: ReferenceSet,
    settings: GateSettings,
) -> ForgettingVerdict:
    """Judge whether `model` scores the `forget` records like models that never saw them.

    `references` are the reference models of the version the forget records were erased from
    (`build_references` on its training records); `holdout` holds records that neither the model
    nor any reference trained on (the dataset's holdout split). Costs one forward pass of the
    model and of each reference over the forget and holdout records.
    """
    if not references.models:
        raise ValueError("no reference models: build them for the model version first")
    forget_reference, forget_unseen = _reference_view(references=references, records=forget)
    holdout_reference, holdout_unseen = _reference_view(references=references, records=holdout)
    return judge(
        forget_ids=forget.record_ids,
        forget_scores=model_membership_scores(
            model=model, features=forget.features, labels=forget.labels
        ),
        forget_reference_scores=forget_reference,
        forget_unseen=forget_unseen,
        holdout_scores=model_membership_scores(
            model=model, features=holdout.features, labels=holdout.labels
        ),
        holdout_reference_scores=holdout_reference,
        holdout_unseen=holdout_unseen,
        margin=settings.margin,
        confidence=settings.confidence,
        retained_margin=settings.retained_margin,
    )
