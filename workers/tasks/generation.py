"""Greedy completions from a `causal_lm` model's version, for `POST /v1/models/{id}/generate`.
Prompts and completions are never logged: they may hold personal data."""

from __future__ import annotations

import uuid
from typing import Any

from app.core.broker import GENERATE
from workers.celery_app import celery_app


@celery_app.task(name=GENERATE, ignore_result=False)
def generate(
    model_id: str, version_id: str, prompts: list[str], max_new_tokens: int
) -> dict[str, Any]:
    from workers.pipeline.lm.serving import generate_completions

    completions = generate_completions(
        model_id=uuid.UUID(model_id),
        version_id=uuid.UUID(version_id),
        prompts=prompts,
        max_new_tokens=max_new_tokens,
    )
    return {"completions": completions}
