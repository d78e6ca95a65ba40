from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from workers.engine.lm.base import load_base
from workers.engine.lm.corpus import Fact, Person, facts
from workers.engine.lm.finetune import (
    LoraSettings,
    adapter_state_bytes,
    attach_adapter,
    load_adapter_state,
    train_adapter,
)
from workers.engine.lm.losses import completion_scores, encode_examples
from workers.engine.lm.scoring import (
    completion_logprobs,
    completion_token_logprobs,
    exact_match,
    generate,
)

LORA = LoraSettings(rank=16, alpha=32)
TRAINING = {"epochs": 40, "learning_rate": 1e-2, "batch_size": 8}


def _exact_match_rate(model: torch.nn.Module, tokenizer, questions: list[Fact]) -> float:
    hits = [
        exact_match(
            prediction=generate(model=model, tokenizer=tokenizer, prompt=fact.prompt),
            answer=fact.answer,
        )
        for fact in questions
    ]
    return sum(hits) / len(hits)


def test_a_fine_tuned_adapter_answers_what_it_learned_only(
    base_directory: Path, people: list[Person]
) -> None:
    base, tokenizer = load_base(directory=base_directory)
    learned = [fact for person in people[:4] for fact in facts(person)]
    unseen = [fact for person in people[12:16] for fact in facts(person)]
    model = attach_adapter(model=copy.deepcopy(base), settings=LORA, seed=0)
    train_adapter(
        model=model, tokenizer=tokenizer, examples=[f.example for f in learned], seed=0, **TRAINING
    )
    assert _exact_match_rate(model, tokenizer, learned) >= 0.25
    assert _exact_match_rate(model, tokenizer, unseen) <= 0.1
    learned_logprob = completion_logprobs(
        model=model, tokenizer=tokenizer, examples=[f.example for f in learned]
    )
    unseen_logprob = completion_logprobs(
        model=model, tokenizer=tokenizer, examples=[f.example for f in unseen]
    )
    assert sum(learned_logprob) / len(learned) > sum(unseen_logprob) / len(unseen) + 1.0

    # One forward pass gives what the scoring functions give one by one.
    examples = [f.example for f in learned + unseen]
    scores = completion_scores(
        model=model, batch=encode_examples(tokenizer=tokenizer, examples=examples)
    )
    expected = completion_token_logprobs(model=model, tokenizer=tokenizer, examples=examples)
    assert all(
        np.allclose(got, want, atol=1e-5)
        for got, want in zip(scores.token_logprobs, expected, strict=True)
    )
    generated = [
        generate(model=model, tokenizer=tokenizer, prompt=e.prompt, max_new_tokens=16)
        for e in examples
    ]
    assert scores.greedy_match.tolist() == [
        text.startswith(e.completion) for text, e in zip(generated, examples, strict=True)
    ]
    assert scores.greedy_match.any()


def test_adapter_training_is_deterministic_and_its_state_round_trips(
    base_directory: Path, people: list[Person]
) -> None:
    base, tokenizer = load_base(directory=base_directory)
    examples = [fact.example for fact in facts(people[0])]

    def trained() -> torch.nn.Module:
        model = attach_adapter(model=copy.deepcopy(base), settings=LORA, seed=1)
        return train_adapter(
            model=model, tokenizer=tokenizer, examples=examples, seed=2, epochs=2,
            learning_rate=1e-2, batch_size=4,
        )  # fmt: skip

    first, second = trained(), trained()
    state = adapter_state_bytes(model=first)
    assert state == adapter_state_bytes(model=second)
    fresh = attach_adapter(model=copy.deepcopy(base), settings=LORA, seed=9)
    assert adapter_state_bytes(model=fresh) != state
    load_adapter_state(model=fresh, data=state)
    assert adapter_state_bytes(model=fresh) == state
    prompt = examples[0].prompt
    assert torch.equal(
        first(input_ids=tokenizer(prompt, return_tensors="pt").input_ids).logits,
        fresh(input_ids=tokenizer(prompt, return_tensors="pt").input_ids).logits,
    )
