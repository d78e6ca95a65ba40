"""`lethe bench sisa` and `lethe bench approximate` stay wired to the benchmarks in `bench/`,
with their options and JSON output (run here at a toy size)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from app.cli import cli


def _invoke(*args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["bench", *args, "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_bench_sisa_reports_speedup_and_exactness():
    (report,) = _invoke(
        *("sisa", "--shards", "2", "--slices", "2", "--records", "300"),
        *("--unlearn-samples", "2", "--batch", "2", "--epochs", "1"),
    )
    assert report["shards"] == 2 and report["slices"] == 2
    assert report["exact"] is True
    assert {"speedup", "theoretical_speedup", "unlearn_seconds_mean"} <= report.keys()


def test_bench_approximate_scores_methods_against_retraining():
    rows = _invoke(
        *("approximate", "--records", "1000", "--seeds", "0", "--methods", "finetune"),
        *("--forget", "random20", "--models", "2", "--references", "4"),
    )
    by_method = {row["method"]: row for row in rows}
    assert {"original", "retrain", "finetune"} <= by_method.keys()
    assert {"gate:original", "gate:retrain", "gate:finetune"} <= by_method.keys()
    assert all(row["dataset"] == "synthetic-purchase" for row in rows)
    for name in ("original", "retrain", "finetune"):
        assert 0 <= by_method[name]["forgetting_score"] <= 1
        assert by_method[name]["models"] == 2
    # The retrain row's gate verdicts count the control's retrains too.
    assert by_method["gate:retrain"]["runs"] == 4
    assert by_method["references"]["cpu_s"] > 0
