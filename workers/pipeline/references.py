"""The reference models of an approximate model's versions: built for each exact version before
it is activated, loaded to gate an approximate erasure from it, purged with the records they
trained on (`workers.pipeline.purge`). See `workers/engine/approximate/README.md` for the gate.

Where they live: each exact version has its own prefix, ``models/<model>/references/<version>``,
named in its manifest (`storage.REFERENCES_KEY`); an approximate version, an edit of its base,
names its base's. Why not one prefix per model, where `build_references` would retrain only the
purged ones in place? In place means before the activation: the references that trained on an
erased record would be overwritten by the job rather than deleted through the purge outbox, so
never confirmed gone nor counted on the certificate, and a job that failed after rebuilding
would have changed the references of the version still active. Instead a new version first
copies the previous version's references that are still valid for its records
(`carry_references`: same selection and training, every record still in its data, hence none
that saw an erased record) and trains only the others; the old prefix is purged once no live
version names it. The copies cost storage and I/O, not training.

Cost: ``references * reference_share`` retrains' worth of training per exact version (8 with the
default policy), less what is carried; a job's progress counts it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.registry.enums import Strategy
from app.registry.models import MlModel
from workers.engine.approximate.policy import ApproximatePolicy
from workers.engine.data import RecordArrays
from workers.engine.verification.manifests import read_manifests, references_holding
from workers.engine.verification.references import (
    ReferenceSet,
    build_references,
    carry_references,
    load_references,
)
from workers.engine.verification.settings import GateSettings
from workers.pipeline.models_io import spec_for
from workers.pipeline.storage import artifact_store, prefix_of, references_prefix

LOAD_ATTEMPTS = 3

# Called with the fraction (0 to 1) of the references' training done.
Fraction = Callable[[float], None]


@dataclass(frozen=True)
class PendingReferences:
    """A new version's references once the still-valid ones are carried, before training."""

    prefix: str
    settings: GateSettings
    carried: int

    @property
    def cost(self) -> float:
        """Retrains' worth of training left: what a job's progress weighs them by."""
        return (self.settings.references - self.carried) * self.settings.reference_share


def prepare(
    *,
    model: MlModel,
    version_id: uuid.UUID,
    data: RecordArrays,
    num_classes: int,
    carry_from: str | None,
) -> PendingReferences | None:
    """Start the references of a new exact version trained on `data`: copy those of the version
    at `carry_from` that are still valid. None for a model that is not approximate."""
    if model.strategy != Strategy.APPROXIMATE:
        return None
    settings = ApproximatePolicy.from_dict(model.approximate_policy or {}).verification
    prefix = references_prefix(model_id=model.id, version_id=version_id)
    carried = []
    if carry_from is not None:
        carried = carry_references(
            store=artifact_store(),
            source=carry_from,
            target=prefix,
            spec=spec_for(model),
            data=data,
            num_classes=num_classes,
            settings=settings,
        )
    return PendingReferences(prefix=prefix, settings=settings, carried=len(carried))


def build(
    *,
    pending: PendingReferences,
    model: MlModel,
    data: RecordArrays,
    num_classes: int,
    progress: Fraction,
) -> dict[str, Any]:
    """Train the references not carried; return their figures for the version's metrics."""
    started = time.perf_counter()
    to_train = pending.settings.references - pending.carried
    finished = 0

    def on_epoch(epoch: int, epochs: int) -> None:
        nonlocal finished
        progress((finished + epoch / epochs) / max(to_train, 1))
        if epoch == epochs:
            finished += 1

    manifests = build_references(
        spec=spec_for(model),
        data=data,
        num_classes=num_classes,
        settings=pending.settings,
        store=artifact_store(),
        prefix=pending.prefix,
        epoch_progress=on_epoch,
    )
    return {
        "count": len(manifests),
        "carried": pending.carried,
        "trained": len(manifests) - pending.carried,
        "seconds": round(time.perf_counter() - started, 3),
    }


def check_clean(*, prefix: str, erased_record_ids: np.ndarray) -> None:
    """Refuse a new exact version whose references list an erased record."""
    manifests = read_manifests(store=artifact_store(), prefix=prefix)
    if references_holding(manifests=manifests, erased_record_ids=erased_record_ids):
        raise RuntimeError("a reference model of the new version lists an erased record")


def load(*, model: MlModel, manifest: dict[str, Any]) -> ReferenceSet | None:
    """The reference models of a version, or None when it has none (a version built before
    they were, or whose references were all purged): the gate then falls back to its pooled
    test, and the job's figures say so; that test never closes a request (`closing_refusal`)."""
    prefix = prefix_of(manifest=manifest)
    if prefix is None:
        return None
    for attempt in range(LOAD_ATTEMPTS):
        try:
            references = load_references(
                store=artifact_store(), prefix=prefix, spec=spec_for(model)
            )
            break
        except KeyError:  # a reference the sweeper deleted as it was read: read them again
            if attempt == LOAD_ATTEMPTS - 1:
                raise
    return references if references.models else None
