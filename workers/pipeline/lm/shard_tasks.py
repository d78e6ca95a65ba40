"""A `causal_lm` SISA erasure fanned out like a tabular one: the affected shards planned from
the stored checkpoint manifests, each shard's adapter retrained in its own task (more workers
finish sooner; each loads the base once and keeps it), then the version assembled, checked to
hold no erased record, and activated."""

from __future__ import annotations

import time
import uuid

import structlog

from app.jobs import service as jobs_service
from app.jobs import shards as job_shards
from app.jobs.enums import JobStage
from app.registry.enums import Strategy
from app.registry.versions import NewVersion
from workers.pipeline.activation import activate
from workers.pipeline.job_context import JobContext, load_context
from workers.pipeline.lm.adapters import checkpoint_rows, first_stages, restore, store_checkpoints
from workers.pipeline.lm.unlearning import JobRecords, job_records, verify_exact
from workers.pipeline.session import Heartbeat, db_session, enter_stage

log = structlog.get_logger(__name__)


def plan_lm_shards(ctx: JobContext, *, records: JobRecords) -> list[int]:
    """Record one row per affected shard (kept across reruns); return those still to do."""
    first = first_stages(model=ctx.model, manifest=ctx.base.manifest, erased=records.forget_ids)
    with db_session() as session:
        pending = job_shards.plan_shards(
            session,
            job_id=ctx.job_id,
            earliest_slices=first,
            metrics={
                "method": "adapter_sisa",
                "erased_records": int(records.forget_ids.size),
                "affected_shards": {str(k): v for k, v in sorted(first.items())},
            },
        )
        session.commit()
        return pending


def retrain_lm_shard(*, job_id: uuid.UUID, shard: int) -> bool:
    """Retrain one shard's adapter from its last clean checkpoint; True when every shard is done."""
    with db_session() as session:
        start = job_shards.begin_shard(session, job_id=job_id, shard=shard)
        session.commit()
    if not start.run:
        return start.all_done
    log.info("shard_retrain_started", job_id=str(job_id), shard=shard)
    ctx = load_context(job_id=job_id)
    records = job_records(ctx, with_remaining=True)
    # Over the remaining records only: where to start is read from the checkpoints.
    sisa = restore(
        model=ctx.model,
        manifest=ctx.base.manifest,
        records=records.remaining,
        only_shards={shard},
    )
    first_stage = sisa.first_stages(erased_record_ids=records.forget_ids.tolist()).get(
        shard, sisa.config.slices
    )
    heart = Heartbeat(job_id=job_id, start=0.05, span=0.85 / max(start.shard_count, 1))
    started = time.perf_counter()
    sisa.retrain_shard(
        shard=shard, first_stage=first_stage, progress=lambda done: heart.beat(fraction=done)
    )
    store_checkpoints(model=ctx.model, sisa=sisa)
    stages = range(sisa.config.slices)
    state = {
        "shard": shard,
        "slice_keys": [sisa.checkpoints[(shard, stage)].key for stage in stages],
        "records": len(sisa.checkpoints[(shard, sisa.config.slices - 1)].record_ids),
    }
    with db_session() as session:
        all_done = job_shards.finish_shard(
            session,
            job_id=job_id,
            shard=shard,
            state=state,
            seconds=time.perf_counter() - started,
        )
        session.commit()
        return all_done


def finish_lm(*, job_id: uuid.UUID) -> None:
    """Assemble the new version from the retrained shards, check it exactly, activate it."""
    with db_session() as session:
        finished = job_shards.finished_shards(session, job_id=job_id)
        job = jobs_service.get(session, job_id=job_id)
        attempt = dict((job.metrics if job else None) or {}).get("approximate_attempt")
    if finished is None:
        return
    shard_states, shard_seconds = finished
    enter_stage(job_id, stage=JobStage.VERIFYING)
    ctx = load_context(job_id=job_id)
    records = job_records(ctx, with_remaining=False)
    shards = {s["shard"]: s for s in ctx.base.manifest["shards"]}
    shards.update({int(k): v for k, v in shard_states.items()})
    manifest = {
        **ctx.base.manifest,
        "shards": [shards[s] for s in sorted(shards)],
        "record_count": sum(s["records"] for s in shards.values()),
    }
    rows = checkpoint_rows(manifest)
    verification = verify_exact(
        ctx,
        rows=rows,
        records=records,
        sisa=restore(model=ctx.model, manifest=manifest, records=[]),
        attempt_figures=attempt,
    )
    activate(
        ctx=ctx,
        forget_ids=records.forget_ids,
        new=NewVersion(
            method="adapter_sisa_unlearn" if ctx.model.strategy == Strategy.SISA else "retrain",
            exact=True,
            manifest=manifest,
            trained_records=int(manifest["record_count"]),
            metrics={
                "retrained_shards": sorted(int(s) for s in shard_states),
                "shard_seconds": shard_seconds,
                "verification": verification,
            },
            checkpoint_rows=rows,
        ),
    )
