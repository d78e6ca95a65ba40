from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workers.engine.lm.base import build_base_model
from workers.engine.lm.corpus import Person, generate_people, generic_corpus

# A small model learns nothing faster with a second thread, and it slows down on a busy machine.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def base_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base_model(
        directory=tmp_path_factory.mktemp("lm") / "base",
        seed=0,
        corpus=generic_corpus(sentences=1500, seed=0),
        vocab_size=512,
        n_layer=2,
        n_embd=64,
        steps=150,
    )


@pytest.fixture(scope="session")
def people() -> list[Person]:
    return generate_people(count=24, seed=0)
