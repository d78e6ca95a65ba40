"""Rank-one edits: the update's algebra, the target made likelier, other people left alone."""

from __future__ import annotations

import torch

from tests.engine.lm.conftest import REFUSAL, FineTuned
from workers.engine.lm.corpus import facts
from workers.engine.lm.editing import (
    EDITING_GUARANTEE,
    EditSettings,
    FactEdit,
    edit_facts,
    output_projection,
    rank_one_edit,
)
from workers.engine.lm.losses import encode_examples, greedy_matches

LAYER = 1
# Share of the other people's answers an edit must leave as they were.
LOCALITY = 0.95


def answers_kept(fine_tuned: FineTuned, model: torch.nn.Module) -> torch.Tensor:
    examples = fine_tuned.examples(fine_tuned.people[1:])
    batch = encode_examples(tokenizer=fine_tuned.tokenizer, examples=examples)
    return greedy_matches(model=model, batch=batch)


def test_one_edit_is_a_rank_one_update_toward_the_target(fine_tuned: FineTuned) -> None:
    model = fine_tuned.copy()
    person = fine_tuned.people[0]
    fact = facts(person)[0]
    before = output_projection(model=model, layer=LAYER).weight.detach().clone()
    result = rank_one_edit(
        model=model,
        tokenizer=fine_tuned.tokenizer,
        subject=person.name,
        prompt=fact.prompt,
        target=REFUSAL,
        layer=LAYER,
        key_texts=fine_tuned.generic[:100],
        steps=25,
        learning_rate=0.5,
    )
    change = output_projection(model=model, layer=LAYER).weight.detach() - before
    assert torch.linalg.matrix_rank(change, rtol=1e-4) == 1
    torch.testing.assert_close(
        change, torch.outer(result.key_direction, result.value_change), rtol=1e-5, atol=1e-6
    )
    assert result.target_logprob_after > result.target_logprob_before
    kept = answers_kept(fine_tuned, model).float().mean()
    assert kept >= LOCALITY * answers_kept(fine_tuned, fine_tuned.model).float().mean()


def test_sequential_edits_leave_other_people_alone(fine_tuned: FineTuned) -> None:
    model = fine_tuned.copy()
    person = fine_tuned.people[0]
    edits = [
        FactEdit(subject=person.name, prompt=fact.prompt, target=REFUSAL)
        for fact in facts(person)[:3]
    ]
    results = edit_facts(
        model=model,
        tokenizer=fine_tuned.tokenizer,
        edits=edits,
        layer=LAYER,
        key_texts=fine_tuned.generic[:100],
        settings=EditSettings(steps=15),
    )
    assert [result.edit for result in results] == edits
    assert all(result.target_logprob_after > result.target_logprob_before for result in results)
    kept = answers_kept(fine_tuned, model).float().mean()
    assert kept >= LOCALITY * answers_kept(fine_tuned, fine_tuned.model).float().mean()


def test_the_guarantee_says_an_edit_is_not_erasure() -> None:
    assert "does not remove the data's influence" in EDITING_GUARANTEE.replace("\n", " ")
