"""Gradient difference, NPO and answer edits on a fine-tuned GPT-2: forgetting, what is kept,
edit success and locality.

    python -m bench.lm_methods --people 50 --forget 0.02 0.06 0.10 --seed 0

A base GPT-2 is pretrained on generic text plus refusals (" unknown") to questions about
strangers, then every weight is fine-tuned on the facts of `--people` fictitious people and on
the strangers' refusals (a LoRA adapter on a base this small learns the facts far more slowly).
For each forget fraction, that share of the people is forgotten:

- `gradient_difference` and `npo` on a copy of the fine-tuned model, with the settings of
  `bench._lm_unlearning` (chosen on `bench.lm` seeds 100 and 101; `--steps` overrides the steps);
- `edit`: every fact of the forgotten people edited to the refusal at once
  (`workers.engine.lm.editing`, its default settings: chosen on seeds 100 and 101), holding the
  retained facts outside the locality sample in place.

Exact match is teacher-forced greedy decoding: every answer token is the model's top choice.
Edit success: share of edited prompts whose greedy answer is the refusal. Locality: share of the
retained sample's facts answered as before the edits (the sample is not among the facts the
edit holds in place).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from bench._lm_unlearning import (
    DEFAULT_SETTINGS,
    UNLEARNING_METHODS,
    UnlearningSettings,
    unlearn,
)
from workers.engine.lm.base import build_base_model, load_base
from workers.engine.lm.corpus import TextExample, facts, generate_people, generic_corpus
from workers.engine.lm.editing import EditSettings, FactEdit, edit_answers
from workers.engine.lm.finetune import finetune_full
from workers.engine.lm.losses import encode_examples, greedy_matches

REFUSAL = " unknown"


def _matches(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, examples: Sequence[TextExample]
) -> torch.Tensor:
    with torch.no_grad():
        batch = encode_examples(tokenizer=tokenizer, examples=examples)
        return greedy_matches(model=model, batch=batch)  # type: ignore[arg-type]


def _settings(name: str, *, steps: int | None) -> UnlearningSettings:
    """The method's shared settings, with `steps` instead of its own when given."""
    chosen = DEFAULT_SETTINGS[name]
    return chosen if steps is None else dataclasses.replace(chosen, steps=steps)


def _rate(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, examples: Sequence[TextExample]
) -> float:
    return round(float(_matches(model, tokenizer, examples).float().mean()), 3)


def run(
    *,
    people_count: int,
    forget_fractions: Sequence[float],
    seed: int,
    epochs: int,
    steps: int | None,
    layer: int,
    retain_sample: int,
    n_embd: int,
    edit_settings: EditSettings = EditSettings(),
) -> list[dict[str, object]]:
    people = generate_people(count=people_count + people_count // 10, seed=seed)
    known, strangers = people[:people_count], people[people_count:]
    refusals = [
        TextExample(prompt=fact.prompt, completion=REFUSAL)
        for person in strangers
        for fact in facts(person)
    ]
    generic = generic_corpus(sentences=3000, seed=seed)
    with tempfile.TemporaryDirectory() as directory:
        build_base_model(
            directory=Path(directory),
            seed=seed,
            corpus=generic + [refusal.text for refusal in refusals],
            n_embd=n_embd,
        )
        base, tokenizer = load_base(directory=Path(directory))
    started = time.perf_counter()
    examples = [fact.example for person in known for fact in facts(person)] + refusals
    adapted = finetune_full(
        model=base,
        tokenizer=tokenizer,
        examples=examples,
        epochs=epochs,
        learning_rate=3e-3,
        batch_size=8,
        seed=seed,
    )
    print(json.dumps({"fine_tune_seconds": round(time.perf_counter() - started, 1)}), flush=True)
    rows: list[dict[str, object]] = []
    for fraction in forget_fractions:
        count = max(1, round(fraction * people_count))
        forgotten, kept = known[:count], known[count:]
        forget = [fact.example for person in forgotten for fact in facts(person)]
        retain = [fact.example for person in kept for fact in facts(person)]
        sample = retain[:retain_sample]
        row: dict[str, object] = {
            "people": people_count,
            "forget_fraction": fraction,
            "forgotten_people": count,
            "original_forget_em": _rate(adapted, tokenizer, forget),
            "original_retain_em": _rate(adapted, tokenizer, sample),
        }
        for name in UNLEARNING_METHODS:
            model = copy.deepcopy(adapted)
            result = unlearn(
                name,
                model=model,
                tokenizer=tokenizer,
                forget=forget,
                retain=retain,
                settings=_settings(name, steps=steps),
                seed=seed,
            )
            row[f"{name}_forget_em"] = _rate(model, tokenizer, forget)
            row[f"{name}_retain_em"] = _rate(model, tokenizer, sample)
            row[f"{name}_seconds"] = round(result.seconds, 1)
        merged: PreTrainedModel = copy.deepcopy(adapted)
        before = _matches(merged, tokenizer, sample)
        edits = [
            FactEdit(prompt=fact.prompt, target=REFUSAL)
            for person in forgotten
            for fact in facts(person)
        ]
        outcome = edit_answers(
            model=merged,
            tokenizer=tokenizer,
            edits=edits,
            # The locality sample is left out of what the edit holds in place.
            preserve=retain[retain_sample:],
            settings=dataclasses.replace(edit_settings, layer=layer),
        )
        refused = [TextExample(prompt=edit.prompt, completion=REFUSAL) for edit in edits]
        row["edit_success"] = _rate(merged, tokenizer, refused)
        row["edit_forget_em"] = _rate(merged, tokenizer, forget)
        after = _matches(merged, tokenizer, sample)
        row["edit_locality"] = round(float((after == before).float().mean()), 3)
        row["edit_rounds"] = outcome.rounds
        row["edit_seconds"] = round(outcome.seconds, 1)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lm_methods", description=__doc__)
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--forget", type=float, nargs="+", default=[0.01, 0.05, 0.10])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=25, help="Fine-tuning epochs.")
    parser.add_argument("--n-embd", type=int, default=64, help="Base model width.")
    parser.add_argument("--steps", type=int, default=None,
                        help="Unlearning steps (default: each method's own).")  # fmt: skip
    parser.add_argument("--layer", type=int, default=-1,
                        help="Block the edits change (negative: from the last).")  # fmt: skip
    parser.add_argument("--retain-sample", type=int, default=120)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    run(
        people_count=args.people,
        forget_fractions=args.forget,
        seed=args.seed,
        epochs=args.epochs,
        steps=args.steps,
        layer=args.layer,
        retain_sample=args.retain_sample,
        n_embd=args.n_embd,
    )


if __name__ == "__main__":
    main()
