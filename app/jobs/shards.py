"""The shard retrains of a fanned-out SISA unlearning job: one row per affected shard, kept
across reruns, so a shard finished before a crash is not retrained again."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs.enums import JobStage, ShardStatus
from app.jobs.models import Job, JobShard
from app.jobs.service import enter_stage, running_job


@dataclass(frozen=True)
class ShardStart:
    """Whether a shard task should train (`run`), and how many shards the job has."""

    run: bool
    all_done: bool
    shard_count: int


def _shards(session: Session, job_id: uuid.UUID) -> list[JobShard]:
    return list(session.scalars(select(JobShard).where(JobShard.job_id == job_id)))


def plan_shards(
    session: Session,
    *,
    job_id: uuid.UUID,
    earliest_slices: dict[int, int],
    metrics: dict[str, Any],
) -> list[int]:
    """Record one row per affected shard and move the job to `retraining`; returns the shards
    still to do."""
    existing = {s.shard for s in _shards(session, job_id)}
    for shard, first_slice in earliest_slices.items():
        if shard not in existing:
            session.add(JobShard(job_id=job_id, shard=shard, from_slice=first_slice))
    session.flush()
    enter_stage(session, job_id=job_id, stage=JobStage.RETRAINING, metrics=metrics)
    return sorted(s.shard for s in _shards(session, job_id) if s.status != ShardStatus.DONE)


def begin_shard(session: Session, *, job_id: uuid.UUID, shard: int) -> ShardStart:
    row = session.get(JobShard, (job_id, shard))
    if row is None or running_job(session, job_id=job_id) is None:
        return ShardStart(run=False, all_done=False, shard_count=0)
    rows = _shards(session, job_id)
    if row.status == ShardStatus.DONE:
        done = all(s.status == ShardStatus.DONE for s in rows)
        return ShardStart(run=False, all_done=done, shard_count=len(rows))
    row.attempt += 1
    return ShardStart(run=True, all_done=False, shard_count=len(rows))


def finish_shard(
    session: Session, *, job_id: uuid.UUID, shard: int, state: dict[str, Any], seconds: float
) -> bool:
    """Store a retrained shard's state; True when every shard of the job is done."""
    # Shards finishing at the same moment on two workers must not each miss the other (then
    # neither rings `finish` and the job waits for its lease to expire): lock the job first.
    session.execute(select(Job.id).where(Job.id == job_id).with_for_update())
    row = session.get(JobShard, (job_id, shard))
    assert row is not None
    row.state = state
    row.status = ShardStatus.DONE
    row.seconds = round(seconds, 3)
    session.flush()
    return all(s.status == ShardStatus.DONE for s in _shards(session, job_id))


def finished_shards(
    session: Session, *, job_id: uuid.UUID
) -> tuple[dict[int, dict[str, Any]], dict[str, float | None]] | None:
    """Every shard's state and seconds once all are done and the job still runs; else None."""
    if running_job(session, job_id=job_id) is None:
        return None
    rows = _shards(session, job_id)
    if not all(r.status == ShardStatus.DONE and r.state is not None for r in rows):
        return None
    return {r.shard: r.state for r in rows if r.state}, {str(r.shard): r.seconds for r in rows}
