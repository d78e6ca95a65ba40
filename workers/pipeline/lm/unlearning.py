"""Erasure jobs of a `causal_lm` model.

- `run_lm_unlearning` (an `unlearn` job) is exact. When the base version's adapters are
  checkpointed it plans the shards whose checkpoints saw an erased record, and each is retrained
  from its last clean checkpoint in a task of its own (`shard_tasks`); when the base version is
  an approximate one, the adapter is trained again from the base here. Only for
  `strategy: approximate` with `finalize: approximate` does it try the approximate method
  first, retraining when the text check fails.
- `run_lm_mitigation` (a `mitigate` job) applies the approximate method at once; its result is
  activated only when the text check passes, and it closes no request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.jobs.enums import JobStage
from app.registry.enums import Finalize, Strategy
from app.registry.versions import NewVersion
from workers.engine.lm.adapter_sisa import AdapterSisa, TextRecord
from workers.engine.lm.policy import LmApproximatePolicy
from workers.pipeline.activation import activate
from workers.pipeline.job_context import JobContext, load_context
from workers.pipeline.job_outcomes import fall_back, finish_without_version
from workers.pipeline.lm import approximate
from workers.pipeline.lm.adapters import (
    MANIFEST_KIND,
    checkpoint_rows,
    new_adapter_sisa,
    store_checkpoints,
    version_manifest,
)
from workers.pipeline.lm.records import load_text_records
from workers.pipeline.lm.text_checks import text_figures
from workers.pipeline.session import Heartbeat, db_session, enter_stage
from workers.pipeline.storage import checkpoint_store


@dataclass(frozen=True)
class JobRecords:
    forget: list[TextRecord]
    holdout: list[TextRecord]
    remaining: list[TextRecord]  # empty unless asked for: it is the whole training split

    @property
    def forget_ids(self) -> np.ndarray:
        return np.asarray(sorted(r.record_id for r in self.forget), dtype=np.int64)


def job_records(ctx: JobContext, *, with_remaining: bool) -> JobRecords:
    """The job's forget set and the holdout split, and, `with_remaining`, the base version's
    training records that no request has claimed."""
    dataset_id, newest = ctx.model.dataset_id, ctx.max_record_id
    with db_session() as session:
        return JobRecords(
            forget=load_text_records(
                session,
                dataset_id=dataset_id,
                split="train",
                max_record_id=newest,
                of_requests=ctx.request_ids,
            ),
            holdout=load_text_records(session, dataset_id=dataset_id, split="holdout"),
            remaining=load_text_records(
                session, dataset_id=dataset_id, split="train", max_record_id=newest
            )
            if with_remaining
            else [],
        )


def run_lm_mitigation(*, job_id: uuid.UUID) -> None:
    ctx = load_context(job_id=job_id)
    records = job_records(ctx, with_remaining=True)
    adapter = approximate.active_adapter(ctx) if records.forget else None
    if adapter is None or not adapter.saw_any(records.forget_ids):
        finish_without_version(
            job_id, mitigation="not_needed", reason="the active version never saw the records"
        )
        return
    result = approximate.attempt(
        ctx,
        adapter=adapter,
        forget=records.forget,
        remaining=records.remaining,
        holdout=records.holdout,
    )
    if not result.check.passed:
        reasons = "; ".join(result.check.reasons)
        finish_without_version(
            job_id,
            mitigation="failed",
            reason=f"approximate unlearning failed its check ({reasons})",
            figures={"verification": result.verification()},
        )
        return
    approximate.activate_attempt(ctx, result=result, forget_ids=records.forget_ids, mitigation=True)


def run_lm_unlearning(*, job_id: uuid.UUID) -> list[int] | None:
    """Carry out the job, or plan it: the shards to retrain, one task each (then `finish_lm`),
    when the base version's adapters are checkpointed; None when it is done."""
    from workers.pipeline.lm.shard_tasks import plan_lm_shards

    ctx = load_context(job_id=job_id)
    attempt_figures: dict[str, Any] | None = None
    # An edit only suppresses: the registry refuses it as the final step, and so does this.
    approximate_closes = (
        ctx.model.strategy == Strategy.APPROXIMATE
        and ctx.model.finalize == Finalize.APPROXIMATE
        and not LmApproximatePolicy.from_dict(ctx.model.approximate_policy or {}).suppresses_only
    )
    checkpointed = ctx.base.manifest.get("kind") == MANIFEST_KIND
    # The retained records feed the approximate method and a retrain here, not a shard plan.
    records = job_records(ctx, with_remaining=approximate_closes or not checkpointed)
    if approximate_closes and records.forget:
        result = approximate.attempt(
            ctx,
            adapter=approximate.active_adapter(ctx),
            forget=records.forget,
            remaining=records.remaining,
            holdout=records.holdout,
        )
        if result.check.passed:
            approximate.activate_attempt(
                ctx, result=result, forget_ids=records.forget_ids, mitigation=False
            )
            return None
        attempt_figures = result.verification()
        fall_back(job_id, reason="; ".join(result.check.reasons), figures=attempt_figures)
    if checkpointed:
        return plan_lm_shards(ctx, records=records)
    _retrain_from_base(ctx, records=records, attempt_figures=attempt_figures)
    return None


def _retrain_from_base(
    ctx: JobContext, *, records: JobRecords, attempt_figures: dict[str, Any] | None
) -> None:
    """The base version is an approximate one (its adapter is only weights): train the adapter
    again from the base on the remaining records."""
    enter_stage(ctx.job_id, stage=JobStage.RETRAINING)
    heart = Heartbeat(job_id=ctx.job_id)
    forget_ids = records.forget_ids
    sisa = new_adapter_sisa(ctx.model)
    seconds = sisa.train(
        records=records.remaining, progress=lambda done: heart.beat(fraction=0.85 * done)
    )
    store_checkpoints(model=ctx.model, sisa=sisa)
    enter_stage(ctx.job_id, stage=JobStage.VERIFYING)
    manifest = version_manifest(model=ctx.model, sisa=sisa, max_record_id=ctx.max_record_id or 0)
    rows = checkpoint_rows(manifest)
    verification = verify_exact(
        ctx, rows=rows, records=records, sisa=sisa, attempt_figures=attempt_figures
    )
    activate(
        ctx=ctx,
        forget_ids=forget_ids,
        new=NewVersion(
            method="retrain",
            exact=True,
            manifest=manifest,
            trained_records=int(manifest["record_count"]),
            metrics={
                "retrained_shards": list(range(sisa.config.shards)),
                "retrain_seconds": round(seconds, 3),
                "verification": verification,
            },
            checkpoint_rows=rows,
        ),
    )


def verify_exact(
    ctx: JobContext,
    *,
    rows: list[tuple[str, int, int]],
    records: JobRecords,
    sisa: AdapterSisa,
    attempt_figures: dict[str, Any] | None,
) -> dict[str, Any]:
    """Check that no checkpoint of the new version (`rows`) holds an erased record, and return
    the verification figures: the check's, what the new version (`sisa`) still says about the
    records, and the approximate attempt refused before, if any."""
    checkpoints = checkpoint_store(model_id=ctx.model.id)
    forget_ids = records.forget_ids
    holding = [
        key for key, _, _ in rows if checkpoints.get_manifest(key=key).contains_any(forget_ids)
    ]
    if holding:
        raise RuntimeError(
            f"exact verification failed: {len(holding)} checkpoint(s) hold erased records"
        )
    verification: dict[str, Any] = {
        "kind": "exact",
        "checkpoints_checked": len(rows),
        "erased_records": int(forget_ids.size),
        "erased_records_in_new_version": 0,
        # What the new version still says about the records: figures, not the proof.
        "text": text_figures(
            model=sisa.ensemble(),
            tokenizer=sisa.tokenizer,
            records=records.forget,
            holdout=records.holdout,
        ),
    }
    if attempt_figures is not None:
        verification["approximate_attempt"] = attempt_figures
    return verification
