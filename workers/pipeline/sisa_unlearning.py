"""SISA unlearning, fanned out: plan the affected shards, retrain each in its own task (more
workers finish sooner), then assemble, verify exactly from the manifests, and activate."""

from __future__ import annotations

import dataclasses
import time
import uuid

import structlog

from app.jobs import shards as job_shards
from app.jobs.enums import JobStage
from app.registry.versions import NewVersion
from workers.engine.data import RecordArrays
from workers.engine.partition import assign_shards
from workers.engine.sisa import train_sisa
from workers.engine.sisa_model import ShardState, SisaModel
from workers.engine.unlearning import erasure_impact, verify_exact
from workers.pipeline.activation import activate
from workers.pipeline.job_context import JobContext, load_context
from workers.pipeline.models_io import sisa_checkpoint_rows, spec_for
from workers.pipeline.session import Heartbeat, db_session, enter_stage
from workers.pipeline.storage import checkpoint_store

log = structlog.get_logger(__name__)


def plan_shards(*, job_id: uuid.UUID) -> list[int]:
    """Record one JobShard per affected shard (kept across reruns); return those still to do."""
    ctx = load_context(job_id=job_id)
    impact = erasure_impact(
        model=SisaModel.from_dict(ctx.base.manifest),
        checkpoints=checkpoint_store(model_id=ctx.model.id),
        erased_record_ids=ctx.forget_ids(),
    )
    with db_session() as session:
        pending = job_shards.plan_shards(
            session,
            job_id=job_id,
            earliest_slices=impact.earliest_slices,
            metrics={
                "method": "sisa",
                "erased_records": int(impact.found_record_ids.size),
                "affected_shards": {str(k): v for k, v in sorted(impact.earliest_slices.items())},
            },
        )
        session.commit()
        return pending


def _shard_records(ctx: JobContext, *, sisa: SisaModel, shard: int) -> RecordArrays:
    """The shard's remaining records. A record's shard depends only on its own id (or subject),
    so the shard's records alone give the same partition, keys and model as all records."""
    keys = ctx.remaining(with_features=False)
    config = sisa.config
    shard_of = assign_shards(
        records=keys, shards=config.shards, seed=config.seed, shard_key=config.shard_key
    )
    return ctx.remaining(only_ids=keys.record_ids[shard_of == shard])


def retrain_shard(*, job_id: uuid.UUID, shard: int) -> bool:
    """Retrain one shard from its last clean checkpoint; True when every shard is done."""
    with db_session() as session:
        start = job_shards.begin_shard(session, job_id=job_id, shard=shard)
        session.commit()
    if not start.run:
        return start.all_done
    log.info("shard_retrain_started", job_id=str(job_id), shard=shard)
    shard_count = start.shard_count
    ctx = load_context(job_id=job_id)
    sisa = SisaModel.from_dict(ctx.base.manifest)
    heart = Heartbeat(job_id=job_id, start=0.05, span=0.85 / max(shard_count, 1))
    started = time.perf_counter()
    report = train_sisa(
        spec=spec_for(ctx.model),
        data=_shard_records(ctx, sisa=sisa, shard=shard),
        num_classes=sisa.num_classes,
        config=sisa.config,
        checkpoints=checkpoint_store(model_id=ctx.model.id),
        only_shards=[shard],
        base=sisa,
        progress=lambda event: heart.beat(fraction=event.fraction),
    )
    state = next(s for s in report.model.shards if s.shard == shard)
    with db_session() as session:
        all_done = job_shards.finish_shard(
            session,
            job_id=job_id,
            shard=shard,
            state={
                "shard": state.shard,
                "slice_keys": list(state.slice_keys),
                "records": state.records,
            },
            seconds=time.perf_counter() - started,
        )
        session.commit()
        return all_done


def finish(*, job_id: uuid.UUID) -> None:
    """Assemble the new version from the retrained shards, verify it exactly, activate it."""
    with db_session() as session:
        finished = job_shards.finished_shards(session, job_id=job_id)
    if finished is None:
        return
    shard_states, shard_seconds = finished
    enter_stage(job_id, stage=JobStage.VERIFYING)
    ctx = load_context(job_id=job_id)
    forget_ids = ctx.forget_ids()
    base = SisaModel.from_dict(ctx.base.manifest)
    states = {s.shard: s for s in base.shards}
    for shard, state in shard_states.items():
        states[shard] = ShardState(
            shard=state["shard"], slice_keys=tuple(state["slice_keys"]), records=state["records"]
        )
    new = dataclasses.replace(base, shards=tuple(states[s] for s in sorted(states)))
    checkpoints = checkpoint_store(model_id=ctx.model.id)
    failures = verify_exact(model=new, checkpoints=checkpoints, erased_record_ids=forget_ids)
    if failures:
        raise RuntimeError(
            f"exact verification failed: {len(failures)} checkpoint(s) hold erased records"
        )
    # Test accuracy is measured after the request completes (workers.pipeline.evaluation):
    # loading every shard is not part of forgetting.
    metrics = {
        "retrained_shards": sorted(int(s) for s in shard_states),
        "shard_seconds": shard_seconds,
        "verification": {
            "kind": "exact",
            "checkpoints_checked": len(new.checkpoint_keys()),
            "erased_records": int(forget_ids.size),
            "erased_records_in_new_version": 0,
        },
    }
    activate(
        ctx=ctx,
        forget_ids=forget_ids,
        new=NewVersion(
            method="sisa_unlearn",
            exact=True,
            manifest={**new.to_dict(), "max_record_id": ctx.max_record_id},
            trained_records=sum(s.records for s in new.shards),
            metrics=metrics,
            checkpoint_rows=sisa_checkpoint_rows(new),
        ),
    )
