"""Models and their versions."""

from __future__ import annotations

import uuid
from importlib.metadata import entry_points
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.auth import ApiClient
from app.core.broker import RUN_JOB, TRAINING_QUEUE, enqueue_after_commit
from app.core.config import get_settings
from app.core.errors import NotFound, ProblemError
from app.core.pagination import newest_first
from app.jobs.models import Job
from app.jobs.service import create_train_job
from app.lineage.models import TEXT, Dataset
from app.lineage.service import get_dataset
from app.registry.base_models import CAUSAL_LM, get_base_model
from app.registry.enums import Finalize, Strategy, VersionStatus
from app.registry.models import MlModel, ModelVersion
from app.registry.schemas import ModelCreate, ModelOut, VersionOut
from workers.engine.approximate.policy import ApproximatePolicy, PolicyError
from workers.engine.lm.policy import SUPPRESSION_METHODS, LmApproximatePolicy

BUILTIN_ARCHITECTURES = ("mlp", "cnn", CAUSAL_LM)
# The default SISA configuration, chosen from the benchmark grid (README, bench/RESULTS.md).
DEFAULT_SHARDS, DEFAULT_SLICES = 16, 8


def mitigates(model: MlModel) -> bool:
    """Approximate unlearning is only a mitigation for this model: an exact retrain closes its
    erasures (the approximate strategy's default, `finalize: exact`)."""
    return model.strategy == Strategy.APPROXIMATE and model.finalize == Finalize.EXACT


def known_architectures() -> list[str]:
    """Built-in names and those registered by packages under `lethe.architectures`."""
    plugged = [ep.name for ep in entry_points(group="lethe.architectures")]
    return sorted({*BUILTIN_ARCHITECTURES, *plugged})


def create_model(session: Session, *, client: ApiClient, body: ModelCreate) -> MlModel:
    dataset = get_dataset(session, client=client, dataset_id=body.dataset_id)
    architectures = known_architectures()
    if body.architecture not in architectures:
        raise ProblemError(
            422,
            f"Unknown architecture; known: {', '.join(architectures)}",
            errors=[{"pointer": "#/architecture", "detail": "unknown architecture"}],
        )
    if body.architecture == CAUSAL_LM:
        _check_language_model(session, body=body, dataset=dataset)
    elif dataset.record_kind == TEXT:
        raise ProblemError(
            422,
            f"This dataset holds text records; only the {CAUSAL_LM} architecture trains on them",
            slug="text-dataset",
            errors=[{"pointer": "#/dataset_id", "detail": "holds text records"}],
        )
    elif body.base_model_id is not None:
        raise ProblemError(
            422,
            f"base_model_id applies only to the {CAUSAL_LM} architecture",
            errors=[{"pointer": "#/base_model_id", "detail": f"only for {CAUSAL_LM}"}],
        )
    if body.input_shape is not None and dataset.feature_count is not None:
        size = 1
        for dim in body.input_shape:
            size *= dim
        if size != dataset.feature_count:
            raise ProblemError(
                422,
                f"input_shape holds {size} values; the dataset's records have "
                f"{dataset.feature_count} features",
                errors=[{"pointer": "#/input_shape", "detail": "does not match feature count"}],
            )
    policy = (
        _validated_policy(body.approximate_policy, language_model=body.architecture == CAUSAL_LM)
        if body.strategy == Strategy.APPROXIMATE
        else None
    )
    if (
        policy is not None
        and body.finalize == Finalize.APPROXIMATE
        and policy["method"] in SUPPRESSION_METHODS
    ):
        detail = "an edit suppresses answers and removes nothing: it cannot close a request"
        raise ProblemError(
            422,
            f"finalize: {detail}; keep finalize exact",
            slug="invalid-policy",
            errors=[{"pointer": "#/finalize", "detail": detail}],
        )
    model = MlModel(
        client_id=client.id,
        dataset_id=dataset.id,
        name=body.name,
        architecture=body.architecture,
        strategy=body.strategy,
        shards=body.shards or (DEFAULT_SHARDS if body.strategy == Strategy.SISA else 1),
        slices=body.slices or (DEFAULT_SLICES if body.strategy == Strategy.SISA else 1),
        shard_key=body.shard_key,
        seed=body.seed,
        epochs=body.epochs,
        aggregation=body.aggregation,
        input_shape=body.input_shape,
        approximate_policy=policy,
        finalize=body.finalize,
        base_model_id=body.base_model_id,
    )
    session.add(model)
    session.flush()
    return model


def _check_language_model(session: Session, *, body: ModelCreate, dataset: Dataset) -> None:
    """A causal language model fine-tunes a registered base on a text dataset."""

    def refuse(pointer: str, detail: str) -> ProblemError:
        return ProblemError(
            422, f"{pointer}: {detail}", errors=[{"pointer": f"#/{pointer}", "detail": detail}]
        )

    if dataset.record_kind != TEXT:
        raise refuse("dataset_id", f"{CAUSAL_LM} trains on a dataset of text records")
    if body.base_model_id is None:
        raise refuse("base_model_id", f"{CAUSAL_LM} needs a registered base model")
    try:
        get_base_model(session, base_model_id=body.base_model_id)
    except NotFound:
        raise refuse("base_model_id", "no base model with this id") from None
    if body.aggregation != "mean":
        raise refuse("aggregation", "shard adapters are combined by their mean probabilities")
    if body.input_shape is not None:
        raise refuse("input_shape", f"{CAUSAL_LM} takes text, not features")


def _validated_policy(raw: dict[str, Any] | None, *, language_model: bool) -> dict[str, Any]:
    """The policy in its complete form (defaults filled in), or a 422 naming each problem."""
    try:
        if language_model:
            return LmApproximatePolicy.from_dict(raw or {}).to_dict()
        return ApproximatePolicy.from_dict(raw or {}).to_dict()
    except PolicyError as exc:
        raise ProblemError(
            422,
            "approximate_policy is not valid",
            slug="invalid-policy",
            errors=[
                {
                    "pointer": "#/approximate_policy/" + problem.split(":", 1)[0].split(".")[0],
                    "detail": problem,
                }
                for problem in exc.problems
            ],
        ) from None


def list_models(
    session: Session,
    *,
    client: ApiClient,
    dataset_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[MlModel], str | None]:
    """The caller's models (every client's for an admin), newest first."""
    query = select(MlModel)
    if not client.is_admin:
        query = query.where(MlModel.client_id == client.id)
    if dataset_id is not None:
        query = query.where(MlModel.dataset_id == dataset_id)
    return newest_first(
        session, query, at=MlModel.created_at, id_=MlModel.id, cursor=cursor, limit=limit
    )


def get_model(session: Session, *, client: ApiClient, model_id: uuid.UUID) -> MlModel:
    model = session.get(MlModel, model_id)
    if model is None or (not client.is_admin and model.client_id != client.id):
        raise NotFound("Model")
    return model


def active_version(session: Session, *, model: MlModel) -> ModelVersion | None:
    if model.active_version_id is None:
        return None
    return session.get(ModelVersion, model.active_version_id)


def versions(session: Session, *, model_id: uuid.UUID) -> list[ModelVersion]:
    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.model_id == model_id)
            .order_by(ModelVersion.number.desc())
        )
    )


def next_version_number(session: Session, *, model_id: uuid.UUID) -> int:
    numbers = session.scalars(
        select(ModelVersion.number)
        .where(ModelVersion.model_id == model_id)
        .order_by(ModelVersion.number.desc())
        .limit(1)
    ).all()
    return (numbers[0] if numbers else 0) + 1


def models_on_dataset(session: Session, *, dataset_id: uuid.UUID) -> list[MlModel]:
    return list(
        session.scalars(
            select(MlModel).where(MlModel.dataset_id == dataset_id).order_by(MlModel.created_at)
        )
    )


def to_out(session: Session, model: MlModel) -> ModelOut:
    out = ModelOut.model_validate(model)
    version = active_version(session, model=model)
    out.active_version = VersionOut.model_validate(version) if version else None
    out.held_versions = [
        VersionOut.model_validate(v)
        for v in session.scalars(
            select(ModelVersion)
            .where(ModelVersion.model_id == model.id, ModelVersion.status == VersionStatus.HELD)
            .order_by(ModelVersion.number.desc())
        )
    ]
    return out


def start_training(session: Session, *, client: ApiClient, model_id: uuid.UUID) -> Job:
    """A training job for the model, run by a worker once the caller commits."""
    model = get_model(session, client=client, model_id=model_id)
    job = create_train_job(
        session,
        model_id=model.id,
        client_id=model.client_id,
        max_attempts=get_settings().job_max_attempts,
    )
    enqueue_after_commit(session, RUN_JOB, args=[str(job.id)], queue=TRAINING_QUEUE)
    return job


def serving_version(
    session: Session, *, client: ApiClient, model_id: uuid.UUID, text: bool = False
) -> ModelVersion:
    """The version that answers predictions (`text`: generations); a 409 until the model has
    been trained, a 422 for the wrong kind of model."""
    model = get_model(session, client=client, model_id=model_id)
    if (model.architecture == CAUSAL_LM) != text:
        raise ProblemError(
            422,
            f"A {CAUSAL_LM} model takes prompts (`/generate`), other models take features "
            "(`/predict`)",
            slug="text-model" if not text else "not-a-text-model",
        )
    version = active_version(session, model=model)
    if version is None:
        raise ProblemError(
            409, "The model has no active version yet; train it first", slug="not-trained"
        )
    return version
