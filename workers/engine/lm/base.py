"""The small base language model that the erasure tests and the benchmark fine-tune.

Lethe trains it itself, so nothing is ever downloaded: a byte-level BPE tokenizer trained on the
corpus with `tokenizers`, and a GPT-2 of about a million parameters pretrained briefly on the same
text. The directory it writes is a regular Hugging Face model directory (config, tokenizer,
safetensors weights) and is always loaded with `local_files_only=True`.

Dropout is off everywhere, so that training on the CPU is a function of the data and the seed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

# Never reach for a model hub, even through a default somewhere in the libraries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    get_cosine_schedule_with_warmup,
)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
CONTEXT_LENGTH = 128


def train_tokenizer(*, corpus: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on `corpus`."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=CONTEXT_LENGTH,
    )


def _pretraining_blocks(
    *, corpus: Sequence[str], tokenizer: PreTrainedTokenizerFast, block_size: int
) -> torch.Tensor:
    # Sentences joined by end-of-text tokens, cut into equal blocks (the GPT-2 recipe).
    assert tokenizer.eos_token_id is not None
    stream: list[int] = []
    for encoded in tokenizer(list(corpus), add_special_tokens=False)["input_ids"]:
        stream.extend(encoded)
        stream.append(tokenizer.eos_token_id)
    usable = len(stream) // block_size * block_size
    if usable == 0:
        raise ValueError("the corpus is shorter than one block")
    return torch.tensor(stream[:usable], dtype=torch.long).view(-1, block_size)


def build_base_model(
    *,
    directory: Path,
    seed: int,
    corpus: Sequence[str],
    vocab_size: int = 1024,
    n_layer: int = 4,
    n_embd: int = 128,
    n_head: int = 4,
    steps: int = 160,
    batch_size: int = 16,
    block_size: int = 64,
    learning_rate: float = 3e-3,
) -> Path:
    """Train a tokenizer and a GPT-2 on `corpus`, save both under `directory`, return it.

    The defaults give about 0.94M parameters and build in about 50 seconds on one CPU core.
    """
    tokenizer = train_tokenizer(corpus=corpus, vocab_size=vocab_size)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=CONTEXT_LENGTH,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    blocks = _pretraining_blocks(corpus=corpus, tokenizer=tokenizer, block_size=block_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    schedule = get_cosine_schedule_with_warmup(
        optimizer, num_warmup_steps=max(1, steps // 10), num_training_steps=steps
    )
    model.train()
    for _ in range(steps):
        batch = blocks[torch.randint(len(blocks), (batch_size,), generator=generator)]
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    model.eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def load_base(*, directory: Path) -> tuple[GPT2LMHeadModel, PreTrainedTokenizerFast]:
    """The model and tokenizer saved by `build_base_model`, from `directory` only, in eval mode."""
    model = GPT2LMHeadModel.from_pretrained(directory, local_files_only=True)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(directory, local_files_only=True)
    model.eval()
    return model, tokenizer
