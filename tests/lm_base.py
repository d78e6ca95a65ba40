"""One tiny pretrained base for every language-model test of a run, built on first use."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def tiny_base_directory() -> Path:
    """A 2-layer, 64-wide GPT-2 and its tokenizer, pretrained on generic text (seconds)."""
    from workers.engine.lm.base import build_base_model
    from workers.engine.lm.corpus import generic_corpus

    root = Path(tempfile.mkdtemp(prefix="lethe-test-lm-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return build_base_model(
        directory=root / "base",
        seed=0,
        corpus=generic_corpus(sentences=1500, seed=0),
        vocab_size=512,
        n_layer=2,
        n_embd=64,
        steps=150,
    )
