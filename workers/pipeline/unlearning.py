"""Unlearning jobs: SISA fanned out one task per affected shard, approximate with its
membership-inference gate and the retraining fallback, or plain retraining."""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

import numpy as np
from sqlalchemy import select

from app.erasure import completion
from app.jobs import service as jobs
from app.jobs.models import Job, JobShard
from app.registry.models import MlModel, ModelVersion
from workers.engine.aggregation import ensemble_accuracy
from workers.engine.approximate.policy import ApproximatePolicy
from workers.engine.approximate.workflow import unlearn_and_verify
from workers.engine.sisa import load_shard_models, train_sisa
from workers.engine.sisa_model import ShardState, SisaModel
from workers.engine.training import accuracy, train_model
from workers.engine.unlearning import erasure_impact, verify_exact
from workers.pipeline.context import Heartbeat, db_session
from workers.pipeline.models_io import (
    load_monolithic,
    save_monolithic,
    sisa_checkpoint_rows,
    spec_for,
)
from workers.pipeline.records import ModelData, load_model_data, load_records
from workers.pipeline.storage import checkpoint_store, get_record_ids
from workers.pipeline.versions import execute_purge, plan_purge, record_version


@dataclasses.dataclass(frozen=True)
class UnlearningInputs:
    job_id: uuid.UUID
    model: MlModel
    base: ModelVersion
    request_ids: list[uuid.UUID]
    data: ModelData  # train: the base version's records that no request has claimed
    forget_ids: np.ndarray  # this job's requests' records that the base version trained on


def load_inputs(
    *, job_id: uuid.UUID, with_forget_features: bool = False
) -> tuple[UnlearningInputs, Any]:
    with db_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        model = session.get(MlModel, job.model_id)
        assert model is not None
        base = session.get(ModelVersion, job.base_version_id) if job.base_version_id else None
        if base is None:
            raise ValueError("the job has no base version to unlearn from")
        request_ids = jobs.request_ids(session, job_id=job_id)
        max_id = base.manifest.get("max_record_id")
        data = load_model_data(session, model=model, max_record_id=max_id)
        forget = load_records(
            session,
            dataset_id=model.dataset_id,
            split="train",
            input_shape=tuple(base.manifest["input_shape"]),
            max_record_id=max_id,
            of_requests=request_ids,
        )
        session.expunge_all()
    inputs = UnlearningInputs(
        job_id=job_id,
        model=model,
        base=base,
        request_ids=request_ids,
        data=data,
        forget_ids=forget.record_ids,
    )
    return inputs, forget if with_forget_features else None


# --- SISA, fanned out ---------------------------------------------------------------------------


def plan_sisa_shards(*, job_id: uuid.UUID) -> list[int]:
    """Record one JobShard per affected shard (kept across reruns); return those still to do."""
    inputs, _ = load_inputs(job_id=job_id)
    sisa = SisaModel.from_dict(inputs.base.manifest)
    impact = erasure_impact(
        model=sisa,
        checkpoints=checkpoint_store(model_id=inputs.model.id),
        erased_record_ids=inputs.forget_ids,
    )
    with db_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        existing = {
            s.shard: s for s in session.scalars(select(JobShard).where(JobShard.job_id == job_id))
        }
        for shard, first_slice in impact.earliest_slices.items():
            if shard not in existing:
                session.add(JobShard(job_id=job_id, shard=shard, from_slice=first_slice))
        job.stage = "retraining"
        job.metrics = {
            **(job.metrics or {}),
            "method": "sisa",
            "erased_records": int(impact.found_record_ids.size),
            "affected_shards": {str(k): v for k, v in sorted(impact.earliest_slices.items())},
        }
        session.commit()
        return sorted(
            s.shard
            for s in session.scalars(select(JobShard).where(JobShard.job_id == job_id))
            if s.status != "done"
        )


def retrain_shard(*, job_id: uuid.UUID, shard: int) -> bool:
    """Retrain one shard from its last clean checkpoint; True when every shard is done."""
    with db_session() as session:
        row = session.get(JobShard, (job_id, shard))
        job = session.get(Job, job_id)
        if row is None or job is None or job.status != jobs.RUNNING:
            return False
        if row.status == "done":
            return _all_shards_done(job_id)
        row.attempt += 1
        shards_total = len(session.scalars(select(JobShard).where(JobShard.job_id == job_id)).all())
        session.commit()
    inputs, _ = load_inputs(job_id=job_id)
    sisa = SisaModel.from_dict(inputs.base.manifest)
    heart = Heartbeat(job_id=job_id, start=0.05, span=0.85 / max(shards_total, 1))
    started = time.perf_counter()
    report = train_sisa(
        spec=spec_for(inputs.model),
        data=inputs.data.train,
        num_classes=sisa.num_classes,
        config=sisa.config,
        checkpoints=checkpoint_store(model_id=inputs.model.id),
        only_shards=[shard],
        base=sisa,
        progress=lambda e: heart.beat(fraction=e.fraction),
    )
    state = next(s for s in report.model.shards if s.shard == shard)
    with db_session() as session:
        row = session.get(JobShard, (job_id, shard))
        assert row is not None
        row.state = {
            "shard": state.shard,
            "slice_keys": list(state.slice_keys),
            "records": state.records,
        }
        row.status = "done"
        row.seconds = round(time.perf_counter() - started, 3)
        session.commit()
    heart.beat(force=True)
    return _all_shards_done(job_id)


def _all_shards_done(job_id: uuid.UUID) -> bool:
    with db_session() as session:
        rows = session.scalars(select(JobShard).where(JobShard.job_id == job_id)).all()
        return all(r.status == "done" for r in rows)


def finish_sisa(*, job_id: uuid.UUID) -> list[uuid.UUID]:
    """Assemble the new version from the retrained shards, verify it exactly, activate it,
    purge, and complete the requests whose jobs are all done. Returns the completed ids."""
    with db_session() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != jobs.RUNNING:
            return []
        rows = session.scalars(select(JobShard).where(JobShard.job_id == job_id)).all()
        if not all(r.status == "done" for r in rows):
            return []
        shard_states = {r.shard: r.state for r in rows}
        shard_seconds = {str(r.shard): r.seconds for r in rows}
        job.stage = "verifying"
        completion.mark_verifying(session, request_ids=jobs.request_ids(session, job_id=job_id))
        session.commit()
    inputs, _ = load_inputs(job_id=job_id)
    base = SisaModel.from_dict(inputs.base.manifest)
    states = {s.shard: s for s in base.shards}
    for shard, state in shard_states.items():
        states[shard] = ShardState(
            shard=state["shard"], slice_keys=tuple(state["slice_keys"]), records=state["records"]
        )
    new = dataclasses.replace(base, shards=tuple(states[s] for s in sorted(states)))
    checkpoints = checkpoint_store(model_id=inputs.model.id)
    failures = verify_exact(model=new, checkpoints=checkpoints, erased_record_ids=inputs.forget_ids)
    if failures:
        raise RuntimeError(
            f"exact verification failed: {len(failures)} checkpoint(s) hold erased records"
        )
    shard_models = load_shard_models(
        model=new, spec=spec_for(inputs.model), checkpoints=checkpoints
    )
    test_accuracy = ensemble_accuracy(
        models=list(shard_models.values()), data=inputs.data.test, mode=base.config.aggregation
    )
    verification = {
        "kind": "exact",
        "checkpoints_checked": len(new.checkpoint_keys()),
        "erased_records": int(inputs.forget_ids.size),
        "erased_records_in_new_version": 0,
    }
    metrics = {
        "test_accuracy": round(float(test_accuracy), 4) if len(inputs.data.test) else None,
        "retrained_shards": sorted(int(s) for s in shard_states),
        "shard_seconds": shard_seconds,
        "verification": verification,
    }
    manifest = {**new.to_dict(), "max_record_id": inputs.base.manifest.get("max_record_id")}
    return _activate(
        inputs=inputs,
        method="sisa_unlearn",
        exact=True,
        manifest=manifest,
        trained_records=sum(s.records for s in new.shards),
        metrics=metrics,
        checkpoint_rows=sisa_checkpoint_rows(new),
    )


# --- Monolithic: approximate (gated) or retraining ------------------------------------------------


def run_monolithic(*, job_id: uuid.UUID) -> list[uuid.UUID]:
    inputs, forget = load_inputs(job_id=job_id, with_forget_features=True)
    heart = Heartbeat(job_id=job_id)
    remaining = inputs.data.train
    if inputs.model.strategy == "approximate" and forget is not None and len(forget):
        policy = ApproximatePolicy.from_dict(inputs.model.approximate_policy or {})
        heart.beat(fraction=0.0, stage="unlearning", force=True)
        original = load_monolithic(model=inputs.model, manifest=inputs.base.manifest)
        outcome = unlearn_and_verify(
            model=original,
            forget=forget,
            retain=remaining,
            holdout=inputs.data.holdout,
            test=inputs.data.test,
            policy=policy,
            progress=lambda done, total: heart.beat(fraction=0.8 * done / max(total, 1)),
        )
        figures = outcome.to_dict()
        _enter_verifying(job_id)
        if not outcome.fallback_needed:
            return _activate_monolithic(
                inputs=inputs,
                network=outcome.model,
                method=f"approximate:{outcome.method}",
                exact=False,
                metrics={
                    "test_accuracy": round(outcome.utility_after.test_accuracy, 4),
                    "verification": {"kind": "membership_inference", **figures},
                },
            )
        _fall_back(job_id, reason="; ".join(outcome.reasons), figures=figures)
        gate = {"kind": "membership_inference", **figures}
    else:
        gate = None
    heart.beat(fraction=0.0, stage="retraining", force=True)
    network = train_model(
        spec=spec_for(inputs.model),
        data=remaining,
        num_classes=int(inputs.base.manifest["num_classes"]),
        seed=inputs.model.seed,
        progress=lambda epoch, total: heart.beat(fraction=epoch / total),
    )
    _enter_verifying(job_id)
    verification: dict[str, Any] = {
        "kind": "exact",
        "erased_records": int(inputs.forget_ids.size),
        "erased_records_in_new_version": int(
            np.isin(inputs.forget_ids, remaining.record_ids).sum()
        ),
    }
    if gate is not None:
        verification["approximate_attempt"] = gate
    return _activate_monolithic(
        inputs=inputs,
        network=network,
        method="retrain",
        exact=True,
        metrics={
            "test_accuracy": round(accuracy(model=network, data=inputs.data.test), 4),
            "verification": verification,
        },
    )


def _enter_verifying(job_id: uuid.UUID) -> None:
    with db_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.stage = "verifying"
        completion.mark_verifying(session, request_ids=jobs.request_ids(session, job_id=job_id))
        session.commit()


def _fall_back(job_id: uuid.UUID, *, reason: str, figures: dict[str, Any]) -> None:
    with db_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.stage = "retraining"
        job.metrics = {**(job.metrics or {}), "approximate_attempt": figures}
        completion.fall_back(
            session,
            request_ids=jobs.request_ids(session, job_id=job_id),
            reason=f"approximate unlearning failed its check ({reason}); retraining",
        )
        session.commit()


def _activate_monolithic(
    *, inputs: UnlearningInputs, network: Any, method: str, exact: bool, metrics: dict[str, Any]
) -> list[uuid.UUID]:
    version_id = uuid.uuid4()
    manifest = save_monolithic(
        model=inputs.model,
        version_id=version_id,
        network=network,
        record_ids=inputs.data.train.record_ids,
        input_shape=tuple(inputs.base.manifest["input_shape"]),
        num_classes=int(inputs.base.manifest["num_classes"]),
        max_record_id=int(inputs.base.manifest["max_record_id"]),
    )
    if np.isin(inputs.forget_ids, get_record_ids(key=manifest["record_ids_key"])).any():
        raise RuntimeError("the new version's manifest still lists an erased record")
    return _activate(
        inputs=inputs,
        method=method,
        exact=exact,
        manifest=manifest,
        trained_records=len(inputs.data.train),
        metrics=metrics,
        checkpoint_rows=[(manifest["weights_key"], 0, 0)],
        version_id=version_id,
    )


def _activate(
    *,
    inputs: UnlearningInputs,
    method: str,
    exact: bool,
    manifest: dict[str, Any],
    trained_records: int,
    metrics: dict[str, Any],
    checkpoint_rows: list[tuple[str, int, int]],
    version_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """One transaction: new version active, older ones holding erased records purged, job
    done, requests completed where all their jobs are; then the artifacts are deleted."""
    with db_session() as session:
        job = session.get(Job, inputs.job_id)
        model = session.get(MlModel, inputs.model.id)
        assert job is not None and model is not None
        version = record_version(
            session,
            model=model,
            version_id=version_id or uuid.uuid4(),
            parent_id=inputs.base.id,
            method=method,
            exact=exact,
            manifest=manifest,
            trained_records=trained_records,
            metrics=metrics,
            job_id=job.id,
            checkpoint_keys=checkpoint_rows,
        )
        purge = plan_purge(
            session, model=model, erased_record_ids=inputs.forget_ids, keep=version.id
        )
        jobs.succeed(
            session,
            job=job,
            result_version_id=version.id,
            metrics={**metrics, "method": method, "purge": purge.counts()},
        )
        completed = completion.after_jobs(session, request_ids=inputs.request_ids)
        session.commit()
    execute_purge(model_id=inputs.model.id, plan=purge)
    return completed
