"""Erasing people from a fine-tuned language model: the retrained reference against each method.

    python -m bench.lm --people 200 --forget 0.01 0.05 0.10 --seeds 0

A base GPT-2 is pretrained on generic text (`workers.engine.lm.base`), then fine-tuned with LoRA
on the question-answer facts of `--people` fictitious people; a further tenth of that many people
is never trained on (the holdout). For each forget fraction and seed, that share of the people is
erased and every row is scored on the same questions:

- `original`: the adapter trained on everybody, before any erasure;
- `retrain`: an adapter trained from scratch without the forgotten people, the reference;
- `adapter-sisa`: S shard adapters on the same base, trained slice by slice, then `unlearn`ed
  (exact: it equals its own retraining without the forgotten records);
- one row per entry of `METHODS`, an approximate method applied to `original`.

Columns: exact match and mean per-token probability of the forgotten people's answers, exact
match on the retained people's and the holdout's questions, forget quality (KS p-value of the
forgotten facts' truth ratios against `retrain`'s), the membership AUC of forgotten against
holdout facts (0.5: they look unseen), and the time taken as a share of training `retrain`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench._lm_unlearning import UNLEARNING_METHODS, unlearn
from workers.engine.lm.adapter_sisa import AdapterSisa, AdapterSisaConfig, TextRecord
from workers.engine.lm.base import build_base_model, load_base
from workers.engine.lm.corpus import Fact, Person, facts, generate_people, generic_corpus
from workers.engine.lm.corpus import perturbed_answers as wrong_answers
from workers.engine.lm.finetune import LoraSettings, attach_adapter, train_adapter
from workers.engine.lm.scoring import (
    completion_logprobs,
    exact_match,
    forget_quality,
    generate,
    mia_auc,
    truth_ratio,
)

LORA = LoraSettings(rank=16, alpha=32)
LEARNING_RATE = 1e-2
BATCH_SIZE = 8


@dataclass(frozen=True)
class MethodInputs:
    """What an approximate unlearning method gets: the fine-tuned model and the facts to forget
    and to keep, as text examples."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    forget: Sequence[Fact]
    retain: Sequence[Fact]
    seed: int


def _approximate(name: str) -> Callable[[MethodInputs], torch.nn.Module]:
    def run(inputs: MethodInputs) -> torch.nn.Module:
        model = copy.deepcopy(inputs.model)
        unlearn(
            name,
            model=model,  # type: ignore[arg-type]  # a peft-wrapped causal LM
            tokenizer=inputs.tokenizer,
            forget=[fact.example for fact in inputs.forget],
            retain=[fact.example for fact in inputs.retain],
            seed=inputs.seed,
        )
        return model

    return run


# Approximate methods: name -> a function that returns the unlearned model, leaving its input
# untouched. Rank-one edits are measured by `bench.lm_methods` (they need the fully fine-tuned
# model there).
METHODS: dict[str, Callable[[MethodInputs], torch.nn.Module]] = {
    name: _approximate(name) for name in UNLEARNING_METHODS
}


@dataclass(frozen=True)
class BaseSettings:
    sentences: int = 4000
    vocab_size: int = 1024
    n_layer: int = 4
    n_embd: int = 128
    steps: int = 160


@dataclass(frozen=True)
class Row:
    method: str
    forget_fraction: float
    seed: int
    forgotten_people: int
    forget_exact_match: float
    forget_probability: float
    retain_exact_match: float
    holdout_exact_match: float
    forget_quality: float
    mia_auc: float
    seconds: float
    time_vs_retrain: float


def _exact_match_rate(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                      questions: Sequence[Fact]) -> float:  # fmt: skip
    hits = [
        exact_match(
            prediction=generate(model=model, tokenizer=tokenizer, prompt=fact.prompt),
            answer=fact.answer,
        )
        for fact in questions
    ]
    return sum(hits) / max(1, len(hits))


def _truth_ratios(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                  questions: Sequence[Fact], people: Sequence[Person]) -> list[float]:  # fmt: skip
    return [
        truth_ratio(
            model=model,
            tokenizer=tokenizer,
            fact=fact,
            perturbed_answers=wrong_answers(fact=fact, people=people, count=4),
        )
        for fact in questions
    ]


def _adapter(*, base: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
             questions: Sequence[Fact], epochs: int, seed: int) -> torch.nn.Module:  # fmt: skip
    model = attach_adapter(model=copy.deepcopy(base), settings=LORA, seed=seed)
    return train_adapter(
        model=model,
        tokenizer=tokenizer,
        examples=[fact.example for fact in questions],
        epochs=epochs,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        seed=seed,
    )


@dataclass(frozen=True)
class Scenario:
    forget_fraction: float
    seed: int
    trained: Sequence[Person]
    forgotten: Sequence[Person]
    forget_facts: Sequence[Fact]
    retain_probe: Sequence[Fact]
    holdout_facts: Sequence[Fact]
    reference_ratios: Sequence[float]
    retrain_seconds: float


def _score(*, method: str, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
           scenario: Scenario, seconds: float) -> Row:  # fmt: skip
    forget_logprobs = completion_logprobs(
        model=model, tokenizer=tokenizer, examples=[f.example for f in scenario.forget_facts]
    )
    holdout_logprobs = completion_logprobs(
        model=model, tokenizer=tokenizer, examples=[f.example for f in scenario.holdout_facts]
    )
    unlearned_ratios = _truth_ratios(model, tokenizer, scenario.forget_facts, scenario.trained)
    return Row(
        method=method,
        forget_fraction=scenario.forget_fraction,
        seed=scenario.seed,
        forgotten_people=len(scenario.forgotten),
        forget_exact_match=_exact_match_rate(model, tokenizer, scenario.forget_facts),
        forget_probability=sum(math.exp(v) for v in forget_logprobs) / len(forget_logprobs),
        retain_exact_match=_exact_match_rate(model, tokenizer, scenario.retain_probe),
        holdout_exact_match=_exact_match_rate(model, tokenizer, scenario.holdout_facts),
        forget_quality=forget_quality(
            truth_ratios_unlearned=unlearned_ratios,
            truth_ratios_retrained=scenario.reference_ratios,
        ),
        mia_auc=mia_auc(member_scores=forget_logprobs, nonmember_scores=holdout_logprobs),
        seconds=seconds,
        time_vs_retrain=seconds / scenario.retrain_seconds,
    )


def _records(people: Sequence[Person]) -> list[TextRecord]:
    return [
        TextRecord(
            record_id=person.person_id * 16 + index,
            example=fact.example,
            subject_id=person.person_id,
        )
        for person in people
        for index, fact in enumerate(facts(person))
    ]


def run(*, people_count: int, forget_fractions: Sequence[float], seeds: Sequence[int],
        epochs: int, shards: int, slices: int, base: BaseSettings,
        retain_sample: int) -> list[Row]:  # fmt: skip
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch:
        directory = build_base_model(
            directory=Path(scratch) / "base",
            seed=0,
            corpus=generic_corpus(sentences=base.sentences, seed=0),
            vocab_size=base.vocab_size,
            n_layer=base.n_layer,
            n_embd=base.n_embd,
            steps=base.steps,
        )
        base_model, tokenizer = load_base(directory=directory)
    for seed in seeds:
        everyone = generate_people(count=people_count + max(1, people_count // 10), seed=seed)
        trained, holdout = everyone[:people_count], everyone[people_count:]
        holdout_facts = [fact for person in holdout for fact in facts(person)]
        started = time.perf_counter()
        original = _adapter(
            base=base_model,
            tokenizer=tokenizer,
            questions=[fact for person in trained for fact in facts(person)],
            epochs=epochs,
            seed=seed,
        )
        original_seconds = time.perf_counter() - started
        sisa = AdapterSisa(
            base=base_model,
            tokenizer=tokenizer,
            config=AdapterSisaConfig(
                shards=shards,
                slices=slices,
                seed=seed,
                # The SISA schedule: R stages together see each record `epochs` times on average.
                stage_epochs=max(1, round(2 * epochs / (slices + 1))),
                learning_rate=LEARNING_RATE,
                batch_size=BATCH_SIZE,
                lora=LORA,
                shard_key="subject",
            ),
        )
        sisa.train(records=_records(trained))
        for fraction in forget_fractions:
            chooser = random.Random(f"bench-lm:{seed}:{fraction}")
            forgotten = chooser.sample(trained, max(1, round(fraction * people_count)))
            forgotten_ids = {person.person_id for person in forgotten}
            retained = [person for person in trained if person.person_id not in forgotten_ids]
            forget_facts = [fact for person in forgotten for fact in facts(person)]
            retain_facts = [fact for person in retained for fact in facts(person)]
            retain_probe = chooser.sample(retain_facts, min(retain_sample, len(retain_facts)))

            started = time.perf_counter()
            retrain = _adapter(
                base=base_model,
                tokenizer=tokenizer,
                questions=retain_facts,
                epochs=epochs,
                seed=seed,
            )
            retrain_seconds = time.perf_counter() - started
            reference_ratios = _truth_ratios(retrain, tokenizer, forget_facts, trained)

            scenario = Scenario(
                forget_fraction=fraction,
                seed=seed,
                trained=trained,
                forgotten=forgotten,
                forget_facts=forget_facts,
                retain_probe=retain_probe,
                holdout_facts=holdout_facts,
                reference_ratios=reference_ratios,
                retrain_seconds=retrain_seconds,
            )

            def row(method: str, model: torch.nn.Module, seconds: float) -> Row:
                return _score(
                    method=method,
                    model=model,
                    tokenizer=tokenizer,
                    scenario=scenario,  # noqa: B023 (called within the iteration only)
                    seconds=seconds,
                )

            rows.append(row("original", original, original_seconds))
            rows.append(row("retrain", retrain, retrain_seconds))
            unlearned = copy.deepcopy(sisa)
            report = unlearned.unlearn(
                erased_record_ids=[record.record_id for record in _records(forgotten)]
            )
            rows.append(row("adapter-sisa", unlearned.ensemble(), report.seconds))
            for name, method in METHODS.items():
                inputs = MethodInputs(
                    model=original,
                    tokenizer=tokenizer,
                    forget=forget_facts,
                    retain=retain_facts,
                    seed=seed,
                )
                started = time.perf_counter()
                model = method(inputs)
                rows.append(row(name, model, time.perf_counter() - started))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lm", description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=200, help="People fine-tuned on.")
    parser.add_argument("--forget", type=float, nargs="+", default=[0.01, 0.05, 0.10],
                        help="Shares of the people to erase.")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=30, help="Fine-tuning epochs.")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--slices", type=int, default=2)
    parser.add_argument("--base-steps", type=int, default=160, help="Base pretraining steps.")
    parser.add_argument("--base-sentences", type=int, default=4000, help="Base corpus size.")
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--retain-sample", type=int, default=60,
                        help="Retained facts asked, at most.")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows here.")
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    rows = run(
        people_count=arguments.people,
        forget_fractions=arguments.forget,
        seeds=arguments.seeds,
        epochs=arguments.epochs,
        shards=arguments.shards,
        slices=arguments.slices,
        base=BaseSettings(
            sentences=arguments.base_sentences,
            vocab_size=arguments.vocab_size,
            n_layer=arguments.n_layer,
            n_embd=arguments.n_embd,
            steps=arguments.base_steps,
        ),
        retain_sample=arguments.retain_sample,
    )
    header = (
        f"{'method':<20} {'forget':>6} {'seed':>4} {'fgt EM':>6} {'fgt p':>6} {'ret EM':>6} "
        f"{'hold EM':>7} {'FQ':>6} {'MIA':>5} {'time/retrain':>12}"
    )
    print(header)
    for row in rows:
        print(
            f"{row.method:<20} {row.forget_fraction:>6.2f} {row.seed:>4} "
            f"{row.forget_exact_match:>6.2f} {row.forget_probability:>6.3f} "
            f"{row.retain_exact_match:>6.2f} {row.holdout_exact_match:>7.2f} "
            f"{row.forget_quality:>6.3f} {row.mia_auc:>5.2f} {row.time_vs_retrain:>12.3f}"
        )
    if arguments.json is not None:
        arguments.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))


if __name__ == "__main__":
    main()
