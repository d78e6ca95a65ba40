"""Edits of one MLP layer: the targets become the greedy answers, only that layer changes, the
update has the rank of the edited positions, a stored edit replays exactly, and the retained
answers it holds in place stay."""

from __future__ import annotations

import pytest
import torch

from tests.engine.lm.conftest import REFUSAL, FineTuned
from workers.engine.lm.corpus import TextExample, facts
from workers.engine.lm.editing import (
    EDITING_GUARANTEE,
    EditSettings,
    FactEdit,
    apply_delta,
    edit_answers,
    output_projection,
)
from workers.engine.lm.losses import encode_examples, greedy_matches
from workers.engine.lm.policy import EDITING_LIMITATIONS


def answers(model: torch.nn.Module, fine_tuned: FineTuned, examples: list) -> torch.Tensor:
    batch = encode_examples(tokenizer=fine_tuned.tokenizer, examples=examples)
    with torch.no_grad():
        return greedy_matches(model=model, batch=batch)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def edited(fine_tuned: FineTuned):
    """Every fact of the first person edited to the refusal, the other people held in place."""
    model = fine_tuned.copy()
    edits = [FactEdit(prompt=f.prompt, target=REFUSAL) for f in facts(fine_tuned.people[0])]
    preserve = fine_tuned.examples(fine_tuned.people[1:12])
    outcome = edit_answers(
        model=model, tokenizer=fine_tuned.tokenizer, edits=edits, preserve=preserve
    )
    return model, edits, preserve, outcome


def test_the_targets_become_the_greedy_answers(fine_tuned: FineTuned, edited) -> None:
    model, edits, _, outcome = edited
    refusals = [TextExample(prompt=e.prompt, completion=REFUSAL) for e in edits]
    assert not answers(fine_tuned.model, fine_tuned, refusals).any()
    assert answers(model, fine_tuned, refusals).all()
    assert outcome.targets_reached == 1.0
    assert outcome.target_logprob_after > outcome.target_logprob_before
    # The facts themselves no longer come out.
    assert not answers(model, fine_tuned, fine_tuned.examples(fine_tuned.people[:1])).any()


def test_only_one_projection_changes_by_a_low_rank_update(fine_tuned: FineTuned, edited) -> None:
    model, _, _, outcome = edited
    layer = fine_tuned.model.config.n_layer - 1
    assert outcome.layer == layer
    changed = {
        name
        for (name, before), after in zip(
            fine_tuned.model.named_parameters(), model.parameters(), strict=True
        )
        if not torch.equal(before, after)
    }
    assert changed == {f"transformer.h.{layer}.mlp.c_proj.weight"}
    _, weight = output_projection(model=model, layer=layer)
    _, original = output_projection(model=fine_tuned.model, layer=layer)
    torch.testing.assert_close(weight - original, outcome.delta)
    # At most one direction per edited position (prompt end and each target token but the last).
    rank = int(torch.linalg.matrix_rank(outcome.delta, rtol=1e-5))
    assert 1 <= rank <= outcome.edited_positions


def test_a_stored_edit_replays_exactly(fine_tuned: FineTuned, edited) -> None:
    model, edits, _, outcome = edited
    replayed = fine_tuned.copy()
    apply_delta(model=replayed, layer=outcome.layer, delta=outcome.delta.clone())
    batch = encode_examples(
        tokenizer=fine_tuned.tokenizer,
        examples=[TextExample(prompt=e.prompt, completion=REFUSAL) for e in edits],
    )
    with torch.no_grad():
        torch.testing.assert_close(
            replayed(input_ids=batch.input_ids).logits, model(input_ids=batch.input_ids).logits
        )
    with pytest.raises(ValueError, match="does not fit"):
        apply_delta(model=replayed, layer=outcome.layer, delta=outcome.delta.T)


def test_holding_retained_answers_keeps_more_of_them(fine_tuned: FineTuned, edited) -> None:
    """The held answers change less than under the same edit without them (at this model's
    scale an edit still moves some: see README)."""
    model, edits, preserve, _ = edited
    unheld = fine_tuned.copy()
    edit_answers(
        model=unheld,
        tokenizer=fine_tuned.tokenizer,
        edits=edits,
        preserve=preserve,
        settings=EditSettings(preserve_weight=0.0),
    )
    before = answers(fine_tuned.model, fine_tuned, preserve)
    kept = float((answers(model, fine_tuned, preserve) == before).float().mean())
    kept_unheld = float((answers(unheld, fine_tuned, preserve) == before).float().mean())
    assert kept > kept_unheld


def test_layers_and_inputs_are_checked(fine_tuned: FineTuned) -> None:
    model = fine_tuned.copy()
    edit = [FactEdit(prompt=facts(fine_tuned.people[0])[0].prompt, target=REFUSAL)]
    held = fine_tuned.examples(fine_tuned.people[1:2])
    with pytest.raises(ValueError, match="outside the model"):
        edit_answers(
            model=model,
            tokenizer=fine_tuned.tokenizer,
            edits=edit,
            preserve=held,
            settings=EditSettings(layer=99),
        )
    with pytest.raises(ValueError, match="no edits"):
        edit_answers(model=model, tokenizer=fine_tuned.tokenizer, edits=[], preserve=held)
    with pytest.raises(ValueError, match="no retained records"):
        edit_answers(model=model, tokenizer=fine_tuned.tokenizer, edits=edit, preserve=[])


def test_the_guarantee_says_an_edit_is_not_erasure() -> None:
    for text in (EDITING_GUARANTEE, EDITING_LIMITATIONS):
        assert "it does not remove the data's influence" in text
