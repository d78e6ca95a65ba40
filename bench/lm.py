"""Erasing people from a fine-tuned language model: the retrained reference against each method.

    python -m bench.lm --people 200 --forget 0.01 0.05 0.10 --seeds 0

A base GPT-2 is pretrained on generic text (`workers.engine.lm.base`), then fine-tuned with LoRA
on the question-answer facts of `--people` fictitious people; a further tenth of that many people
is never trained on (the holdout). For each forget fraction and seed, that share of the people is
erased, and (with `--single-person`) so is one person alone; every row is scored on the same
questions:

- `original`: the adapter trained on everybody, before any erasure;
- `retrain`: an adapter trained from scratch without the forgotten people, the reference;
- `adapter-sisa`: S shard adapters on the same base, trained slice by slice, then `unlearn`ed
  (exact: it equals its own retraining without the forgotten records);
- one row per entry of `METHODS`, an approximate method applied to `original`.

Columns: exact match and mean per-token probability of the forgotten people's answers (and the
retrained reference's exact match on them beside it), exact match on a sample of the retained
people's questions and on the holdout's (exact match is teacher-forced greedy decoding: every
answer token is the model's top choice), forget quality (KS p-value of the forgotten facts' truth
ratios against `retrain`'s), the membership AUC of forgotten against holdout facts (0.5: they
look unseen), and the time taken as a share of training `retrain`. The one-person rows have
`forgotten_people` 1.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench._lm_unlearning import (
    DEFAULT_SETTINGS,
    UNLEARNING_METHODS,
    UnlearningSettings,
    unlearn,
)
from workers.engine.lm.adapter_sisa import AdapterSisa, AdapterSisaConfig, TextRecord
from workers.engine.lm.base import build_base_model, load_base
from workers.engine.lm.corpus import Fact, Person, facts, generate_people, generic_corpus
from workers.engine.lm.corpus import perturbed_answers as wrong_answers
from workers.engine.lm.finetune import LoraSettings, attach_adapter, train_adapter
from workers.engine.lm.losses import encode_examples, greedy_matches
from workers.engine.lm.scoring import completion_logprobs, forget_quality, mia_auc, truth_ratio


@dataclass(frozen=True)
class FinetuneSettings:
    """The LoRA fine-tune: `original`, `retrain` and every SISA shard use it."""

    rank: int = 32
    alpha: int = 64
    learning_rate: float = 5e-4
    epochs: int = 20
    batch_size: int = 4

    @property
    def lora(self) -> LoraSettings:
        return LoraSettings(rank=self.rank, alpha=self.alpha)


@dataclass(frozen=True)
class SisaSettings:
    shards: int = 8
    slices: int = 2


@dataclass(frozen=True)
class MethodInputs:
    """What an approximate unlearning method gets: the fine-tuned model and the facts to forget
    and to keep, as text examples."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    forget: Sequence[Fact]
    retain: Sequence[Fact]
    seed: int
    settings: UnlearningSettings | None = None


def _approximate(name: str) -> Callable[[MethodInputs], torch.nn.Module]:
    def run(inputs: MethodInputs) -> torch.nn.Module:
        model = copy.deepcopy(inputs.model)
        unlearn(
            name,
            model=model,  # type: ignore[arg-type]  # a peft-wrapped causal LM
            tokenizer=inputs.tokenizer,
            forget=[fact.example for fact in inputs.forget],
            retain=[fact.example for fact in inputs.retain],
            settings=inputs.settings,
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
    steps: int = 800


@dataclass(frozen=True)
class Settings:
    """Everything a run's figures depend on besides the people, the fractions and the seeds."""

    base: BaseSettings = field(default_factory=BaseSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    sisa: SisaSettings = field(default_factory=SisaSettings)
    methods: dict[str, UnlearningSettings] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    retain_sample: int = 120
    single_person: bool = True


@dataclass(frozen=True)
class Row:
    method: str
    forget_fraction: float
    seed: int
    forgotten_people: int
    forget_exact_match: float
    retrain_forget_exact_match: float
    forget_probability: float
    retain_exact_match: float
    holdout_exact_match: float
    forget_quality: float
    mia_auc: float
    seconds: float
    time_vs_retrain: float


def _exact_match_rate(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                      questions: Sequence[Fact]) -> float:  # fmt: skip
    """Share of `questions` whose every answer token is the model's greedy choice (teacher-forced:
    greedy decoding would begin with the answer), in batches, which an ensemble of many shards
    needs: decoding token by token through every shard is many times slower."""
    if not questions:
        return 0.0
    with torch.no_grad():
        batch = encode_examples(tokenizer=tokenizer, examples=[fact.example for fact in questions])
        hits = greedy_matches(model=model, batch=batch)  # type: ignore[arg-type]
    return float(hits.float().mean())


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
             questions: Sequence[Fact], settings: FinetuneSettings,
             seed: int) -> torch.nn.Module:  # fmt: skip
    model = attach_adapter(model=copy.deepcopy(base), settings=settings.lora, seed=seed)
    return train_adapter(
        model=model,
        tokenizer=tokenizer,
        examples=[fact.example for fact in questions],
        epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        batch_size=settings.batch_size,
        seed=seed,
    )


@dataclass(frozen=True)
class Scenario:
    forget_fraction: float
    seed: int
    trained: Sequence[Person]
    forgotten: Sequence[Person]
    forget_facts: Sequence[Fact]
    retain_facts: Sequence[Fact]
    retain_probe: Sequence[Fact]
    holdout_facts: Sequence[Fact]
    retrain: torch.nn.Module
    reference_ratios: Sequence[float]
    retrain_forget_exact_match: float
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
        retrain_forget_exact_match=scenario.retrain_forget_exact_match,
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


@dataclass(frozen=True)
class Trained:
    """One seed's people and the models trained on all of them."""

    seed: int
    base: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    trained: Sequence[Person]
    holdout_facts: Sequence[Fact]
    original: torch.nn.Module
    original_seconds: float
    sisa: AdapterSisa


def _build_base(*, settings: BaseSettings) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    with tempfile.TemporaryDirectory() as scratch:
        directory = build_base_model(
            directory=Path(scratch) / "base",
            seed=0,
            corpus=generic_corpus(sentences=settings.sentences, seed=0),
            vocab_size=settings.vocab_size,
            n_layer=settings.n_layer,
            n_embd=settings.n_embd,
            steps=settings.steps,
        )
        return load_base(directory=directory)


def _sisa(*, base: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, settings: Settings,
          seed: int) -> AdapterSisa:  # fmt: skip
    finetune = settings.finetune
    slices = settings.sisa.slices
    return AdapterSisa(
        base=base,
        tokenizer=tokenizer,
        config=AdapterSisaConfig(
            shards=settings.sisa.shards,
            slices=slices,
            seed=seed,
            # The SISA schedule: R stages together see each record `epochs` times on average.
            stage_epochs=max(1, round(2 * finetune.epochs / (slices + 1))),
            learning_rate=finetune.learning_rate,
            batch_size=finetune.batch_size,
            lora=finetune.lora,
            shard_key="subject",
        ),
    )


def train_seed(*, base: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, people_count: int,
               settings: Settings, seed: int, with_sisa: bool = True) -> Trained:  # fmt: skip
    """The seed's people, the adapter trained on all of them and (unless not `with_sisa`) the
    trained SISA shards."""
    everyone = generate_people(count=people_count + max(1, people_count // 10), seed=seed)
    trained, holdout = everyone[:people_count], everyone[people_count:]
    started = time.perf_counter()
    original = _adapter(
        base=base,
        tokenizer=tokenizer,
        questions=[fact for person in trained for fact in facts(person)],
        settings=settings.finetune,
        seed=seed,
    )
    original_seconds = time.perf_counter() - started
    sisa = _sisa(base=base, tokenizer=tokenizer, settings=settings, seed=seed)
    if with_sisa:
        sisa.train(records=_records(trained))
    return Trained(
        seed=seed,
        base=base,
        tokenizer=tokenizer,
        trained=trained,
        holdout_facts=[fact for person in holdout for fact in facts(person)],
        original=original,
        original_seconds=original_seconds,
        sisa=sisa,
    )


def scenario(*, trained: Trained, forgotten: Sequence[Person], forget_fraction: float,
             settings: Settings) -> Scenario:  # fmt: skip
    """Erasing `forgotten`: the facts asked and the reference retrained without them."""
    forgotten_ids = {person.person_id for person in forgotten}
    retained = [person for person in trained.trained if person.person_id not in forgotten_ids]
    forget_facts = [fact for person in forgotten for fact in facts(person)]
    retain_facts = [fact for person in retained for fact in facts(person)]
    chooser = random.Random(f"bench-lm:probe:{trained.seed}:{sorted(forgotten_ids)}")
    started = time.perf_counter()
    retrain = _adapter(
        base=trained.base,
        tokenizer=trained.tokenizer,
        questions=retain_facts,
        settings=settings.finetune,
        seed=trained.seed,
    )
    retrain_seconds = time.perf_counter() - started
    return Scenario(
        forget_fraction=forget_fraction,
        seed=trained.seed,
        trained=trained.trained,
        forgotten=forgotten,
        forget_facts=forget_facts,
        retain_facts=retain_facts,
        retain_probe=chooser.sample(retain_facts, min(settings.retain_sample, len(retain_facts))),
        holdout_facts=trained.holdout_facts,
        retrain=retrain,
        reference_ratios=_truth_ratios(retrain, trained.tokenizer, forget_facts, trained.trained),
        retrain_forget_exact_match=_exact_match_rate(retrain, trained.tokenizer, forget_facts),
        retrain_seconds=retrain_seconds,
    )


def method_row(*, name: str, trained: Trained, scenario: Scenario,
               settings: UnlearningSettings | None) -> Row:  # fmt: skip
    """`name` applied to the original adapter, scored."""
    inputs = MethodInputs(
        model=trained.original,
        tokenizer=trained.tokenizer,
        forget=scenario.forget_facts,
        retain=scenario.retain_facts,
        seed=trained.seed,
        settings=settings,
    )
    started = time.perf_counter()
    model = METHODS[name](inputs)
    seconds = time.perf_counter() - started
    return _score(
        method=name, model=model, tokenizer=trained.tokenizer, scenario=scenario, seconds=seconds
    )


def _sisa_row(*, trained: Trained, scenario: Scenario) -> Row:
    unlearned = copy.deepcopy(trained.sisa)
    report = unlearned.unlearn(
        erased_record_ids=[record.record_id for record in _records(scenario.forgotten)]
    )
    return _score(
        method="adapter-sisa",
        model=unlearned.ensemble(),
        tokenizer=trained.tokenizer,
        scenario=scenario,
        seconds=report.seconds,
    )


def scenario_rows(*, trained: Trained, scenario: Scenario, settings: Settings,
                  methods: Sequence[str], with_sisa: bool) -> list[Row]:  # fmt: skip
    """Every row of one erasure: the original, the reference, SISA and each method."""
    tokenizer = trained.tokenizer
    rows = [
        _score(
            method="original",
            model=trained.original,
            tokenizer=tokenizer,
            scenario=scenario,
            seconds=trained.original_seconds,
        ),
        _score(
            method="retrain",
            model=scenario.retrain,
            tokenizer=tokenizer,
            scenario=scenario,
            seconds=scenario.retrain_seconds,
        ),
    ]
    if with_sisa:
        rows.append(_sisa_row(trained=trained, scenario=scenario))
    for name in methods:
        rows.append(
            method_row(
                name=name,
                trained=trained,
                scenario=scenario,
                settings=settings.methods.get(name),
            )
        )
    return rows


def _erasures(*, trained: Trained, people_count: int, forget_fractions: Sequence[float],
              single_person: bool) -> list[tuple[float, list[Person]]]:  # fmt: skip
    """(forget fraction, the people it erases) per erasure of the seed: one person alone first
    when `single_person` and no fraction erases exactly one already."""
    erasures: list[tuple[float, list[Person]]] = []
    for fraction in forget_fractions:
        chooser = random.Random(f"bench-lm:{trained.seed}:{fraction}")
        count = max(1, round(fraction * people_count))
        erasures.append((fraction, chooser.sample(list(trained.trained), count)))
    if single_person and all(len(forgotten) != 1 for _, forgotten in erasures):
        chooser = random.Random(f"bench-lm:{trained.seed}:one")
        erasures.insert(0, (1 / people_count, chooser.sample(list(trained.trained), 1)))
    return erasures


def run(
    *,
    people_count: int,
    forget_fractions: Sequence[float],
    seeds: Sequence[int],
    settings: Settings,
    methods: Sequence[str] = UNLEARNING_METHODS,
    with_sisa: bool = True,
    report: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Every row for every seed; `report` hears each row as it is scored."""
    base, tokenizer = _build_base(settings=settings.base)
    rows: list[Row] = []
    for seed in seeds:
        trained = train_seed(base=base, tokenizer=tokenizer, people_count=people_count,
                             settings=settings, seed=seed, with_sisa=with_sisa)  # fmt: skip
        for fraction, forgotten in _erasures(
            trained=trained,
            people_count=people_count,
            forget_fractions=forget_fractions,
            single_person=settings.single_person,
        ):
            erasure = scenario(trained=trained, forgotten=forgotten, forget_fraction=fraction,
                               settings=settings)  # fmt: skip
            for row in scenario_rows(trained=trained, scenario=erasure, settings=settings,
                                     methods=methods, with_sisa=with_sisa):  # fmt: skip
                rows.append(row)
                if report is not None:
                    report(row)
    return rows


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    tune, method, base = FinetuneSettings(), DEFAULT_SETTINGS, BaseSettings()
    add = parser.add_argument
    add("--people", type=int, default=200, help="People fine-tuned on.")
    add("--forget", type=float, nargs="+", default=[0.01, 0.05, 0.10],
        help="Shares of the people to erase.")  # fmt: skip
    add("--single-person", action=argparse.BooleanOptionalAction, default=True,
        help="Also erase one person alone, per seed (unless a fraction erases one).")  # fmt: skip
    add("--seeds", type=int, nargs="+", default=[0])
    add("--epochs", type=int, default=tune.epochs, help="Fine-tuning epochs.")
    add("--lora-rank", type=int, default=tune.rank)
    add("--lora-alpha", type=int, default=tune.alpha)
    add("--learning-rate", type=float, default=tune.learning_rate, help="Fine-tuning rate.")
    add("--batch-size", type=int, default=tune.batch_size, help="Fine-tuning batch size.")
    add("--shards", type=int, default=SisaSettings().shards)
    add("--slices", type=int, default=SisaSettings().slices)
    add("--sisa", action=argparse.BooleanOptionalAction, default=True,
        help="Train and score adapter SISA.")  # fmt: skip
    add("--methods", nargs="*", choices=UNLEARNING_METHODS, default=list(UNLEARNING_METHODS),
        help="Approximate methods to score.")  # fmt: skip
    for name, prefix in (("npo", "npo"), ("gradient_difference", "gd")):
        add(f"--{prefix}-steps", type=int, default=method[name].steps)
        add(f"--{prefix}-learning-rate", type=float, default=method[name].learning_rate)
        add(f"--{prefix}-retain-weight", type=float, default=method[name].retain_weight)
    add("--npo-beta", type=float, default=method["npo"].beta)
    add("--base-steps", type=int, default=base.steps, help="Base pretraining steps.")
    add("--base-sentences", type=int, default=base.sentences, help="Base corpus size.")
    add("--vocab-size", type=int, default=base.vocab_size)
    add("--n-layer", type=int, default=base.n_layer)
    add("--n-embd", type=int, default=base.n_embd)
    add("--retain-sample", type=int, default=Settings().retain_sample,
        help="Retained facts asked, at most.")  # fmt: skip
    add("--threads", type=int, default=1, help="torch intra-op threads.")
    add("--json", type=Path, default=None, help="Also write the rows here.")


def settings_from(*, arguments: argparse.Namespace) -> Settings:
    """The run's settings from parsed command-line arguments."""
    methods = {
        name: UnlearningSettings(
            steps=getattr(arguments, f"{prefix}_steps"),
            learning_rate=getattr(arguments, f"{prefix}_learning_rate"),
            retain_weight=getattr(arguments, f"{prefix}_retain_weight"),
            beta=arguments.npo_beta if name == "npo" else DEFAULT_SETTINGS[name].beta,
            batch_size=DEFAULT_SETTINGS[name].batch_size,
        )
        for name, prefix in (("npo", "npo"), ("gradient_difference", "gd"))
    }
    return Settings(
        base=BaseSettings(
            sentences=arguments.base_sentences,
            vocab_size=arguments.vocab_size,
            n_layer=arguments.n_layer,
            n_embd=arguments.n_embd,
            steps=arguments.base_steps,
        ),
        finetune=FinetuneSettings(
            rank=arguments.lora_rank,
            alpha=arguments.lora_alpha,
            learning_rate=arguments.learning_rate,
            epochs=arguments.epochs,
            batch_size=arguments.batch_size,
        ),
        sisa=SisaSettings(shards=arguments.shards, slices=arguments.slices),
        methods=methods,
        retain_sample=arguments.retain_sample,
        single_person=arguments.single_person,
    )


HEADER = (
    f"{'method':<20} {'forget':>6} {'n':>3} {'seed':>4} {'fgt EM':>6} {'ref EM':>6} {'fgt p':>6} "
    f"{'ret EM':>6} {'hold EM':>7} {'FQ':>6} {'MIA':>5} {'time/retrain':>12}"
)


def format_row(*, row: Row) -> str:
    return (
        f"{row.method:<20} {row.forget_fraction:>6.3f} {row.forgotten_people:>3} {row.seed:>4} "
        f"{row.forget_exact_match:>6.2f} {row.retrain_forget_exact_match:>6.2f} "
        f"{row.forget_probability:>6.3f} {row.retain_exact_match:>6.2f} "
        f"{row.holdout_exact_match:>7.2f} {row.forget_quality:>6.3f} {row.mia_auc:>5.2f} "
        f"{row.time_vs_retrain:>12.3f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lm", description=__doc__.split("\n")[0])
    _add_arguments(parser)
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    print(HEADER, flush=True)
    scored: list[Row] = []

    def report(row: Row) -> None:
        # The JSON file is rewritten after every row, so an interrupted run keeps what it scored.
        scored.append(row)
        print(format_row(row=row), flush=True)
        if arguments.json is not None:
            arguments.json.write_text(json.dumps([asdict(done) for done in scored], indent=2))

    run(
        people_count=arguments.people,
        forget_fractions=arguments.forget,
        seeds=arguments.seeds,
        settings=settings_from(arguments=arguments),
        methods=arguments.methods,
        with_sisa=arguments.sisa,
        report=report,
    )


if __name__ == "__main__":
    main()
