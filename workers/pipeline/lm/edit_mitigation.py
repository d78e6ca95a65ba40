"""Method `edit` of a `causal_lm` model's approximate policy: every erased prompt answered with
the policy's target (" unknown" by default) by an edit of one MLP layer of the base under the
adapter (`workers.engine.lm.editing`).

An edit suppresses what the model says; it removes nothing. It is a mitigation only: the
registry refuses `finalize: approximate` with it, the version it makes is not exact, and the
scheduled exact retrain closes the request and purges it. It is accepted when the text check
passes (the erased answers no longer come out) and the edit's locality holds: at least
`min_locality` of a sample of retained records, kept apart from those the edit holds in place,
are answered as before.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

from workers.engine.lm.adapter_sisa import TextRecord
from workers.engine.lm.editing import EditSettings, FactEdit, edit_answers, resolve_layer
from workers.engine.lm.losses import encode_examples, greedy_matches
from workers.engine.lm.policy import LmApproximatePolicy, TextCheck, check_text_figures
from workers.pipeline.job_context import JobContext
from workers.pipeline.lm.approximate import ActiveAdapter, ApproximateAttempt
from workers.pipeline.lm.text_checks import text_figures


def edit_attempt(
    ctx: JobContext,
    *,
    adapter: ActiveAdapter,
    policy: LmApproximatePolicy,
    forget: list[TextRecord],
    remaining: list[TextRecord],
    holdout: list[TextRecord],
) -> ApproximateAttempt:
    """Edit `adapter`'s model (in place) for the erased prompts, and check the result."""
    settings = policy.edit
    prompts = [r for r in forget if r.example.prompt]
    erased = {r.record_id for r in forget}
    candidates = [r for r in remaining if r.example.prompt and r.record_id not in erased]
    chooser = random.Random(ctx.model.seed)
    drawn = chooser.sample(
        candidates, min(len(candidates), settings.locality_sample + settings.preserve_sample)
    )
    probe, preserve = drawn[: settings.locality_sample], drawn[settings.locality_sample :]
    reasons = []
    if len(prompts) < len(forget):
        reasons.append(
            f"{len(forget) - len(prompts)} erased record(s) are plain text: an edit changes "
            "only the answers to prompts"
        )
    try:
        resolve_layer(model=adapter.model, layer=settings.layer)
    except ValueError as exc:
        reasons.append(f"edit.layer: {exc}")
    if not prompts:
        reasons.append("no erased prompts to edit")
    elif not preserve:
        reasons.append(
            f"too few retained prompts ({len(candidates)}): an edit checks its locality on "
            f"{settings.locality_sample} and holds at least one more in place"
        )
    if reasons:  # each is reason enough: the edit could not pass
        return _attempt(adapter, figures={}, reasons=reasons, seconds=0.0, edits=adapter.edits)
    before = _answers(adapter, probe)
    outcome = edit_answers(
        model=adapter.model,
        tokenizer=adapter.tokenizer,
        edits=[FactEdit(prompt=r.example.prompt, target=settings.target) for r in prompts],
        preserve=[r.example for r in preserve],
        settings=EditSettings(
            layer=settings.layer,
            rounds=settings.rounds,
            steps=settings.steps,
            learning_rate=settings.learning_rate,
            preserve_weight=settings.preserve_weight,
        ),
    )
    locality = float((_answers(adapter, probe) == before).float().mean())
    figures = text_figures(
        model=adapter.model, tokenizer=adapter.tokenizer, records=forget, holdout=holdout
    )
    figures["edit"] = {
        "layer": outcome.layer,
        "edited_prompts": len(prompts),
        "targets_reached": round(outcome.targets_reached, 4),
        "retained_unchanged": round(locality, 4),
        "retained_checked": len(probe),
        "retained_held": len(preserve),
        "rounds": outcome.rounds,
    }
    reasons += check_text_figures(figures=figures, settings=policy.check).reasons
    if locality < settings.min_locality:
        reasons.append(
            f"the edit changed the answers of {1 - locality:.2f} of retained records checked "
            f"(allowed {1 - settings.min_locality:.2f})"
        )
    edits = dict(adapter.edits)
    earlier = edits.get(outcome.layer)
    edits[outcome.layer] = outcome.delta if earlier is None else earlier + outcome.delta
    return _attempt(adapter, figures=figures, reasons=reasons, seconds=outcome.seconds, edits=edits)


def _answers(adapter: ActiveAdapter, records: Sequence[TextRecord]) -> torch.Tensor:
    """Whether each record's completion is the model's greedy answer (empty: no records)."""
    if not records:
        return torch.zeros(0, dtype=torch.bool)
    batch = encode_examples(tokenizer=adapter.tokenizer, examples=[r.example for r in records])
    with torch.no_grad():
        return greedy_matches(model=adapter.model, batch=batch)  # type: ignore[arg-type]


def _attempt(
    adapter: ActiveAdapter,
    *,
    figures: dict[str, Any],
    reasons: list[str],
    seconds: float,
    edits: dict[int, torch.Tensor],
) -> ApproximateAttempt:
    return ApproximateAttempt(
        method="edit",
        model=adapter.model,
        influenced_by=adapter.influenced_by,
        figures=figures,
        check=TextCheck(not reasons, tuple(reasons)),
        seconds=seconds,
        edits=edits,
    )
