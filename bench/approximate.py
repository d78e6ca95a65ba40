"""`lethe bench approximate`: approximate unlearning methods against retraining from scratch.

For each seed: train the original model, pick a forget set, retrain from scratch without it (the
reference), run every registered method with its default settings through the same
`unlearn_and_verify` the jobs call, and compare forget, retain and test accuracy, the
membership-inference AUC (forget vs holdout) and time with the reference. A last row checks the
gate itself: how often it passes records that no model trained on (test records of the forget
set's size against the holdout, scored by the original model), which is the verdict's size.

torch and the engine are imported inside the command: the API image, which registers the CLI,
has no torch.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import typer

if TYPE_CHECKING:
    from torch import nn

FORGET_SETS = ("random1pct", "subjects20")
ACCURACY_GOAL = 0.02
AUC_GOAL = 0.03
TIME_GOAL = 0.10


def approximate(
    dataset: str = typer.Option(
        "synthetic-purchase", "--dataset", help="synthetic-purchase or digits."
    ),
    forget: list[str] = typer.Option(
        list(FORGET_SETS),
        "--forget",
        help="random1pct (1% of training records at random) or subjects20 (every record of 20 "
        "random subjects); repeat the option for both (the default).",
    ),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Seeds: '0,1,2' or a range '0-2'."),
    methods: str = typer.Option(
        "", "--methods", help="Comma-separated method names (default: every registered one)."
    ),
    records: int = typer.Option(
        30_000, "--records", min=1000, help="synthetic-purchase records; 70% are for training."
    ),
    null_draws: int = typer.Option(
        200, "--null-draws", min=0, help="Draws of unseen records to check the gate's size."
    ),
    threads: int = typer.Option(
        1,
        "--threads",
        min=0,
        help="torch intra-op threads; 0 keeps torch's default. One thread gives steady timings "
        "on a small machine that runs other work.",
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON object per forget set and method, one per line."
    ),
) -> None:
    """Benchmark approximate unlearning methods against retraining from scratch."""
    import torch

    from workers.engine import data as engine_data
    from workers.engine.approximate.catalog import method_names
    from workers.engine.approximate.policy import ApproximatePolicy
    from workers.engine.approximate.workflow import (
        measure_utility,
        split_holdout,
        unlearn_and_verify,
    )
    from workers.engine.architectures import get_architecture
    from workers.engine.mia import (
        VerificationSettings,
        membership_test,
        model_membership_scores,
    )
    from workers.engine.training import train_model

    if threads:
        torch.set_num_threads(threads)
    seed_list = _parse_seeds(seeds)
    unknown_sets = sorted(set(forget) - set(FORGET_SETS))
    if unknown_sets:
        raise typer.BadParameter(f"unknown forget sets {unknown_sets}", param_hint="--forget")
    chosen_methods = [m.strip() for m in methods.split(",") if m.strip()] or method_names()
    unknown_methods = sorted(set(chosen_methods) - set(method_names()))
    if unknown_methods:
        raise typer.BadParameter(f"unknown methods {unknown_methods}", param_hint="--methods")
    if dataset not in ("synthetic-purchase", "digits"):
        raise typer.BadParameter(f"unknown dataset {dataset!r}", param_hint="--dataset")
    say: Callable[[str], None] = (lambda _line: None) if json_output else typer.echo
    verification = VerificationSettings()
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    gate_passes: dict[str, list[float]] = {}
    started = time.perf_counter()

    for seed in seed_list:
        if dataset == "synthetic-purchase":
            data = engine_data.synthetic_purchase(records=records, seed=seed)
            spec = get_architecture("mlp")
        else:
            data = engine_data.digits(seed=seed)
            spec = get_architecture("cnn")

        def train(
            records_to_fit: Any, *, spec: Any = spec, seed: int = seed, data: Any = data
        ) -> nn.Module:
            return train_model(
                spec=spec,
                data=records_to_fit,
                num_classes=data.num_classes,
                seed=seed,
                device="cpu",
            )

        if seed == seed_list[0]:
            train(data.train.subset(slice(0, 256)))  # warm-up: first-call costs out of timings
        original = train(data.train)
        # Judge every row on the records the gate of `unlearn_and_verify` judges on.
        _, gate_holdout = split_holdout(holdout=data.holdout)
        holdout_scores = model_membership_scores(
            model=original, features=gate_holdout.features, labels=gate_holdout.labels
        )
        test_scores = model_membership_scores(
            model=original, features=data.test.features, labels=data.test.labels
        )
        for forget_set in forget:
            forget_records = _choose_forget_set(
                kind=forget_set, train=data.train, rng=np.random.default_rng(seed + 1)
            )
            retain = data.train.without(forget_records.record_ids)
            wall, cpu = time.perf_counter(), time.process_time()
            reference = train(retain)
            retrain_s, retrain_cpu_s = time.perf_counter() - wall, time.process_time() - cpu

            def evaluate(
                model: Any,
                forget_records: Any = forget_records,
                retain: Any = retain,
                data: Any = data,
                gate_holdout: Any = gate_holdout,
            ) -> tuple[Any, Any]:
                utility = measure_utility(
                    model=model, forget=forget_records, retain=retain, test=data.test
                )
                test = membership_test(
                    model=model, forget=forget_records, holdout=gate_holdout, settings=verification
                )
                return utility, test

            rows = {
                "original": (*evaluate(original), 0.0, 0.0),
                "retrain": (*evaluate(reference), retrain_s, retrain_cpu_s),
            }
            for name in chosen_methods:
                outcome = unlearn_and_verify(
                    model=original,
                    forget=forget_records,
                    retain=retain,
                    holdout=data.holdout,
                    test=data.test,
                    policy=ApproximatePolicy(method=name, verification=verification),
                )
                rows[name] = (
                    outcome.utility_after,
                    outcome.verification,
                    outcome.timings.unlearn_s,
                    outcome.timings.unlearn_cpu_s,
                )
            for name, (utility, test, wall_s, cpu_s) in rows.items():
                runs.setdefault((forget_set, name), []).append(
                    {
                        "seed": seed,
                        "n_forget": len(forget_records),
                        "forget_acc": utility.forget_accuracy,
                        "retain_acc": utility.retain_accuracy,
                        "test_acc": utility.test_accuracy,
                        "mia_auc": test.auc,
                        "verdict": test.verdict,
                        "wall_s": wall_s,
                        "cpu_s": cpu_s,
                        "retrain_wall_s": retrain_s,
                        "retrain_cpu_s": retrain_cpu_s,
                    }
                )
            gate_passes.setdefault(forget_set, []).extend(
                _gate_pass_rate(
                    test_scores=test_scores,
                    holdout_scores=holdout_scores,
                    size=len(forget_records),
                    draws=null_draws,
                    rng=np.random.default_rng(seed + 2),
                    settings=verification,
                )
            )
            say(
                f"seed {seed} {forget_set}: {len(forget_records)} forget records, retrain "
                f"{retrain_s:.1f} s wall, {retrain_cpu_s:.1f} s CPU"
            )

    summaries = [
        _summarize(
            dataset=dataset,
            forget_set=forget_set,
            method=name,
            runs=method_runs,
            reference=runs[(forget_set, "retrain")],
        )
        for (forget_set, name), method_runs in runs.items()
    ]
    if json_output:
        for summary in summaries:
            typer.echo(json.dumps(summary))
        for forget_set, passes in gate_passes.items():
            typer.echo(json.dumps(_gate_summary(dataset, forget_set, passes)))
        return
    for forget_set in forget:
        table = [s for s in summaries if s["forget_set"] == forget_set]
        say("")
        say(_markdown_table(dataset=dataset, forget_set=forget_set, rows=table))
        if gate_passes.get(forget_set):
            gate = _gate_summary(dataset, forget_set, gate_passes[forget_set])
            say(
                f"\nGate on never-trained records ({gate['draws']} draws of "
                f"{forget_set}-sized sets): passes {gate['pass_rate']:.1%}."
            )
    say(f"\nTotal {time.perf_counter() - started:.0f} s.")


def _parse_seeds(text: str) -> list[int]:
    try:
        if "-" in text.strip().lstrip("-"):
            low, high = text.split("-", 1)
            return list(range(int(low), int(high) + 1))
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"cannot read seeds {text!r}", param_hint="--seeds") from None


def _choose_forget_set(*, kind: str, train: Any, rng: np.random.Generator) -> Any:
    """1% of the training records at random, or every training record of 20 random subjects."""
    if kind == "random1pct":
        count = max(1, len(train) // 100)
        return train.subset(np.sort(rng.choice(len(train), size=count, replace=False)))
    subjects = rng.choice(np.unique(train.subject_ids), size=20, replace=False)
    return train.of_subjects(subjects)


def _gate_pass_rate(
    *,
    test_scores: Any,
    holdout_scores: Any,
    size: int,
    draws: int,
    rng: np.random.Generator,
    settings: Any,
) -> list[float]:
    """1.0 or 0.0 per draw: did the gate pass `size` never-trained (test) records?"""
    from workers.engine.mia import membership_test_from_scores

    outcomes = []
    for draw in range(draws):
        chosen = rng.choice(len(test_scores), size=min(size, len(test_scores)), replace=False)
        result = membership_test_from_scores(
            forget_scores=test_scores[chosen],
            holdout_scores=holdout_scores,
            settings=dataclasses.replace(settings, seed=draw),
        )
        outcomes.append(1.0 if result.verdict == "pass" else 0.0)
    return outcomes


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _summarize(
    *,
    dataset: str,
    forget_set: str,
    method: str,
    runs: list[dict[str, Any]],
    reference: list[dict[str, Any]],
) -> dict[str, Any]:
    """Mean and standard deviation over seeds of each figure and of its gap to the retrain of
    the same seed; the time ratio is the method's time over that retrain's."""
    summary: dict[str, Any] = {
        "dataset": dataset,
        "forget_set": forget_set,
        "method": method,
        "seeds": [run["seed"] for run in runs],
        "n_forget": statistics.fmean(run["n_forget"] for run in runs),
    }
    for key in ("forget_acc", "retain_acc", "test_acc", "mia_auc"):
        summary[key], summary[f"{key}_sd"] = _mean_sd([run[key] for run in runs])
        gaps = [run[key] - ref[key] for run, ref in zip(runs, reference, strict=True)]
        summary[f"gap_{key}"], summary[f"gap_{key}_sd"] = _mean_sd(gaps)
    for key in ("wall_s", "cpu_s"):
        summary[key], summary[f"{key}_sd"] = _mean_sd([run[key] for run in runs])
    summary["time_ratio"], summary["time_ratio_sd"] = _mean_sd(
        [run["cpu_s"] / run["retrain_cpu_s"] for run in runs]
    )
    summary["wall_time_ratio"], _ = _mean_sd(
        [run["wall_s"] / run["retrain_wall_s"] for run in runs]
    )
    verdicts = [run["verdict"] for run in runs]
    summary["verdicts"] = verdicts
    summary["verdict"] = Counter(verdicts).most_common(1)[0][0]
    summary["pass_rate"] = verdicts.count("pass") / len(verdicts)
    missed = [
        label
        for label, ok in (
            ("forget", abs(summary["gap_forget_acc"]) <= ACCURACY_GOAL),
            ("retain", abs(summary["gap_retain_acc"]) <= ACCURACY_GOAL),
            ("test", abs(summary["gap_test_acc"]) <= ACCURACY_GOAL),
            ("AUC", abs(summary["gap_mia_auc"]) <= AUC_GOAL),
            ("time", summary["time_ratio"] <= TIME_GOAL),
        )
        if not ok
    ]
    summary["goals_missed"] = missed
    summary["meets_goals"] = not missed
    return summary


def _gate_summary(dataset: str, forget_set: str, passes: list[float]) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "forget_set": forget_set,
        "method": "gate_on_unseen_records",
        "draws": len(passes),
        "pass_rate": statistics.fmean(passes) if passes else float("nan"),
    }


def _count(verdicts: list[str]) -> str:
    return ", ".join(f"{n} {verdict}" for verdict, n in Counter(verdicts).most_common())


def _goals(row: dict[str, Any]) -> str:
    if row["method"] in ("original", "retrain"):
        return "(reference)" if row["method"] == "retrain" else "—"
    return "met" if row["meets_goals"] else "missed: " + ", ".join(row["goals_missed"])


def _markdown_table(*, dataset: str, forget_set: str, rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{dataset}, {forget_set} (mean ± sd over seeds; gap = method - retrain)",
        "",
        "| method | forget acc (gap) | retain acc (gap) | test acc (gap) | MIA AUC (gap) "
        "| verdicts | CPU s (ratio) | wall s (ratio) | goals |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} "
            + "".join(
                f"| {row[key]:.3f} ± {row[key + '_sd']:.3f} ({row['gap_' + key]:+.3f}) "
                for key in ("forget_acc", "retain_acc", "test_acc", "mia_auc")
            )
            + f"| {_count(row['verdicts'])} "
            + f"| {row['cpu_s']:.2f} ({row['time_ratio']:.3f}) "
            + f"| {row['wall_s']:.2f} ({row['wall_time_ratio']:.3f}) "
            + f"| {_goals(row)} |"
        )
    return "\n".join(lines)
