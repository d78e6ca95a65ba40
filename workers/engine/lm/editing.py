"""Edits of one MLP layer that make a GPT-2 model answer chosen prompts with a target (a refusal
such as " unknown") instead of the fact it learned.

As in ROME (Meng et al., 2022), the MLP's output projection W (GPT-2's
``transformer.h[L].mlp.c_proj``, a Conv1D whose weight is (in, out)) is read as a key-value
memory: a key k is the projection's input at one position, its value k W the output. The keys
edited here are those of the positions that produce the answer: the prompt's last token and each
target token but the last, where the model predicts the next answer token. (ROME keys on the
subject's last token; in models this small that token carries too little of what the answer
position reads, see README.) The edit:

1. finds the change d_i to the output at each edited position that makes the model continue
   every prompt with its target (Adam on the target's likelihood, teacher-forced);
2. solves for the least change of W that maps each edited key to its output plus d_i while
   keeping the keys of `preserve` (the retained records, whose answers must not move) where they
   were, in least squares, as MEMIT does for many facts at once:

       dW = (K_e^T K_e + w K_p^T K_p + r I)^-1 K_e^T D

3. repeats from 1 on the edited model, for at most `rounds` rounds, until every target is the
   model's greedy answer.

A single fact's update has the rank of its edited positions (two for a one-token target).
Edits modify the model in place; the returned `delta` is what was added to W, so an edit can be
stored and replayed on the same weights.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.engine.lm.corpus import TextExample
from workers.engine.lm.losses import (
    IGNORED,
    EncodedBatch,
    PromptCompletion,
    completion_scores,
    encode_examples,
    eval_mode,
)
from workers.engine.lm.policy import EDITING_LIMITATIONS

# A model an edit applies to: a GPT-2, or one under an adapter.
CausalLM = PreTrainedModel | PeftModel

# What an edit does and does not do, as certificates state it.
EDITING_GUARANTEE = EDITING_LIMITATIONS


@dataclass(frozen=True)
class FactEdit:
    """Answer `prompt` with `target` instead."""

    prompt: str
    target: str


@dataclass(frozen=True)
class EditSettings:
    """`layer`: the block whose MLP output projection changes (negative counts from the last).
    Each round runs at most `steps` Adam steps of `learning_rate` (in units of the output's
    typical coordinate) on the output changes, then solves for the weight change with the
    retained keys weighted `preserve_weight` times as much, in total, as the edited ones, and
    `ridge` times the keys' mean squared norm on the diagonal."""

    layer: int = -1
    rounds: int = 4
    steps: int = 40
    learning_rate: float = 0.2
    preserve_weight: float = 3.0
    ridge: float = 1e-3
    end_with_eos: bool = True  # the target ends the answer, so generation stops after it


@dataclass(frozen=True)
class EditOutcome:
    layer: int
    delta: torch.Tensor  # added to the projection's (in, out) weight
    edited_positions: int
    preserved_positions: int
    # Mean log-probability per target token after the prompts, before and after the edit.
    target_logprob_before: float
    target_logprob_after: float
    targets_reached: float  # share of the edits whose target is now the greedy answer
    rounds: int
    seconds: float


def edit_answers(
    *,
    model: CausalLM,
    tokenizer: PreTrainedTokenizerBase,
    edits: Sequence[FactEdit],
    preserve: Sequence[PromptCompletion],
    settings: EditSettings = EditSettings(),
) -> EditOutcome:
    """Edit one layer of `model` (in place) so that each edit's prompt is answered with its
    target, holding the answers of `preserve` in place.

    An edit suppresses an output, it does not erase: see `EDITING_GUARANTEE`.
    """
    if not edits:
        raise ValueError("no edits")
    if not preserve:
        raise ValueError("no retained records to preserve")
    started = time.perf_counter()
    layer = resolve_layer(model=model, layer=settings.layer)
    projection, weight = output_projection(model=model, layer=layer)
    device = weight.device
    edited = encode_examples(
        tokenizer=tokenizer,
        examples=[TextExample(prompt=e.prompt, completion=e.target) for e in edits],
        end_with_eos=settings.end_with_eos,
    ).to(device)
    kept = encode_examples(tokenizer=tokenizer, examples=preserve).to(device)
    rows, positions = _answer_positions(edited)
    original = weight.detach().clone()
    with eval_mode(model), torch.no_grad():
        before, reached = _target_figures(model, edited)
        edited_keys = _keys(projection, model, edited)[rows, positions].double()
        kept_rows, kept_positions = _answer_positions(kept)
        kept_keys = _keys(projection, model, kept)[kept_rows, kept_positions].double()
        gram = _solver_matrix(edited_keys, kept_keys, settings)
    rounds = 0
    while reached < 1.0 and rounds < settings.rounds:
        rounds += 1
        with eval_mode(model):
            change = _output_change(model, projection, edited, rows, positions, settings)
        with torch.no_grad():
            update = torch.linalg.solve(gram, edited_keys.T @ change.double())
            weight.add_(update.to(weight.dtype))
            with eval_mode(model):
                _, reached = _target_figures(model, edited)
    with eval_mode(model), torch.no_grad():
        after, reached = _target_figures(model, edited)
    return EditOutcome(
        layer=layer,
        delta=(weight.detach() - original).clone(),
        edited_positions=int(rows.numel()),
        preserved_positions=int(kept_keys.shape[0]),
        target_logprob_before=before,
        target_logprob_after=after,
        targets_reached=reached,
        rounds=rounds,
        seconds=time.perf_counter() - started,
    )


def resolve_layer(*, model: CausalLM, layer: int) -> int:
    """`layer` as a block index; negative values count from the last block."""
    blocks = int(model.config.n_layer)
    index = layer + blocks if layer < 0 else layer
    if not 0 <= index < blocks:
        raise ValueError(f"layer {layer} is outside the model's {blocks} blocks")
    return index


def output_projection(
    *, model: torch.nn.Module, layer: int
) -> tuple[torch.nn.Module, torch.nn.Parameter]:
    """The module that computes block `layer`'s MLP output (an adapter's wrapper when the
    projection carries one) and the base weight an edit changes, (in, out)."""
    suffix = f"transformer.h.{layer}.mlp.c_proj"
    for name, module in model.named_modules():
        if name.endswith(suffix):
            inner = getattr(module, "base_layer", module)
            weight = getattr(inner, "weight", None)
            if not isinstance(weight, torch.nn.Parameter) or weight.dim() != 2:
                raise TypeError(f"layer {layer}'s MLP output projection has no 2-d weight")
            return module, weight
    raise ValueError(f"the model has no MLP output projection in block {layer}")


def apply_delta(*, model: torch.nn.Module, layer: int, delta: torch.Tensor) -> None:
    """Replay a stored edit: add `delta` to block `layer`'s MLP output projection."""
    _, weight = output_projection(model=model, layer=layer)
    if tuple(delta.shape) != tuple(weight.shape):
        raise ValueError(
            f"an edit of shape {tuple(delta.shape)} does not fit {tuple(weight.shape)}"
        )
    with torch.no_grad():
        weight.add_(delta.to(device=weight.device, dtype=weight.dtype))


def _answer_positions(batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, position) of every position whose next token is a scored target token."""
    scored = batch.labels[:, 1:] != IGNORED
    rows, positions = scored.nonzero(as_tuple=True)
    return rows, positions


def _target_figures(model: CausalLM, batch: EncodedBatch) -> tuple[float, float]:
    """Mean log-probability per target token, and the share of rows whose target is the greedy
    answer (teacher-forced)."""
    scores = completion_scores(model=cast(PreTrainedModel, model), batch=batch)
    mean = float(np.concatenate(scores.token_logprobs).mean())
    return mean, float(scores.greedy_match.float().mean())


def _keys(projection: torch.nn.Module, model: CausalLM, batch: EncodedBatch) -> torch.Tensor:
    """The projection's input at every position of `batch`, (rows, width, in)."""
    chunks = []
    for start in range(0, len(batch), 64):
        index = torch.arange(start, min(start + 64, len(batch)))
        rows = batch.rows(index)
        with _capture_inputs(projection) as captured:
            model(input_ids=rows.input_ids, attention_mask=rows.attention_mask)
        keys = captured[0]
        width = batch.input_ids.shape[1]
        chunks.append(F.pad(keys, (0, 0, 0, width - keys.shape[1])))
    return torch.cat(chunks)


def _solver_matrix(
    edited: torch.Tensor, kept: torch.Tensor, settings: EditSettings
) -> torch.Tensor:
    """K_e^T K_e + w K_p^T K_p + r I, the retained keys scaled to the edited ones' count."""
    scale = settings.preserve_weight * edited.shape[0] / max(1, kept.shape[0])
    gram = edited.T @ edited + scale * (kept.T @ kept)
    ridge = settings.ridge * float((kept**2).sum(dim=1).mean())
    return gram + ridge * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)


def _output_change(
    model: CausalLM,
    projection: torch.nn.Module,
    batch: EncodedBatch,
    rows: torch.Tensor,
    positions: torch.Tensor,
    settings: EditSettings,
) -> torch.Tensor:
    """The change to the projection's output at (rows, positions) that makes the model
    continue each prompt with its target, (positions, out)."""
    with torch.no_grad(), _capture_outputs(projection) as outputs:
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    # Steps in units of the output's typical coordinate, so that one learning rate suits layers
    # and models whose activations differ in scale.
    scale = outputs[0][rows, positions].norm(dim=-1).mean() / outputs[0].shape[-1] ** 0.5
    scaled = torch.zeros(
        rows.numel(), outputs[0].shape[-1], device=outputs[0].device, requires_grad=True
    )
    optimizer = torch.optim.Adam([scaled], lr=settings.learning_rate)
    targets = batch.labels[:, 1:]
    for _ in range(settings.steps):
        with _add_at(projection, rows=rows, positions=positions, change=scale * scaled):
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        wrong = (logits[:, :-1].argmax(dim=-1) != targets) & (targets != IGNORED)
        # A margin past the argmax: the least-squares solve reaches the change only roughly.
        nll = F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORED
        )
        if not bool(wrong.any()) and float(nll.detach()) < _GOOD_ENOUGH_NLL:
            break
        optimizer.zero_grad(set_to_none=True)
        nll.backward()
        optimizer.step()
    change: torch.Tensor = (scale * scaled).detach()
    return change


# Mean NLL per target token at which the output changes are found: the targets are then near
# certain (p > 0.95).
_GOOD_ENOUGH_NLL = 0.05


@contextlib.contextmanager
def _capture_inputs(module: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    captured: list[torch.Tensor] = []

    def hook(_: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(inputs[0])

    handle = module.register_forward_pre_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


@contextlib.contextmanager
def _capture_outputs(module: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    captured: list[torch.Tensor] = []

    def hook(_: torch.nn.Module, __: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        captured.append(output)

    handle = module.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


@contextlib.contextmanager
def _add_at(
    module: torch.nn.Module, *, rows: torch.Tensor, positions: torch.Tensor, change: torch.Tensor
) -> Iterator[None]:
    """Add `change` to the module's output at (rows[i], positions[i]) during the block."""

    def hook(
        _: torch.nn.Module, __: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> torch.Tensor:
        added = torch.zeros_like(output)
        added[rows, positions] = change
        return output + added

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
