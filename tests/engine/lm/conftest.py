from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from tests.lm_base import tiny_base_directory
from workers.engine.lm.base import build_base_model, load_base
from workers.engine.lm.corpus import (
    Person,
    TextExample,
    facts,
    generate_people,
    generic_corpus,
)
from workers.engine.lm.losses import completion_nll, encode_examples, eval_mode

# A small model learns nothing faster with a second thread, and it slows down on a busy machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def base_directory() -> Path:
    return tiny_base_directory()


@pytest.fixture(scope="session")
def people() -> list[Person]:
    return generate_people(count=24, seed=0)


# The answer the fine-tuned model gives about people it does not know.
REFUSAL = " unknown"


@dataclass(frozen=True)
class FineTuned:
    model: GPT2LMHeadModel
    tokenizer: PreTrainedTokenizerFast
    people: list[Person]
    generic: list[str]

    def examples(self, people: list[Person]) -> list[TextExample]:
        return [fact.example for person in people for fact in facts(person)]

    def copy(self) -> GPT2LMHeadModel:
        return copy.deepcopy(self.model)


def _memorize(
    *, model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast, examples: list[TextExample]
) -> None:
    batch = encode_examples(tokenizer=tokenizer, examples=examples)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    with eval_mode(model):
        for _ in range(250):
            rows = torch.randperm(len(batch), generator=generator)[:16]
            loss = completion_nll(model=model, batch=batch.rows(rows))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


@pytest.fixture(scope="session")
def fine_tuned(tmp_path_factory: pytest.TempPathFactory) -> FineTuned:
    """Twelve people's facts learned, and a dozen strangers whose every answer is a refusal (so
    the model knows how to say it does not know)."""
    people = generate_people(count=24, seed=0)
    known, strangers = people[:12], people[12:]
    refusals = [
        TextExample(prompt=fact.prompt, completion=REFUSAL)
        for person in strangers
        for fact in facts(person)
    ]
    generic = generic_corpus(sentences=400, seed=0)
    directory: Path = tmp_path_factory.mktemp("lm-base")
    build_base_model(
        directory=directory,
        seed=0,
        corpus=generic + [refusal.text for refusal in refusals],
        n_embd=64,
        steps=60,
        vocab_size=512,
    )
    model, tokenizer = load_base(directory=directory)
    examples = [fact.example for person in known for fact in facts(person)] + refusals
    _memorize(model=model, tokenizer=tokenizer, examples=examples)
    model.eval()
    return FineTuned(model=model, tokenizer=tokenizer, people=known, generic=generic)
