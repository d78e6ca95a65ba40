"""The edit mitigation refuses, before editing anything, what an edit cannot do: plain-text
records, a layer the model lacks, too few retained prompts to hold and to check."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
import torch

from tests.lm_base import tiny_base_directory
from workers.engine.lm.adapter_sisa import TextRecord
from workers.engine.lm.base import load_base
from workers.engine.lm.corpus import TextExample, facts, generate_people
from workers.engine.lm.policy import LmApproximatePolicy
from workers.pipeline.lm.approximate import ActiveAdapter
from workers.pipeline.lm.edit_mitigation import edit_attempt


@pytest.fixture(scope="module")
def adapter() -> ActiveAdapter:
    model, tokenizer = load_base(directory=tiny_base_directory())
    return ActiveAdapter(cast(Any, model), tokenizer, np.arange(100))


def records(people: range, *, start: int = 0) -> list[TextRecord]:
    everyone = generate_people(count=12, seed=5)
    chosen = [fact.example for i in people for fact in facts(everyone[i])]
    return [TextRecord(record_id=start + i, example=e) for i, e in enumerate(chosen)]


def attempt(adapter: ActiveAdapter, policy: dict, forget: list, remaining: list):
    weights = {k: v.clone() for k, v in adapter.model.state_dict().items()}
    result = edit_attempt(
        cast(Any, SimpleNamespace(model=SimpleNamespace(seed=0))),
        adapter=adapter,
        policy=LmApproximatePolicy.from_dict({"method": "edit", **policy}),
        forget=forget,
        remaining=remaining,
        holdout=[],
    )
    unchanged = all(torch.equal(weights[k], v) for k, v in adapter.model.state_dict().items())
    return result, unchanged


def test_what_an_edit_cannot_do_is_refused_untouched(adapter: ActiveAdapter) -> None:
    forget = records(range(1))
    remaining = records(range(1, 4), start=50)
    small = {"edit": {"locality_sample": 6, "preserve_sample": 6}}

    plain = TextRecord(record_id=99, example=TextExample(prompt="", completion="A note."))
    result, unchanged = attempt(adapter, small, [*forget, plain], remaining)
    assert not result.check.passed and unchanged and result.method == "edit"
    assert result.check.reasons == (
        "1 erased record(s) are plain text: an edit changes only the answers to prompts",
    )

    result, unchanged = attempt(adapter, {"edit": {"layer": 9}}, forget, remaining)
    assert not result.check.passed and unchanged
    assert "edit.layer: layer 9 is outside the model's 2 blocks" in result.check.reasons

    few = {"edit": {"locality_sample": len(remaining), "preserve_sample": 6}}
    result, unchanged = attempt(adapter, few, forget, remaining)
    assert not result.check.passed and unchanged
    assert result.check.reasons[0].startswith("too few retained prompts (18)")
    assert result.verification()["effect"] == "suppression"
