"""A job's kind, status and stage. A leaf module: anything may import it."""

from __future__ import annotations

from enum import StrEnum


class JobKind(StrEnum):
    TRAIN = "train"
    # Exact erasure (SISA shard retrains or a retrain from scratch), or, for a model whose
    # operator chose `finalize: approximate`, the approximate method with its check.
    UNLEARN = "unlearn"
    # The approximate method applied at once to shorten the exposure window; it never closes
    # a request: the model's next `unlearn` job does.
    MITIGATE = "mitigate"


class JobChange(StrEnum):
    """What happened to a job, as announced to `on_job_change` listeners."""

    CLAIMED = "claimed"
    STAGE = "stage"
    FALLBACK = "fallback"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


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
