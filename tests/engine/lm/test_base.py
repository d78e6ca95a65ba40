from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workers.engine.lm.base import build_base_model, load_base
from workers.engine.lm.corpus import generic_corpus
from workers.engine.lm.scoring import generate


def test_base_reloads_from_its_directory_and_generates(base_directory: Path) -> None:
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        path.name for path in base_directory.iterdir()
    }
    model, tokenizer = load_base(directory=base_directory)
    assert tokenizer.eos_token is not None and tokenizer.pad_token is not None
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert model.config.vocab_size == len(tokenizer)
    text = generate(model=model, tokenizer=tokenizer, prompt="Question: Who wrote it?\nAnswer:")
    assert isinstance(text, str)
    assert "<|" not in text


def test_base_is_a_function_of_its_seed(tmp_path: Path) -> None:
    corpus = generic_corpus(sentences=200, seed=1)
    settings = {"vocab_size": 300, "n_layer": 1, "n_embd": 32, "steps": 3, "seed": 2}
    first = load_base(
        directory=build_base_model(directory=tmp_path / "a", corpus=corpus, **settings)
    )
    second = load_base(
        directory=build_base_model(directory=tmp_path / "b", corpus=corpus, **settings)
    )
    second_state = second[0].state_dict()
    for name, weights in first[0].state_dict().items():
        assert torch.equal(weights, second_state[name]), name


def test_a_missing_directory_is_not_fetched(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_base(directory=tmp_path / "absent")
