"""`lethe bench sisa` and `lethe bench approximate` stay wired to the benchmarks in `bench/`,
with their options and JSON output (run here at a toy size)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from app.cli import cli
from bench.approximate_report import read_raw


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


def test_bench_approximate_scores_methods_against_retraining(tmp_path):
    raw = tmp_path / "run.json"
    rows = _invoke(
        *("approximate", "--records", "1000", "--seeds", "0", "--methods", "finetune"),
        *("--forget", "random20", "--models", "2", "--references", "4"),
        # One step too small to move the model: the runs must score as their original does.
        *("--settings", '{"steps": 1, "learning_rate": 1e-9}', "--raw", str(raw)),
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
    ((setup, collected),) = read_raw([str(raw)])
    assert setup.method_settings == '{"steps": 1, "learning_rate": 1e-9}'
    figures = ("forget_acc", "retain_acc", "test_acc")
    original = next(run for run in collected.runs[("random20", "original")] if run["run"] == 0)
    for run in collected.runs[("random20", "finetune")]:
        assert [run[f] for f in figures] == [original[f] for f in figures]


@pytest.mark.parametrize(
    ("methods", "settings", "message"),
    [
        ("finetune", '{"steps": 0}', "steps must be at least 1"),
        ("finetune", '{"noise": 0.5}', "noise"),
        ("finetune", "{steps", "not JSON"),
        ("finetune,npo_distill", '{"steps": 5}', "exactly one method"),
    ],
)
def test_bench_refuses_settings_it_cannot_apply(methods, settings, message):
    result = CliRunner().invoke(
        cli, ["bench", "approximate", "--methods", methods, "--settings", settings]
    )
    assert result.exit_code == 2
    assert message in result.output


def test_runs_written_raw_merge_into_one_report(tmp_path):
    """Two seeds run as two processes report, merged, what one run of both seeds reports."""
    common = ("--records", "1000", "--methods", "finetune", "--forget", "random20")
    common += ("--models", "2", "--references", "4")
    for seed in ("0", "1"):
        _invoke("approximate", *common, "--seeds", seed, "--raw", str(tmp_path / f"{seed}.json"))
    merged = _invoke("approximate-merge", str(tmp_path / "0.json"), str(tmp_path / "1.json"))
    together = _invoke("approximate", *common, "--seeds", "0,1")
    key = lambda row: (row["forget_set"], row["method"]) if "forget_set" in row else row["method"]  # noqa: E731
    by_key = {key(row): row for row in together}
    for row in merged:
        if row["method"] == "references":
            continue  # its cost is a timing
        expected = by_key[key(row)]
        for field in ("runs", "verdicts", "forgetting_score", "forget_acc", "seeds"):
            assert row.get(field) == expected.get(field), (key(row), field)


def test_merge_refuses_runs_made_differently(tmp_path):
    common = ("--records", "1000", "--methods", "finetune", "--forget", "random20")
    for seed, references in (("0", "4"), ("1", "5")):
        _invoke(
            "approximate", *common, "--models", "2", "--references", references,
            "--seeds", seed, "--raw", str(tmp_path / f"{seed}.json"),
        )  # fmt: skip
    files = [str(tmp_path / "0.json"), str(tmp_path / "1.json")]
    assert CliRunner().invoke(cli, ["bench", "approximate-merge", *files]).exit_code == 2
    with pytest.raises(ValueError, match=r"1\.json: made with other settings"):
        read_raw(files)
    ((setup, _),) = read_raw(files[:1])
    assert not dataclasses.replace(setup, method_settings='{"noise": 0.5}').mergeable_with(setup)


def test_bench_refuses_an_unknown_device():
    result = CliRunner().invoke(cli, ["bench", "approximate", "--device", "tpu"])
    assert result.exit_code == 2
    assert "device must be one of" in result.output


def test_bench_lm_scores_every_method_against_the_retrained_reference(tmp_path):
    out = tmp_path / "lm.json"
    result = CliRunner().invoke(
        cli,
        [
            *("bench", "lm", "--people", "4", "--forget", "0.25", "--seeds", "0"),
            *("--epochs", "2", "--shards", "2", "--slices", "1", "--base-steps", "5"),
            *("--base-sentences", "100", "--vocab-size", "300", "--n-layer", "1"),
            *("--n-embd", "32", "--threads", "1", "--json", str(out)),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {row["method"]: row for row in json.loads(out.read_text())}
    assert set(rows) == {"original", "retrain", "adapter-sisa", "gradient_difference", "npo"}
    assert rows["retrain"]["forget_quality"] == 1.0 and rows["retrain"]["time_vs_retrain"] == 1.0
    for row in rows.values():
        assert row["forgotten_people"] == 1
        assert 0.0 <= row["mia_auc"] <= 1.0 and 0.0 <= row["forget_probability"] <= 1.0


def test_the_gate_summary_says_so_when_no_run_was_decided():
    from bench.approximate_report import Collected, gate_summary, gate_table

    collected = Collected(
        runs={
            ("random20", "retrain"): [{"verdict": "inconclusive"}],
            ("random20", "control"): [{"verdict": "inconclusive"}],
            ("random20", "original"): [{"verdict": "remembers"}, {"verdict": "inconclusive"}],
        }
    )
    rows = gate_summary(dataset="digits", collected=collected)
    by_method = {row["method"]: row for row in rows}
    assert by_method["gate:retrain"]["fail_where_decided"] is None
    assert by_method["gate:original"]["fail_where_decided"] == 1.0
    json.dumps(rows, allow_nan=False)  # strict JSON, as `--json` prints it
    table = gate_table(dataset="digits", rows=rows)
    assert "| random20 | retrain | 2 | 0 | 0 | 0 | 2 (100%) | \u2014 |" in table
    assert "| random20 | original | 2 | 0 | 1 | 0 | 1 (50%) | 100% |" in table
