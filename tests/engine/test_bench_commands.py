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


def test_bench_approximate_compares_methods_with_retraining():
    rows = _invoke(
        *("approximate", "--records", "1000", "--seeds", "0", "--methods", "finetune"),
        *("--forget", "subjects20", "--null-draws", "0"),
    )
    methods = {row["method"] for row in rows}
    assert {"original", "retrain", "finetune", "gate_on_unseen_records"} <= methods
    assert all(row["dataset"] == "synthetic-purchase" for row in rows)
