"""Unlearning a monolithic model.

- `run` (an `unlearn` job) is exact: retraining from scratch on the remaining records (and, for
  an approximate model, its reference models, before the new version is activated). Only for
  a model whose operator chose `finalize: approximate` does it try the policy's approximate
  method first, gated by the membership test, retraining when the check fails.
- `mitigate` (a `mitigate` job) applies the approximate method at once so the active model stops
  exposing the person; its result is activated only when the check passes. It never closes a
  request: the model's scheduled exact job does.

The check is the per-record gate against the base version's reference models; a version without
them (built before they were, or all purged) is checked by the pooled test instead, and the
job's figures say which (`gate`, `references`). The pooled test, or a per-record gate whose
references earlier erasures thinned below the retained share, may gate a mitigation but never
closes a request: `run` then retrains (`closing_refusal`).
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from app.jobs.enums import JobStage
from app.registry.enums import Finalize, Strategy
from app.registry.versions import NewVersion
from workers.engine.approximate.policy import ApproximatePolicy
from workers.engine.approximate.workflow import ApproximateOutcome, unlearn_and_verify
from workers.engine.data import RecordArrays
from workers.engine.training import accuracy, train_model
from workers.engine.verification.verdict import ForgettingVerdict
from workers.pipeline import references
from workers.pipeline.activation import activate
from workers.pipeline.job_context import JobContext, load_context
from workers.pipeline.job_outcomes import fall_back, finish_without_version
from workers.pipeline.models_io import load_monolithic, save_monolithic, spec_for
from workers.pipeline.session import Heartbeat, enter_stage
from workers.pipeline.storage import REFERENCES_KEY, get_record_ids, prefix_of

MEMBERSHIP = "membership_inference"


def _approximate(
    ctx: JobContext,
    *,
    forget: RecordArrays,
    remaining: RecordArrays,
    heart: Heartbeat,
    closes_request: bool,
) -> ApproximateOutcome:
    enter_stage(ctx.job_id, stage=JobStage.UNLEARNING)
    outcome = unlearn_and_verify(
        model=load_monolithic(model=ctx.model, manifest=ctx.base.manifest),
        forget=forget,
        retain=remaining,
        holdout=ctx.records(split="holdout"),
        test=ctx.records(split="test"),
        policy=ApproximatePolicy.from_dict(ctx.model.approximate_policy or {}),
        references=references.load(model=ctx.model, manifest=ctx.base.manifest),
        progress=lambda done, total: heart.beat(fraction=0.8 * done / max(total, 1)),
        closes_request=closes_request,
    )
    enter_stage(ctx.job_id, stage=JobStage.VERIFYING)
    return outcome


def _gate_figures(outcome: ApproximateOutcome) -> dict[str, Any]:
    """The approximate attempt's figures, saying which test gated it: the per-record gate with
    this many reference models, or the pooled test when the base version had none."""
    verdict = outcome.verification
    used = verdict.references if isinstance(verdict, ForgettingVerdict) else 0
    return {
        "kind": MEMBERSHIP,
        "gate": "per_record" if used else "pooled",
        "references": used,
        **outcome.to_dict(),
    }


def _approximate_metrics(outcome: ApproximateOutcome) -> dict[str, Any]:
    return {
        "test_accuracy": round(outcome.utility_after.test_accuracy, 4),
        "verification": _gate_figures(outcome),
    }


def run(*, job_id: uuid.UUID) -> None:
    ctx = load_context(job_id=job_id)
    forget = ctx.forget()
    remaining = ctx.remaining()
    heart = Heartbeat(job_id=job_id)
    gate: dict[str, Any] | None = None
    approximate_closes = (
        ctx.model.strategy == Strategy.APPROXIMATE and ctx.model.finalize == Finalize.APPROXIMATE
    )
    if approximate_closes and len(forget):
        outcome = _approximate(
            ctx, forget=forget, remaining=remaining, heart=heart, closes_request=True
        )
        if not outcome.fallback_needed:
            _activate_approximate(ctx, forget=forget, outcome=outcome)
            return
        gate = _gate_figures(outcome)
        fall_back(job_id, reason="; ".join(outcome.reasons), figures=gate)
    else:
        enter_stage(job_id, stage=JobStage.RETRAINING)
    _retrain(ctx, forget=forget, remaining=remaining, heart=heart, gate=gate)


def mitigate(*, job_id: uuid.UUID) -> None:
    ctx = load_context(job_id=job_id)
    forget = ctx.forget()
    if not len(forget) or not _base_saw(ctx, forget):
        finish_without_version(
            job_id, mitigation="not_needed", reason="the active version never saw the records"
        )
        return
    outcome = _approximate(
        ctx,
        forget=forget,
        remaining=ctx.remaining(),
        heart=Heartbeat(job_id=job_id),
        closes_request=False,
    )
    if outcome.fallback_needed:
        reason = "approximate unlearning failed its check (" + "; ".join(outcome.reasons) + ")"
        finish_without_version(
            job_id, mitigation="failed", reason=reason, figures=_approximate_metrics(outcome)
        )
        return
    _activate_approximate(ctx, forget=forget, outcome=outcome, mitigation=True)


def _base_saw(ctx: JobContext, forget: RecordArrays) -> bool:
    """Whether the active version may carry the records (an approximate one always may)."""
    key = ctx.base.manifest.get("record_ids_key")
    if not ctx.base.exact or key is None:
        return True
    return bool(np.isin(forget.record_ids, get_record_ids(key=key)).any())


def _retrain(
    ctx: JobContext,
    *,
    forget: RecordArrays,
    remaining: RecordArrays,
    heart: Heartbeat,
    gate: dict[str, Any] | None,
) -> None:
    heart.beat(fraction=0.0, force=True)
    version_id = uuid.uuid4()
    num_classes = int(ctx.base.manifest["num_classes"])
    # An approximate model's new version gets its reference models before it is activated:
    # those of the base that never saw an erased record are carried, the others retrained.
    pending = references.prepare(
        model=ctx.model,
        version_id=version_id,
        data=remaining,
        num_classes=num_classes,
        carry_from=prefix_of(manifest=ctx.base.manifest),
    )
    share = 1.0 / (1.0 + (pending.cost if pending is not None else 0.0))
    network = train_model(
        spec=spec_for(ctx.model),
        data=remaining,
        num_classes=num_classes,
        seed=ctx.model.seed,
        progress=lambda epoch, total: heart.beat(fraction=share * epoch / total),
    )
    metrics: dict[str, Any] = {}
    if pending is not None:
        metrics["references"] = references.build(
            pending=pending,
            model=ctx.model,
            data=remaining,
            num_classes=num_classes,
            progress=lambda done: heart.beat(fraction=share + (1.0 - share) * done),
        )
        references.check_clean(prefix=pending.prefix, erased_record_ids=forget.record_ids)
    enter_stage(ctx.job_id, stage=JobStage.VERIFYING)
    verification: dict[str, Any] = {
        "kind": "exact",
        "erased_records": len(forget),
        "erased_records_in_new_version": int(
            np.isin(forget.record_ids, remaining.record_ids).sum()
        ),
    }
    if gate is not None:
        verification["approximate_attempt"] = gate
    _activate(
        ctx,
        forget=forget,
        network=network,
        record_ids=remaining.record_ids,
        method="retrain",
        exact=True,
        metrics={
            "test_accuracy": round(accuracy(model=network, data=ctx.records(split="test")), 4),
            "verification": verification,
            **metrics,
        },
        trained_records=len(remaining),
        version_id=version_id,
        references_prefix=pending.prefix if pending is not None else None,
    )


def _activate_approximate(
    ctx: JobContext,
    *,
    forget: RecordArrays,
    outcome: ApproximateOutcome,
    mitigation: bool = False,
) -> None:
    # Edited weights still carry what the base version was trained on: the manifest says so,
    # so that the exact erasure later purges this version too. It is gated with its base's
    # reference models, which that erasure purges with it.
    influenced_by = get_record_ids(key=ctx.base.manifest["record_ids_key"])
    metrics = _approximate_metrics(outcome)
    if mitigation:
        metrics["mitigation"] = "applied"
    _activate(
        ctx,
        forget=forget,
        network=outcome.model,
        record_ids=influenced_by,
        method=f"approximate:{outcome.method}",
        exact=False,
        metrics=metrics,
        trained_records=int(influenced_by.size) - len(forget),
        references_prefix=prefix_of(manifest=ctx.base.manifest),
    )


def _activate(
    ctx: JobContext,
    *,
    forget: RecordArrays,
    network: Any,
    record_ids: np.ndarray,
    method: str,
    exact: bool,
    metrics: dict[str, Any],
    trained_records: int,
    version_id: uuid.UUID | None = None,
    references_prefix: str | None = None,
) -> None:
    version_id = version_id or uuid.uuid4()
    manifest = save_monolithic(
        model=ctx.model,
        version_id=version_id,
        network=network,
        record_ids=record_ids,
        input_shape=tuple(ctx.base.manifest["input_shape"]),
        num_classes=int(ctx.base.manifest["num_classes"]),
        max_record_id=int(ctx.base.manifest["max_record_id"]),
    )
    if exact and np.isin(forget.record_ids, get_record_ids(key=manifest["record_ids_key"])).any():
        raise RuntimeError("the new version's manifest still lists an erased record")
    activate(
        ctx=ctx,
        forget_ids=forget.record_ids,
        new=NewVersion(
            id=version_id,
            method=method,
            exact=exact,
            manifest={
                **manifest,
                "exact": exact,
                **({REFERENCES_KEY: references_prefix} if references_prefix else {}),
            },
            trained_records=trained_records,
            metrics=metrics,
            checkpoint_rows=[(manifest["weights_key"], 0, 0)],
        ),
    )
