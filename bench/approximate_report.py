"""What `lethe bench approximate` measures on each model, and its summaries and tables.

Rows: `original` (the original models), `retrain` (models retrained without the forget set),
`control` (N more retrains: the retrain row's F is theirs against the retrain row), and one per
method. Every figure is a mean over the seeds; a gap is, per seed, the row's mean minus the
retrain row's mean. The goals: F at least half the control's, forget, retain and test accuracy
within 2 points of the retrain's, at most 10 % of a retrain's CPU time.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.forgetting_score import forgetting_score

ACCURACY_GOAL = 0.02
TIME_GOAL = 0.10
F_GOAL = 0.5  # of the control's F
_FIGURES = ("forget_acc", "retain_acc", "test_acc", "mia_auc")


RAW_SCHEME = "lethe-bench-approximate-raw-v1"


@dataclass(frozen=True)
class Setup:
    """Where and how a run was made: runs are merged only when these agree (but the machine's
    words, which name core counts and kernels)."""

    dataset: str
    device: str
    machine: str
    torch: str
    references: int
    method_settings: str = ""  # `--settings`, as given

    def mergeable_with(self, other: Setup) -> bool:
        return (self.dataset, self.device, self.references, self.method_settings) == (
            other.dataset,
            other.device,
            other.references,
            other.method_settings,
        )


@dataclass(frozen=True, eq=False)
class Context:
    """One seed and forget set: the records, the references, the retrain's cost."""

    seed: int
    forget_set: str
    forget: Any
    retain: Any
    holdout: Any
    test: Any
    references: Any
    gate: Any
    retrain_cpu_s: float
    retrain_wall_s: float


@dataclass
class Collected:
    """Per-model runs, forget-record scores and forgetting scores, as the benchmark goes."""

    runs: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    scores: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    forgetting: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    reference_costs: list[tuple[float, float]] = field(default_factory=list)

    def observe(
        self,
        *,
        context: Context,
        row: str,
        models: list[Any],
        times: list[tuple[float, float]] | None,
        verdicts: list[Any] | None = None,
    ) -> None:
        """Measure each model of one row on this seed's forget set."""
        from workers.engine.approximate.workflow import measure_utility
        from workers.engine.mia import membership_test, model_membership_scores
        from workers.engine.verification.gate import verify_forgetting

        c = context
        for index, model in enumerate(models):
            utility = measure_utility(model=model, forget=c.forget, retain=c.retain, test=c.test)
            verdict = (
                verdicts[index]
                if verdicts
                else verify_forgetting(
                    model=model,
                    forget=c.forget,
                    holdout=c.holdout,
                    references=c.references,
                    settings=c.gate,
                )
            )
            cpu_s, wall_s = times[index] if times else (0.0, 0.0)
            self.runs.setdefault((c.forget_set, row), []).append(
                {
                    "seed": c.seed,
                    "run": index,
                    "n_forget": len(c.forget),
                    "forget_acc": utility.forget_accuracy,
                    "retain_acc": utility.retain_accuracy,
                    "test_acc": utility.test_accuracy,
                    "mia_auc": membership_test(model=model, forget=c.forget, holdout=c.holdout).auc,
                    "verdict": verdict.verdict,
                    "memory": verdict.memory.estimate,
                    "overshoot": verdict.overshoot.estimate,
                    "retained": None if verdict.retained is None else verdict.retained.estimate,
                    "retained_low": None if verdict.retained is None else verdict.retained.low,
                    "retained_high": None if verdict.retained is None else verdict.retained.high,
                    "cpu_s": cpu_s,
                    "wall_s": wall_s,
                    "retrain_cpu_s": c.retrain_cpu_s,
                    "retrain_wall_s": c.retrain_wall_s,
                }
            )
        self.scores[(c.forget_set, row)] = np.stack(
            [
                model_membership_scores(model=m, features=c.forget.features, labels=c.forget.labels)
                for m in models
            ]
        )

    def score(self, *, context: Context) -> None:
        """F of every row of this seed's forget set against its retrain row (for `retrain`, the
        control's); needs two models or more per row."""
        fs = context.forget_set
        retrained = self.scores[(fs, "retrain")]
        if retrained.shape[0] < 2:
            return
        reference = _seed_runs(self.runs[(fs, "retrain")], context.seed)
        for (forget_set, row), scores in self.scores.items():
            if forget_set != fs or row == "retrain":
                continue
            runs = _seed_runs(self.runs[(fs, row)], context.seed)
            result = forgetting_score(
                unlearned_scores=scores,
                retrained_scores=retrained,
                unlearned_retain_accuracy=_mean(runs, "retain_acc"),
                retrained_retain_accuracy=_mean(reference, "retain_acc"),
                unlearned_test_accuracy=_mean(runs, "test_acc"),
                retrained_test_accuracy=_mean(reference, "test_acc"),
            )
            shown = "retrain" if row == "control" else row
            self.forgetting.setdefault((fs, shown), []).append(
                {"seed": context.seed, **result.to_dict()}
            )
        self.scores = {key: value for key, value in self.scores.items() if key[0] != fs}


def _seed_runs(runs: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    return [run for run in runs if run["seed"] == seed]


def _mean(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.fmean(run[key] for run in runs))


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(*, dataset: str, collected: Collected, clock: str = "cpu") -> list[dict[str, Any]]:
    """One JSON-able row per forget set and row (the control is folded into `retrain`).
    `time_ratio` and the time goal use `clock` seconds: `cpu` (process CPU time, steady on a
    busy machine) or `wall` (on a GPU, where CPU time is not the work)."""
    rows = []
    for (forget_set, row), runs in collected.runs.items():
        if row == "control":
            continue
        reference = collected.runs[(forget_set, "retrain")]
        seeds = sorted({run["seed"] for run in runs})
        summary: dict[str, Any] = {
            "dataset": dataset,
            "forget_set": forget_set,
            "method": row,
            "seeds": seeds,
            "models": len(runs) // len(seeds),
            "n_forget": statistics.fmean(run["n_forget"] for run in runs),
        }
        for key in _FIGURES:
            summary[key], summary[f"{key}_sd"] = _mean_sd([run[key] for run in runs])
            gaps = [
                _mean(_seed_runs(runs, s), key) - _mean(_seed_runs(reference, s), key)
                for s in seeds
            ]
            summary[f"gap_{key}"], summary[f"gap_{key}_sd"] = _mean_sd(gaps)
        summary["cpu_s"], _ = _mean_sd([run["cpu_s"] for run in runs])
        summary["wall_s"], _ = _mean_sd([run["wall_s"] for run in runs])
        summary["clock"] = clock
        summary["time_ratio"], summary["time_ratio_sd"] = _mean_sd(
            [run[f"{clock}_s"] / run[f"retrain_{clock}_s"] for run in runs]
        )
        summary["wall_time_ratio"], _ = _mean_sd(
            [run["wall_s"] / run["retrain_wall_s"] for run in runs]
        )
        verdicts = [run["verdict"] for run in runs]
        summary["verdicts"] = dict(Counter(verdicts))
        summary["pass_rate"] = verdicts.count("pass") / len(verdicts)
        summary["memory"], _ = _mean_sd([run["memory"] for run in runs])
        shares = [run["retained"] for run in runs if run.get("retained") is not None]
        summary["retained"] = _mean_sd(shares)[0] if shares else None
        scores = collected.forgetting.get((forget_set, row), [])
        if scores:
            summary["forgetting_score"], summary["forgetting_score_sd"] = _mean_sd(
                [s["F"] for s in scores]
            )
            summary["final_score"], summary["final_score_sd"] = _mean_sd(
                [s["final"] for s in scores]
            )
            summary["forgetting_scores"] = scores
        rows.append(summary)
    for summary in rows:
        summary["goals_missed"] = _goals_missed(summary, rows)
        summary["meets_goals"] = not summary["goals_missed"]
    return rows


def _goals_missed(summary: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    control = next(
        (r for r in rows if r["forget_set"] == summary["forget_set"] and r["method"] == "retrain"),
        None,
    )
    checks = [
        ("forget", abs(summary["gap_forget_acc"]) <= ACCURACY_GOAL),
        ("retain", abs(summary["gap_retain_acc"]) <= ACCURACY_GOAL),
        ("test", abs(summary["gap_test_acc"]) <= ACCURACY_GOAL),
        ("time", summary["time_ratio"] <= TIME_GOAL),
    ]
    if "forgetting_score" in summary and control is not None and "forgetting_score" in control:
        checks.insert(0, ("F", summary["forgetting_score"] >= F_GOAL * control["forgetting_score"]))
    return [label for label, ok in checks if not ok]


def gate_summary(*, dataset: str, collected: Collected) -> list[dict[str, Any]]:
    """Per forget set and row: the gate's verdicts, its detection rate where it decides (for the
    original and every method) and its pass rate (retrained models: retrain and control)."""
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (forget_set, row), runs in collected.runs.items():
        shown = "retrain" if row == "control" else row
        grouped[(forget_set, shown)].extend(run["verdict"] for run in runs)
    out = []
    for (forget_set, row), verdicts in grouped.items():
        counts = Counter(verdicts)
        decided = len(verdicts) - counts["inconclusive"]
        out.append(
            {
                "dataset": dataset,
                "forget_set": forget_set,
                "method": f"gate:{row}",
                "runs": len(verdicts),
                "verdicts": dict(counts),
                "inconclusive_share": counts["inconclusive"] / len(verdicts),
                "pass_share": counts["pass"] / len(verdicts),
                # None, not NaN, when every run was inconclusive: the rows are strict JSON.
                "pass_where_decided": counts["pass"] / decided if decided else None,
                "fail_where_decided": 1 - counts["pass"] / decided if decided else None,
            }
        )
    return out


def reference_row(*, dataset: str, collected: Collected, clock: str = "cpu") -> dict[str, Any]:
    """What building the reference models cost per seed (one model version), also in retrains
    of the full training set without the forget set (mean over every forget set's retrains),
    in `clock` seconds."""
    retrain = statistics.fmean(
        run[f"retrain_{clock}_s"] for runs in collected.runs.values() for run in runs
    )
    cpu = statistics.fmean(c for c, _ in collected.reference_costs)
    wall = statistics.fmean(w for _, w in collected.reference_costs)
    return {
        "dataset": dataset,
        "method": "references",
        "cpu_s": cpu,
        "wall_s": wall,
        "retrains": (cpu if clock == "cpu" else wall) / retrain,
    }


def _verdicts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _goals(row: dict[str, Any]) -> str:
    if row["method"] in ("original", "retrain"):
        return "(control)" if row["method"] == "retrain" else "—"
    return "met" if row["meets_goals"] else "missed: " + ", ".join(row["goals_missed"])


def method_table(*, dataset: str, forget_set: str, rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per row of one forget set."""
    clock = next((r["clock"] for r in rows), "cpu")
    lines = [
        f"{dataset}, {forget_set} (mean ± sd; gap = row - retrain, per seed)",
        "",
        "| method | F (final) | forget acc (gap) | retain acc (gap) | test acc (gap) "
        f"| pooled AUC (gap) | gate verdicts | {clock} s (ratio) | goals |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in (r for r in rows if r["forget_set"] == forget_set):
        score = (
            f"{row['forgetting_score']:.3f} ± {row['forgetting_score_sd']:.3f} "
            f"({row['final_score']:.3f})"
            if "forgetting_score" in row
            else "—"
        )
        lines.append(
            f"| {row['method']} | {score} "
            + "".join(f"| {row[key]:.3f} ({row['gap_' + key]:+.3f}) " for key in _FIGURES)
            + f"| {_verdicts(row['verdicts'])} "
            + f"| {row[row['clock'] + '_s']:.2f} ({row['time_ratio']:.3f}) | {_goals(row)} |"
        )
    return "\n".join(lines)


def gate_table(*, dataset: str, rows: list[dict[str, Any]]) -> str:
    """Markdown: the gate's verdicts per forget set and row."""
    lines = [
        f"{dataset}: the per-record gate",
        "",
        "| forget set | models | runs | pass | remembers | over_forgot | inconclusive "
        "| not pass, where decided |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in sorted(rows, key=lambda r: (r["forget_set"], r["method"])):
        v = row["verdicts"]
        failed = row["fail_where_decided"]
        lines.append(
            f"| {row['forget_set']} | {row['method'].removeprefix('gate:')} | {row['runs']} "
            f"| {v.get('pass', 0)} | {v.get('remembers', 0)} | {v.get('over_forgot', 0)} "
            f"| {v.get('inconclusive', 0)} ({row['inconclusive_share']:.0%}) "
            f"| {'—' if failed is None else f'{failed:.0%}'} |"
        )
    return "\n".join(lines)


def write_raw(*, path: str, setup: Setup, collected: Collected) -> None:
    """Every model's figures and every seed's forgetting scores, as JSON."""
    document = {
        "scheme": RAW_SCHEME,
        "setup": asdict(setup),
        "runs": [[fs, row, runs] for (fs, row), runs in collected.runs.items()],
        "forgetting": [[fs, row, scores] for (fs, row), scores in collected.forgetting.items()],
        "reference_costs": collected.reference_costs,
    }
    partial = Path(f"{path}.partial")
    partial.write_text(json.dumps(document))
    partial.replace(path)  # whole or absent, even if the process is stopped while writing


def read_raw(paths: Iterable[str]) -> list[tuple[Setup, Collected]]:
    """Runs written by `write_raw`, merged per dataset; a ValueError names the file that does
    not fit (another scheme, or another device or reference count for the same dataset)."""
    merged: dict[str, tuple[Setup, Collected]] = {}
    for path in paths:
        document = json.loads(Path(path).read_text())
        if document.get("scheme") != RAW_SCHEME:
            raise ValueError(f"{path}: not a raw file of `lethe bench approximate --raw`")
        setup = Setup(**document["setup"])
        known, collected = merged.setdefault(setup.dataset, (setup, Collected()))
        if not known.mergeable_with(setup):
            raise ValueError(
                f"{path}: made with other settings than the other {setup.dataset} runs"
            )
        for fs, row, runs in document["runs"]:
            collected.runs.setdefault((fs, row), []).extend(runs)
        for fs, row, scores in document["forgetting"]:
            collected.forgetting.setdefault((fs, row), []).extend(scores)
        collected.reference_costs.extend(tuple(cost) for cost in document["reference_costs"])
    return list(merged.values())


def render(
    *, setup: Setup, collected: Collected, json_output: bool, forget_sets: Iterable[str]
) -> list[str]:
    """The benchmark's output: JSON lines, or a table per forget set and the gate's table."""
    clock = "wall" if setup.device.startswith("cuda") else "cpu"
    rows = summarize(dataset=setup.dataset, collected=collected, clock=clock)
    gates = gate_summary(dataset=setup.dataset, collected=collected)
    cost = reference_row(dataset=setup.dataset, collected=collected, clock=clock)
    if json_output:
        return [json.dumps({**row, "device": setup.device}) for row in [*rows, *gates, cost]]
    lines = []
    for forget_set in forget_sets:
        lines += ["", method_table(dataset=setup.dataset, forget_set=forget_set, rows=rows)]
    lines += ["", gate_table(dataset=setup.dataset, rows=gates)]
    lines.append(
        f"\nReference models ({setup.references}): {cost[clock + '_s']:.1f} s {clock} "
        f"per model version, {cost['retrains']:.1f} retrains' worth. Device "
        f"{setup.device}; machine: {setup.machine}; torch {setup.torch}."
    )
    return lines
