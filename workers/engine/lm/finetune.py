"""Fine-tuning the base model on text records: LoRA adapters, or every weight.

The loss covers completion tokens only (and the end-of-text after them), never the prompt. On the
CPU a run is a function of the starting weights, the records and the seed: the adapter's random
initialization and the order of records come from seeded generators, records are taken in the
order given, and dropout is off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import safetensors.torch
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.engine.lm.corpus import TextExample
from workers.engine.lm.encoding import collate, encode_example

# GPT-2's attention projection, attention output and both MLP layers (c_proj names both
# outputs), and the token embeddings: without them an adapter on a small base learns the names of
# new people several times slower. The output head shares the embedding matrix but not its
# adapter, which applies to the input lookup only.
GPT2_TARGET_MODULES = ("c_attn", "c_proj", "c_fc", "wte")


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = GPT2_TARGET_MODULES


def attach_adapter(*, model: PreTrainedModel, settings: LoraSettings, seed: int) -> PeftModel:
    """`model` with a fresh LoRA adapter, its initialization drawn from `seed`. The base weights
    are frozen; `model` itself is changed, so pass a copy to keep the bare base."""
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        fan_in_fan_out=True,  # GPT-2's Conv1D layers store their weights transposed
        bias="none",
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, config)


def train_examples(
    *,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TextExample],
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
) -> torch.nn.Module:
    """Train `model`'s trainable parameters on `examples` with AdamW (a fresh optimizer per call),
    each epoch in an order drawn from `seed`. Returns `model`, in eval mode."""
    pad = tokenizer.pad_token_id
    assert isinstance(pad, int)
    device = next(model.parameters()).device
    encoded = [
        encode_example(tokenizer=tokenizer, example=item, end_with_eos=True) for item in examples
    ]
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs if encoded else 0):
        order = torch.randperm(len(encoded), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            batch = collate(
                encoded=[encoded[index] for index in order[start : start + batch_size]],
                pad_token_id=pad,
                device=device,
            )
            loss = model(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels
            ).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    return model


def train_adapter(
    *,
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TextExample],
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
) -> PeftModel:
    """Train the adapter of `model` (from `attach_adapter`) on `examples`; the base stays frozen."""
    train_examples(
        model=model,
        tokenizer=tokenizer,
        examples=examples,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
    )
    return model


def finetune_full(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TextExample],
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
) -> PreTrainedModel:
    """Train every weight of `model` on `examples` (changes `model`)."""
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    train_examples(
        model=model,
        tokenizer=tokenizer,
        examples=examples,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
    )
    return model


def adapter_state_bytes(*, model: PeftModel) -> bytes:
    """The adapter's weights as a safetensors document, for a checkpoint."""
    state = get_peft_model_state_dict(model)
    return safetensors.torch.save({name: tensor.contiguous() for name, tensor in state.items()})


def load_adapter_state(*, model: PeftModel, data: bytes) -> PeftModel:
    """Set `model`'s adapter weights from `adapter_state_bytes`'s output."""
    set_peft_model_state_dict(model, safetensors.torch.load(data))
    return model
