"""`lethe bench approximate-merge`: one report from runs of `lethe bench approximate --raw`.

Seeds are independent, so a long benchmark can run as one process per seed (or per seed and
forget set), on one machine's cores or on several machines, and be reported as one. Needs
neither torch nor the engine.
"""

from __future__ import annotations

import typer

from bench import approximate_report as report


def approximate_merge(
    raw: list[str] = typer.Argument(..., help="Raw files written with --raw."),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON object per forget set and row, one per line."
    ),
) -> None:
    """Report runs of `lethe bench approximate --raw` together, as if they were one run."""
    try:
        merged = report.read_raw(raw)
    except (OSError, ValueError, KeyError, TypeError) as problem:
        raise typer.BadParameter(str(problem), param_hint="RAW") from None
    for setup, collected in merged:
        forget_sets = list(dict.fromkeys(fs for fs, _ in collected.runs))
        for line in report.render(
            setup=setup, collected=collected, json_output=json_output, forget_sets=forget_sets
        ):
            typer.echo(line)


if __name__ == "__main__":
    typer.run(approximate_merge)
