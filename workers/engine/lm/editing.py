"""Rank-one edits of one MLP layer (ROME, Meng et al., 2022) that make a GPT-2 model answer a
fact's prompt with a target (a refusal, or a neutral answer such as " unknown") instead.

The MLP's output projection W (GPT-2's ``transformer.h[L].mlp.c_proj``, a Conv1D whose weight
is (in, out)) is treated as a key-value store: the key k* is the MLP's hidden activation at the
subject's last token, the value its output there. The edit finds the value v* that makes the
model produce the target, then changes W as little as possible, in the metric of the keys'
second moment C, so that W maps k* to v*:

    W += (C^-1 k*) (v* - W k*)^T / (k*^T C^-1 k*)

Edits modify the model in place; an adapter-wrapped model should be merged first.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerFast
from transformers.pytorch_utils import Conv1D

from workers.engine.lm.losses import (
    IGNORED,
    encode_examples,
    eval_mode,
    mean_token_logprob,
)

EDITING_GUARANTEE = (
    "A rank-one edit changes one layer's weights so that the model answers the edited prompts "
    "with the target instead of the fact. It suppresses an output; it does not remove the "
    "data's influence on the model. The fact may still come out under other phrasings, be read "
    "from other layers or recovered by further fine-tuning, and membership tests may still "
    "detect that the model was trained on it. Only training without the data removes it."
)


@dataclass(frozen=True)
class FactEdit:
    """Answer `prompt` (which names `subject`) with `target` instead."""

    subject: str
    prompt: str
    target: str


@dataclass(frozen=True)
class EditResult:
    edit: FactEdit
    layer: int
    # Mean log-probability per target token after the prompt, before and after the edit.
    target_logprob_before: float
    target_logprob_after: float
    steps: int
    seconds: float
    # The weight update is outer(key_direction, value_change), in the Conv1D's (in, out) layout.
    key_direction: torch.Tensor
    value_change: torch.Tensor


@dataclass(frozen=True)
class EditSettings:
    """How v* is found: `steps` Adam steps of `learning_rate` on a change to the MLP output at
    the subject's last token, against the target's NLL after the prompt and `contexts` prefixed
    variants of it, plus `kl_weight` times the KL divergence of the next-token distribution after
    "<subject> is a" from the unedited model's (keeping the rest of what the model says about the
    subject), plus `weight_decay` times the change's squared norm relative to the output's."""

    steps: int = 25
    learning_rate: float = 0.5
    contexts: int = 4
    kl_weight: float = 0.0625
    weight_decay: float = 0.01
    # Added to C's diagonal, relative to its mean diagonal entry, so that C is invertible.
    ridge: float = 1e-3


def rank_one_edit(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    subject: str,
    prompt: str,
    target: str,
    layer: int,
    key_texts: Sequence[str],
    steps: int = 25,
    learning_rate: float = 0.5,
) -> EditResult:
    """Edit `layer` so that `prompt` is answered with `target`. `key_texts` is generic text for
    the keys' second moment (for example `generic_corpus` sentences).

    The edit suppresses an output, it does not erase: see `EDITING_GUARANTEE`.
    """
    settings = EditSettings(steps=steps, learning_rate=learning_rate)
    moment = key_second_moment(model=model, tokenizer=tokenizer, layer=layer, texts=key_texts)
    return apply_edit(
        model=model,
        tokenizer=tokenizer,
        edit=FactEdit(subject=subject, prompt=prompt, target=target),
        layer=layer,
        moment=moment,
        context_texts=key_texts,
        settings=settings,
    )


def edit_facts(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    edits: Sequence[FactEdit],
    layer: int,
    key_texts: Sequence[str],
    settings: EditSettings = EditSettings(),
) -> list[EditResult]:
    """Apply `edits` one after another to the same layer. The keys' second moment is taken
    once: an edit of the output projection leaves that layer's keys as they were.

    Each edit suppresses an output, it does not erase: see `EDITING_GUARANTEE`.
    """
    moment = key_second_moment(model=model, tokenizer=tokenizer, layer=layer, texts=key_texts)
    return [
        apply_edit(
            model=model,
            tokenizer=tokenizer,
            edit=edit,
            layer=layer,
            moment=moment,
            context_texts=key_texts,
            settings=settings,
        )
        for edit in edits
    ]


def output_projection(*, model: PreTrainedModel, layer: int) -> Conv1D:
    """The MLP output projection of GPT-2 block `layer`."""
    module = model.get_submodule(f"transformer.h.{layer}.mlp.c_proj")
    if not isinstance(module, Conv1D):
        raise TypeError(f"layer {layer}'s MLP output projection is {type(module).__name__}")
    return module


@torch.no_grad()
def key_second_moment(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    layer: int,
    texts: Sequence[str],
    batch_size: int = 16,
) -> torch.Tensor:
    """E[k k^T] over every token of `texts`, k the input of `layer`'s MLP output projection."""
    if not texts:
        raise ValueError("no texts for the keys' second moment")
    projection = output_projection(model=model, layer=layer)
    size = projection.weight.shape[0]
    total = torch.zeros(size, size, dtype=torch.float64, device=model.device)
    count = 0
    with eval_mode(model):
        for start in range(0, len(texts), batch_size):
            encoded = tokenizer(
                list(texts[start : start + batch_size]),
                add_special_tokens=False,
                padding=True,
                return_tensors="pt",
            ).to(model.device)
            with _capture_keys(projection) as captured:
                model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])
            keys = captured[0][encoded["attention_mask"].bool()].double()
            total += keys.T @ keys
            count += keys.shape[0]
    return (total / count).float()


def apply_edit(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    edit: FactEdit,
    layer: int,
    moment: torch.Tensor,
    context_texts: Sequence[str],
    settings: EditSettings,
) -> EditResult:
    """Edit `layer` for one fact, given the keys' second moment at that layer."""
    started = time.perf_counter()
    projection = output_projection(model=model, layer=layer)
    target_batch = encode_examples(
        tokenizer=tokenizer, examples=[_Example(prompt=edit.prompt, completion=edit.target)]
    ).to(model.device)
    with eval_mode(model):
        before = mean_token_logprob(model=model, batch=target_batch)
        prompts = [prefix + edit.prompt for prefix in _prefixes(context_texts, settings.contexts)]
        key = _subject_keys(
            model=model, tokenizer=tokenizer, texts=prompts, subject=edit.subject, layer=layer
        ).mean(dim=0)
        value_change, steps = _value_change(
            model=model,
            tokenizer=tokenizer,
            prompts=prompts,
            edit=edit,
            layer=layer,
            settings=settings,
        )
        ridge = settings.ridge * moment.diagonal().mean()
        solved = torch.linalg.solve(
            moment + ridge * torch.eye(moment.shape[0], device=moment.device), key
        )
        key_direction = solved / (solved @ key)
        with torch.no_grad():
            update = torch.outer(key_direction, value_change)
            projection.weight.add_(update.to(projection.weight.dtype))
        after = mean_token_logprob(model=model, batch=target_batch)
    return EditResult(
        edit=edit,
        layer=layer,
        target_logprob_before=before,
        target_logprob_after=after,
        steps=steps,
        seconds=time.perf_counter() - started,
        key_direction=key_direction.detach(),
        value_change=value_change,
    )


@dataclass(frozen=True)
class _Example:
    prompt: str
    completion: str


def _prefixes(texts: Sequence[str], count: int) -> list[str]:
    """The bare prompt, then prompts after the first few words of `count` generic texts."""
    prefixes = [""]
    for text in texts[:count]:
        words = text.split()[:5]
        if words:
            prefixes.append(" ".join(words).rstrip(".") + ". ")
    return prefixes


def _subject_position(
    *, tokenizer: PreTrainedTokenizerFast, text: str, subject: str
) -> tuple[list[int], int]:
    """The tokens of `text` after end-of-text, and the index of the token that ends the last
    mention of `subject`."""
    end = text.rfind(subject)
    if end < 0:
        raise ValueError(f"subject {subject!r} does not occur in {text!r}")
    end += len(subject)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets: list[tuple[int, int]] = encoded["offset_mapping"]
    position = max(index for index, (start, _) in enumerate(offsets) if start < end)
    # Sequences start with end-of-text, as training encodes them (see `encoding`).
    eos = tokenizer.eos_token_id
    if not isinstance(eos, int):
        raise ValueError("the tokenizer has no end-of-text token")
    ids: list[int] = [eos, *encoded["input_ids"]]
    return ids, position + 1


@torch.no_grad()
def _subject_keys(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    texts: Sequence[str],
    subject: str,
    layer: int,
) -> torch.Tensor:
    """The projection's input at the subject's last token of each text, (texts, in)."""
    projection = output_projection(model=model, layer=layer)
    keys = []
    for text in texts:
        ids, position = _subject_position(tokenizer=tokenizer, text=text, subject=subject)
        with _capture_keys(projection) as captured:
            model(input_ids=torch.tensor([ids], device=model.device))
        keys.append(captured[0][0, position])
    return torch.stack(keys)


def _value_change(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    prompts: Sequence[str],
    edit: FactEdit,
    layer: int,
    settings: EditSettings,
) -> tuple[torch.Tensor, int]:
    """The change to the MLP output at the subject's last token that makes each prompt continue
    with the target, and the steps it took."""
    projection = output_projection(model=model, layer=layer)
    examples = [_Example(prompt=prompt, completion=edit.target) for prompt in prompts]
    target_batch = encode_examples(tokenizer=tokenizer, examples=examples).to(model.device)
    kl_text = f"{edit.subject} is a"
    kl_ids, kl_subject = _subject_position(tokenizer=tokenizer, text=kl_text, subject=edit.subject)
    positions = [
        _subject_position(tokenizer=tokenizer, text=prompt, subject=edit.subject)[1]
        for prompt in prompts
    ]
    kl_input = torch.tensor([kl_ids], device=model.device)
    with torch.no_grad():
        reference = torch.log_softmax(model(input_ids=kl_input).logits[0, -1].float(), dim=-1)
        with _capture_outputs(projection) as outputs:
            model(
                input_ids=target_batch.input_ids[:1], attention_mask=target_batch.attention_mask[:1]
            )
        output_norm = outputs[0][0, positions[0]].norm()
    size = projection.weight.shape[1]
    # Steps in units of the output's typical coordinate, so that one learning rate suits layers
    # and models whose activations differ in scale.
    scale = output_norm / size**0.5
    scaled = torch.zeros(size, device=model.device, requires_grad=True)
    optimizer = torch.optim.Adam([scaled], lr=settings.learning_rate)
    rows = torch.arange(len(prompts), device=model.device)
    row_positions = torch.tensor(positions, device=model.device)
    targets = target_batch.labels[:, 1:]
    for step in range(settings.steps):
        change = scale * scaled
        with _add_at(projection, rows=rows, positions=row_positions, change=change):
            logits = model(
                input_ids=target_batch.input_ids, attention_mask=target_batch.attention_mask
            ).logits
        target_nll = F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORED
        )
        with _add_at(
            projection,
            rows=rows[:1],
            positions=torch.tensor([kl_subject], device=model.device),
            change=change,
        ):
            edited = torch.log_softmax(model(input_ids=kl_input).logits[0, -1].float(), dim=-1)
        kl = F.kl_div(edited, reference, log_target=True, reduction="sum")
        decay = change.norm() ** 2 / output_norm**2
        loss = target_nll + settings.kl_weight * kl + settings.weight_decay * decay

        if float(target_nll.detach()) < _GOOD_ENOUGH_NLL:
            return change.detach(), step
        (scaled.grad,) = torch.autograd.grad(loss, [scaled])
        optimizer.step()
    return (scale * scaled).detach(), settings.steps


# Mean NLL per target token at which v* is found: the target is then near certain (p > 0.95).
_GOOD_ENOUGH_NLL = 0.05


@contextlib.contextmanager
def _capture_keys(projection: Conv1D) -> Iterator[list[torch.Tensor]]:
    captured: list[torch.Tensor] = []

    def hook(_: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(inputs[0])

    handle = projection.register_forward_pre_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


@contextlib.contextmanager
def _capture_outputs(projection: Conv1D) -> Iterator[list[torch.Tensor]]:
    captured: list[torch.Tensor] = []

    def hook(_: torch.nn.Module, __: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        captured.append(output)

    handle = projection.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


@contextlib.contextmanager
def _add_at(
    projection: Conv1D, *, rows: torch.Tensor, positions: torch.Tensor, change: torch.Tensor
) -> Iterator[None]:
    """Add `change` to the projection's output at (rows[i], positions[i]) during the block."""

    def hook(
        _: torch.nn.Module, __: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> torch.Tensor:
        added = torch.zeros_like(output)
        added[rows, positions] = change
        return output + added

    handle = projection.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
