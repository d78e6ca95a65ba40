"""Unlearning a monolithic model: the approximate method of its policy, gated by the
membership-inference test, with retraining from scratch as the fallback (or straight away for
the `retrain` strategy)."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from app.jobs import service as jobs_service
from app.jobs.enums import JobStage
from app.registry.enums import Strategy
from app.registry.versions import NewVersion
from workers.engine.approximate.policy import ApproximatePolicy
from workers.engine.approximate.workflow import unlearn_and_verify
from workers.engine.data import RecordArrays
from workers.engine.training import accuracy, train_model
from workers.pipeline.activation import activate
from workers.pipeline.job_context import JobContext, load_context
from workers.pipeline.models_io import load_monolithic, save_monolithic, spec_for
from workers.pipeline.session import Heartbeat, db_session, enter_stage
from workers.pipeline.storage import get_record_ids


def run(*, job_id: uuid.UUID) -> None:
    ctx = load_context(job_id=job_id)
    forget = ctx.forget()
    remaining = ctx.remaining()
    test = ctx.records(split="test")
    heart = Heartbeat(job_id=job_id)
    gate: dict[str, Any] | None = None
    if ctx.model.strategy == Strategy.APPROXIMATE and len(forget):
        policy = ApproximatePolicy.from_dict(ctx.model.approximate_policy or {})
        enter_stage(job_id, stage=JobStage.UNLEARNING)
        outcome = unlearn_and_verify(
            model=load_monolithic(model=ctx.model, manifest=ctx.base.manifest),
            forget=forget,
            retain=remaining,
            holdout=ctx.records(split="holdout"),
            test=test,
            policy=policy,
            progress=lambda done, total: heart.beat(fraction=0.8 * done / max(total, 1)),
        )
        figures = outcome.to_dict()
        enter_stage(job_id, stage=JobStage.VERIFYING)
        if not outcome.fallback_needed:
            _activate(
                ctx=ctx,
                forget=forget,
                remaining=remaining,
                network=outcome.model,
                method=f"approximate:{outcome.method}",
                exact=False,
                metrics={
                    "test_accuracy": round(outcome.utility_after.test_accuracy, 4),
                    "verification": {"kind": "membership_inference", **figures},
                },
            )
            return
        _fall_back(job_id, reason="; ".join(outcome.reasons), figures=figures)
        gate = {"kind": "membership_inference", **figures}
    else:
        enter_stage(job_id, stage=JobStage.RETRAINING)
    heart.beat(fraction=0.0, force=True)
    network = train_model(
        spec=spec_for(ctx.model),
        data=remaining,
        num_classes=int(ctx.base.manifest["num_classes"]),
        seed=ctx.model.seed,
        progress=lambda epoch, total: heart.beat(fraction=epoch / total),
    )
    enter_stage(job_id, stage=JobStage.VERIFYING)
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
        ctx=ctx,
        forget=forget,
        remaining=remaining,
        network=network,
        method="retrain",
        exact=True,
        metrics={
            "test_accuracy": round(accuracy(model=network, data=test), 4),
            "verification": verification,
        },
    )


def _fall_back(job_id: uuid.UUID, *, reason: str, figures: dict[str, Any]) -> None:
    with db_session() as session:
        jobs_service.fall_back(
            session,
            job_id=job_id,
            reason=f"approximate unlearning failed its check ({reason}); retraining",
            figures=figures,
        )
        session.commit()


def _activate(
    *,
    ctx: JobContext,
    forget: RecordArrays,
    remaining: RecordArrays,
    network: Any,
    method: str,
    exact: bool,
    metrics: dict[str, Any],
) -> None:
    version_id = uuid.uuid4()
    manifest = save_monolithic(
        model=ctx.model,
        version_id=version_id,
        network=network,
        record_ids=remaining.record_ids,
        input_shape=tuple(ctx.base.manifest["input_shape"]),
        num_classes=int(ctx.base.manifest["num_classes"]),
        max_record_id=int(ctx.base.manifest["max_record_id"]),
    )
    if np.isin(forget.record_ids, get_record_ids(key=manifest["record_ids_key"])).any():
        raise RuntimeError("the new version's manifest still lists an erased record")
    activate(
        ctx=ctx,
        forget_ids=forget.record_ids,
        new=NewVersion(
            id=version_id,
            method=method,
            exact=exact,
            manifest=manifest,
            trained_records=len(remaining),
            metrics=metrics,
            checkpoint_rows=[(manifest["weights_key"], 0, 0)],
        ),
    )
