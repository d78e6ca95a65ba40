"""An erasure job of a `causal_lm` model: the version's adapters restored from the store, the
shards whose checkpoints saw an erased record trained again from the last clean checkpoint
(every shard's adapter from the base for the `retrain` strategy), the new checkpoints checked
to hold none of the records, and the result activated like any exact version.

One task does every affected shard: an adapter's stage is small beside loading the base, which
each shard task would repeat.
"""

from __future__ import annotations

import uuid

import numpy as np

from app.jobs.enums import JobStage
from app.registry.enums import Strategy
from app.registry.versions import NewVersion
from workers.pipeline.activation import activate
from workers.pipeline.job_context import load_context
from workers.pipeline.lm.adapters import (
    checkpoint_rows,
    restore,
    store_checkpoints,
    version_manifest,
)
from workers.pipeline.lm.records import load_text_records
from workers.pipeline.lm.text_checks import text_figures
from workers.pipeline.session import Heartbeat, db_session, enter_stage
from workers.pipeline.storage import checkpoint_store


def run_lm_unlearning(*, job_id: uuid.UUID) -> None:
    ctx = load_context(job_id=job_id)
    dataset_id, newest = ctx.model.dataset_id, ctx.max_record_id
    with db_session() as session:
        remaining = load_text_records(
            session, dataset_id=dataset_id, split="train", max_record_id=newest
        )
        forget = load_text_records(
            session,
            dataset_id=dataset_id,
            split="train",
            max_record_id=newest,
            of_requests=ctx.request_ids,
        )
        holdout = load_text_records(session, dataset_id=dataset_id, split="holdout")
    enter_stage(job_id, stage=JobStage.RETRAINING)
    heart = Heartbeat(job_id=job_id)
    forget_ids = np.asarray(sorted(r.record_id for r in forget), dtype=np.int64)
    sisa = restore(model=ctx.model, manifest=ctx.base.manifest, records=remaining + forget)
    report = sisa.unlearn(
        erased_record_ids=forget_ids.tolist(),
        progress=lambda done: heart.beat(fraction=0.85 * done),
    )
    store_checkpoints(model=ctx.model, sisa=sisa)
    enter_stage(job_id, stage=JobStage.VERIFYING)
    manifest = version_manifest(model=ctx.model, sisa=sisa, max_record_id=newest or 0)
    rows = checkpoint_rows(manifest)
    checkpoints = checkpoint_store(model_id=ctx.model.id)
    holding = [
        key for key, _, _ in rows if checkpoints.get_manifest(key=key).contains_any(forget_ids)
    ]
    if holding:
        raise RuntimeError(
            f"exact verification failed: {len(holding)} checkpoint(s) hold erased records"
        )
    metrics = {
        "retrained_shards": list(report.shards),
        "retrain_seconds": round(report.seconds, 3),
        "verification": {
            "kind": "exact",
            "checkpoints_checked": len(rows),
            "erased_records": int(forget_ids.size),
            "erased_records_in_new_version": 0,
            # What the new version still says about the records: figures, not the proof.
            "text": text_figures(
                model=sisa.ensemble(), tokenizer=sisa.tokenizer, records=forget, holdout=holdout
            ),
        },
    }
    activate(
        ctx=ctx,
        forget_ids=forget_ids,
        new=NewVersion(
            method="adapter_sisa_unlearn" if ctx.model.strategy == Strategy.SISA else "retrain",
            exact=True,
            manifest=manifest,
            trained_records=int(manifest["record_count"]),
            metrics=metrics,
            checkpoint_rows=rows,
        ),
    )
