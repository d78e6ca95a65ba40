"""`lethe bench approximate`: approximate unlearning methods against retraining from scratch.

For each seed: train the original model and its reference models (`build_references`, the
per-record gate's cost, paid once per model version), and with `--models N` also N-1 more
originals with other seeds. For each forget set: retrain N models without it and N more (the
control), and run every method N times (method seeds 0..N-1) from the original through
`unlearn_and_verify`, the function the unlearning jobs call, with the references. Every model
gets the per-record gate's verdict, forget, retain and test accuracy and the pooled membership
AUC; each group of N gets the competition's forgetting score F against the N retrained models
(`bench/forgetting_score.py`); the retrain row's F is the control's, N retrains against N others.

torch and the engine are imported inside the command: the API image, which registers the CLI,
has no torch.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import typer

from bench import approximate_report as report
from bench._machine import machine

FORGET_SETS = ("random1pct", "subjects20")
_RANDOM_N = re.compile(r"^random(\d+)$")
_SEED_OFFSETS = {"original": 1, "retrain": 2, "control": 3}


def approximate(
    dataset: str = typer.Option(
        "synthetic-purchase", "--dataset", help="synthetic-purchase or digits."
    ),
    forget: list[str] = typer.Option(
        list(FORGET_SETS),
        "--forget",
        help="random1pct (1% of training records at random), subjects20 (every record of 20 "
        "random subjects) or randomN (N records at random, e.g. random60); repeat the option.",
    ),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Seeds: '0,1,2' or a range '0-2'."),
    methods: str = typer.Option(
        "", "--methods", help="Comma-separated method names (default: every registered one)."
    ),
    records: int = typer.Option(
        7000, "--records", min=1000, help="synthetic-purchase records; 70% are for training."
    ),
    settings: str = typer.Option(
        "",
        "--settings",
        help="Settings for the one method in --methods, as in a policy's `settings` (JSON, e.g. "
        "'{\"noise\": 0.5}'); the rest keep their defaults. For comparing settings on tuning "
        "seeds.",
    ),
    models: int = typer.Option(
        16,
        "--models",
        min=1,
        help="Models per group: originals, retrains, controls and runs of each method. F needs "
        "at least 2 (the competition's comparisons use 16 or more).",
    ),
    references: int = typer.Option(
        16, "--references", min=4, help="Reference models of the per-record gate."
    ),
    threads: int = typer.Option(
        1,
        "--threads",
        min=0,
        help="torch intra-op threads; 0 keeps torch's default. One thread gives steady timings "
        "on a small machine that runs other work.",
    ),
    device: str = typer.Option(
        "cpu",
        "--device",
        help="cpu, cuda, cuda:N or auto (CUDA when present). On CUDA, times are wall seconds.",
    ),
    raw: str = typer.Option(
        "",
        "--raw",
        help="Also write every model's figures to this JSON file, for `lethe bench "
        "approximate-merge` to combine runs made in parallel (one per seed, say).",
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON object per forget set and row, one per line."
    ),
) -> None:
    """Benchmark approximate unlearning methods against retraining from scratch."""
    import torch

    from workers.engine.approximate.settings import method_names
    from workers.engine.device import configure
    from workers.engine.verification.settings import GateSettings

    if threads:
        torch.set_num_threads(threads)
    try:
        target = configure(device=device)
    except (ValueError, RuntimeError) as problem:
        raise typer.BadParameter(str(problem), param_hint="--device") from None
    seed_list = _parse_seeds(seeds)
    unknown_sets = sorted(s for s in forget if s not in FORGET_SETS and not _RANDOM_N.match(s))
    if unknown_sets:
        raise typer.BadParameter(f"unknown forget sets {unknown_sets}", param_hint="--forget")
    chosen = [m.strip() for m in methods.split(",") if m.strip()] or method_names()
    unknown_methods = sorted(set(chosen) - set(method_names()))
    if unknown_methods:
        raise typer.BadParameter(f"unknown methods {unknown_methods}", param_hint="--methods")
    method_settings = _method_settings(text=settings, methods=chosen)
    if dataset not in ("synthetic-purchase", "digits"):
        raise typer.BadParameter(f"unknown dataset {dataset!r}", param_hint="--dataset")
    say: Callable[[str], None] = (lambda _line: None) if json_output else typer.echo
    gate = GateSettings(references=references)
    collected = report.Collected()
    started = time.perf_counter()
    for seed in seed_list:
        _one_seed(
            dataset=dataset,
            records=records,
            seed=seed,
            warm_up=seed == seed_list[0],
            forget=forget,
            method_settings=method_settings,
            models=models,
            gate=gate,
            device=target,
            collected=collected,
            say=say,
        )
    setup = report.Setup(
        dataset=dataset,
        device=str(target),
        machine=machine(target),
        torch=torch.__version__,
        references=references,
        method_settings=settings.strip(),
    )
    if raw:
        report.write_raw(path=raw, setup=setup, collected=collected)
    for line in report.render(
        setup=setup, collected=collected, json_output=json_output, forget_sets=forget
    ):
        typer.echo(line)
    say(f"Total {time.perf_counter() - started:.0f} s.")


def _one_seed(
    *,
    dataset: str,
    records: int,
    seed: int,
    warm_up: bool,
    forget: list[str],
    method_settings: dict[str, Any],
    models: int,
    gate: Any,
    device: Any,
    collected: report.Collected,
    say: Callable[[str], None],
) -> None:
    from workers.engine import data as engine_data
    from workers.engine.architectures import get_architecture
    from workers.engine.artifacts import LocalArtifactStore
    from workers.engine.training import train_model
    from workers.engine.verification.references import build_references, load_references

    if dataset == "synthetic-purchase":
        data, spec = (
            engine_data.synthetic_purchase(records=records, seed=seed),
            get_architecture("mlp"),
        )
    else:
        data, spec = engine_data.digits(seed=seed), get_architecture("cnn")

    def fit(records_to_fit: Any, model_seed: int) -> Any:
        return train_model(
            spec=spec,
            data=records_to_fit,
            num_classes=data.num_classes,
            seed=model_seed,
            device=device,
        )

    if warm_up:
        fit(data.train.subset(slice(0, 256)), seed)  # first-call costs out of the timings
    original = fit(data.train, seed)
    with tempfile.TemporaryDirectory() as root:
        store = LocalArtifactStore(root=root)
        wall, cpu = time.perf_counter(), time.process_time()
        build_references(
            spec=spec,
            data=data.train,
            num_classes=data.num_classes,
            settings=gate,
            store=store,
            prefix="references",
            device=device,
        )
        collected.reference_costs.append((time.process_time() - cpu, time.perf_counter() - wall))
        reference_set = load_references(store=store, prefix="references", spec=spec, device=device)
    originals = [original] + [
        fit(data.train, _model_seed("original", seed, i)) for i in range(1, models)
    ]
    for forget_set in forget:
        forget_records = _choose_forget_set(
            kind=forget_set, train=data.train, rng=np.random.default_rng(seed + 1)
        )
        retain = data.train.without(forget_records.record_ids)
        timed = [_timed(fit, retain, _model_seed("retrain", seed, i)) for i in range(models)]
        retrains = [model for model, _, _ in timed]
        retrain_cpu = float(np.mean([c for _, c, _ in timed]))
        retrain_wall = float(np.mean([w for _, _, w in timed]))
        controls = (
            [fit(retain, _model_seed("control", seed, i)) for i in range(models)]
            if models >= 2
            else []
        )
        context = report.Context(
            seed=seed,
            forget_set=forget_set,
            forget=forget_records,
            retain=retain,
            holdout=data.holdout,
            test=data.test,
            references=reference_set,
            gate=gate,
            retrain_cpu_s=retrain_cpu,
            retrain_wall_s=retrain_wall,
        )
        collected.observe(context=context, row="original", models=originals, times=None)
        collected.observe(
            context=context, row="retrain", models=retrains, times=[(c, w) for _, c, w in timed]
        )
        if controls:
            collected.observe(context=context, row="control", models=controls, times=None)
        for name, settings in method_settings.items():
            _run_method(
                name=name,
                settings=settings,
                original=original,
                models=models,
                context=context,
                collected=collected,
            )
        collected.score(context=context)
        say(
            f"seed {seed} {forget_set}: {len(forget_records)} forget records, retrain "
            f"{retrain_wall:.1f} s wall, {retrain_cpu:.1f} s CPU"
        )


def _method_settings(*, text: str, methods: list[str]) -> dict[str, Any]:
    """Each chosen method's settings: its defaults, or `--settings` parsed and checked as a
    policy's settings for the single chosen method."""
    from workers.engine.approximate.policy import ApproximatePolicy, PolicyError
    from workers.engine.approximate.settings import settings_type

    if not text.strip():
        return {name: settings_type(name)() for name in methods}
    if len(methods) != 1:
        raise typer.BadParameter("needs exactly one method in --methods", param_hint="--settings")
    try:
        overrides = json.loads(text)
        policy = ApproximatePolicy.from_dict({"method": methods[0], "settings": overrides})
    except json.JSONDecodeError as problem:
        raise typer.BadParameter(f"not JSON: {problem.msg}", param_hint="--settings") from None
    except PolicyError as problem:
        raise typer.BadParameter(str(problem), param_hint="--settings") from None
    return {methods[0]: policy.settings}


def _run_method(
    *,
    name: str,
    settings: Any,
    original: Any,
    models: int,
    context: report.Context,
    collected: report.Collected,
) -> None:
    from workers.engine.approximate.policy import ApproximatePolicy
    from workers.engine.approximate.workflow import unlearn_and_verify

    outcomes = [
        unlearn_and_verify(
            model=original,
            forget=context.forget,
            retain=context.retain,
            holdout=context.holdout,
            test=context.test,
            policy=ApproximatePolicy(
                method=name,
                settings=dataclasses.replace(settings, seed=run),
                verification=context.gate,
            ),
            references=context.references,
        )
        for run in range(models)
    ]
    collected.observe(
        context=context,
        row=name,
        models=[o.model for o in outcomes],
        times=[(o.timings.unlearn_cpu_s, o.timings.unlearn_s) for o in outcomes],
        verdicts=[o.verification for o in outcomes],
    )


def _timed(fit: Callable[[Any, int], Any], records: Any, seed: int) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    model = fit(records, seed)
    return model, time.process_time() - cpu, time.perf_counter() - wall


def _model_seed(kind: str, seed: int, index: int) -> int:
    """Seed of model `index` of a group; the first original and retrain share the data seed."""
    if index == 0 and kind != "control":
        return seed
    return _SEED_OFFSETS[kind] * 1_000_000 + seed * 1_000 + index


def _parse_seeds(text: str) -> list[int]:
    try:
        if "-" in text.strip().lstrip("-"):
            low, high = text.split("-", 1)
            return list(range(int(low), int(high) + 1))
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"cannot read seeds {text!r}", param_hint="--seeds") from None


def _choose_forget_set(*, kind: str, train: Any, rng: np.random.Generator) -> Any:
    """1% or N of the training records at random, or every training record of 20 subjects."""
    match = _RANDOM_N.match(kind)
    if kind == "random1pct" or match:
        count = max(1, len(train) // 100) if match is None else min(int(match[1]), len(train) - 1)
        return train.subset(np.sort(rng.choice(len(train), size=count, replace=False)))
    subjects = rng.choice(np.unique(train.subject_ids), size=20, replace=False)
    return train.of_subjects(subjects)


if __name__ == "__main__":  # where only numpy, torch and typer are installed (a GPU machine)
    typer.run(approximate)
