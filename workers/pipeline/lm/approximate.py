"""Approximate unlearning of a `causal_lm` model (`strategy: approximate`): NPO or gradient
difference on its one adapter, accepted only when the text check passes.

As a mitigation (the default, `finalize: exact`) the result is activated at once so the model
stops exposing the person, and the scheduled exact job retrains the adapter without them; with
`finalize: approximate` it closes the request, certified as approximate. Either way the unlearned
adapter still carries the erased records' influence: its manifest lists every record the adapter
was trained on, so the exact erasure purges it like any version that saw them.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from app.jobs.enums import JobStage
from app.registry.base_models import CAUSAL_LM
from app.registry.versions import NewVersion
from workers.engine.lm.adapter_sisa import TextRecord
from workers.engine.lm.finetune import adapter_state_bytes
from workers.engine.lm.policy import (
    EDITING_LIMITATIONS,
    SUPPRESSION_METHODS,
    LmApproximatePolicy,
    TextCheck,
    check_text_figures,
)
from workers.engine.lm.unlearning import gradient_difference, npo
from workers.pipeline.activation import activate
from workers.pipeline.job_context import JobContext
from workers.pipeline.lm.adapters import (
    MANIFEST_KIND,
    adapter_config,
    adapter_from_weights,
    edits_bytes,
    restore,
    training_of,
    version_edits,
)
from workers.pipeline.lm.text_checks import text_figures
from workers.pipeline.session import enter_stage
from workers.pipeline.storage import (
    artifact_store,
    edits_key,
    get_record_ids,
    put_record_ids,
    record_ids_key,
    weights_key,
)

WEIGHTS_KIND = "monolithic"  # one stored weights file: the registry purges it with its version


def version_method(method: str) -> str:
    """A version's `method`: `edit` for a suppression, `approximate:<method>` otherwise."""
    return method if method in SUPPRESSION_METHODS else f"approximate:{method}"


@dataclass
class ApproximateAttempt:
    method: str
    model: PeftModel
    influenced_by: np.ndarray  # every record the unlearned adapter was trained on
    figures: dict[str, Any]
    check: TextCheck
    seconds: float
    # By block: what weight edits added to the base's MLP output projections, in total.
    edits: dict[int, torch.Tensor] = field(default_factory=dict)

    def verification(self) -> dict[str, Any]:
        verification = {
            "kind": "text_check",
            "method": self.method,
            "passed": self.check.passed,
            "reasons": list(self.check.reasons),
            "seconds": round(self.seconds, 3),
            **self.figures,
        }
        if self.method in SUPPRESSION_METHODS:
            verification["effect"] = "suppression"
            verification["limitations"] = EDITING_LIMITATIONS
        return verification


@dataclass(frozen=True)
class ActiveAdapter:
    model: PeftModel
    tokenizer: PreTrainedTokenizerBase
    influenced_by: np.ndarray  # every record it was trained on
    edits: dict[int, torch.Tensor] = field(default_factory=dict)  # already in `model`

    def saw_any(self, record_ids: np.ndarray) -> bool:
        return bool(np.isin(record_ids, self.influenced_by).any())


def active_adapter(ctx: JobContext) -> ActiveAdapter:
    """The base version's adapter on the base model: from its checkpoint (an exact version) or
    its weights (an approximate one)."""
    manifest = ctx.base.manifest
    if manifest.get("kind") == MANIFEST_KIND:
        if len(manifest["shards"]) != 1:
            raise ValueError("approximate unlearning takes a model with one adapter")
        sisa = restore(model=ctx.model, manifest=manifest, records=[])
        last = sisa.checkpoints[(0, sisa.config.slices - 1)]
        return ActiveAdapter(sisa.shard_model(shard=0), sisa.tokenizer, np.asarray(last.record_ids))
    adapter, tokenizer = adapter_from_weights(model=ctx.model, manifest=manifest)
    return ActiveAdapter(
        adapter,
        tokenizer,
        get_record_ids(key=manifest["record_ids_key"]),
        edits=version_edits(manifest),
    )


def attempt(
    ctx: JobContext,
    *,
    adapter: ActiveAdapter,
    forget: list[TextRecord],
    remaining: list[TextRecord],
    holdout: list[TextRecord],
) -> ApproximateAttempt:
    """The policy's method on `adapter` (changed in place), and the text check of the result."""
    policy = LmApproximatePolicy.from_dict(ctx.model.approximate_policy or {})
    settings = policy.settings
    enter_stage(ctx.job_id, stage=JobStage.UNLEARNING)
    if policy.method == "edit":
        from workers.pipeline.lm.edit_mitigation import edit_attempt  # it builds on this module

        return edit_attempt(
            ctx, adapter=adapter, policy=policy, forget=forget, remaining=remaining, holdout=holdout
        )
    chooser = random.Random(ctx.model.seed)
    retain = chooser.sample(remaining, min(len(remaining), settings.retain_sample))
    started = time.perf_counter()
    common: dict[str, Any] = {
        "model": adapter.model,
        "tokenizer": adapter.tokenizer,
        "forget": [r.example for r in forget],
        "retain": [r.example for r in retain],
        "steps": settings.steps,
        "learning_rate": settings.learning_rate,
        "retain_weight": settings.retain_weight,
        "batch_size": settings.batch_size,
        "seed": ctx.model.seed,
    }
    if policy.method == "npo":
        npo(beta=settings.beta, **common)
    else:
        gradient_difference(**common)
    seconds = time.perf_counter() - started
    enter_stage(ctx.job_id, stage=JobStage.VERIFYING)
    figures = text_figures(
        model=adapter.model, tokenizer=adapter.tokenizer, records=forget, holdout=holdout
    )
    return ApproximateAttempt(
        method=policy.method,
        model=adapter.model,
        influenced_by=adapter.influenced_by,
        figures=figures,
        check=check_text_figures(figures=figures, settings=policy.check),
        seconds=seconds,
        edits=adapter.edits,
    )


def activate_attempt(
    ctx: JobContext, *, result: ApproximateAttempt, forget_ids: np.ndarray, mitigation: bool
) -> None:
    """Store the unlearned adapter with the ids of every record it was trained on, and activate
    it as an approximate version."""
    version_id = uuid.uuid4()
    weights = weights_key(model_id=ctx.model.id, version_id=version_id)
    records = record_ids_key(model_id=ctx.model.id, version_id=version_id)
    artifact_store().put(key=weights, data=adapter_state_bytes(model=result.model))
    put_record_ids(key=records, record_ids=result.influenced_by)
    manifest: dict[str, Any] = {
        "kind": WEIGHTS_KIND,
        "architecture": CAUSAL_LM,
        "base_model_id": str(ctx.model.base_model_id),
        "training": training_of(adapter_config(ctx.model)),
        "weights_key": weights,
        "record_ids_key": records,
        "record_count": int(result.influenced_by.size),
        "max_record_id": ctx.max_record_id,
        "exact": False,
    }
    if result.edits:
        manifest["edits_key"] = edits_key(model_id=ctx.model.id, version_id=version_id)
        artifact_store().put(key=manifest["edits_key"], data=edits_bytes(result.edits))
    metrics: dict[str, Any] = {"verification": result.verification()}
    if mitigation:
        metrics["mitigation"] = "applied"
    activate(
        ctx=ctx,
        forget_ids=forget_ids,
        new=NewVersion(
            id=version_id,
            method=version_method(result.method),
            exact=False,
            manifest=manifest,
            trained_records=int(result.influenced_by.size) - int(forget_ids.size),
            metrics=metrics,
            checkpoint_rows=[(weights, 0, 0)],
        ),
    )
