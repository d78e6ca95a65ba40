"""A job's kind, status and stage. A leaf module: anything may import it."""

from __future__ import annotations

from enum import StrEnum


class JobKind(StrEnum):
    TRAIN = "train"
    UNLEARN = "unlearn"


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# Unfinished jobs: a model has at most one of these running, and training refuses a busy model.
ACTIVE_JOB_STATUSES: frozenset[JobStatus] = frozenset({JobStatus.PENDING, JobStatus.RUNNING})


class JobStage(StrEnum):
    """What a job is doing now. `verifying` means its result is being checked: a request whose
    jobs all verify (or are done) is `verifying` too."""

    QUEUED = "queued"
    REQUEUED = "requeued"
    TRAINING = "training"
    UNLEARNING = "unlearning"
    RETRAINING = "retraining"
    VERIFYING = "verifying"
    DONE = "done"


class ShardStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
