"""`lethe bench approximate-grid`: `lethe bench approximate` as parallel processes, merged.

One process per dataset and seed (each trains its own originals and references, so processes
share nothing), run through a queue on one device, then reported together as
`lethe bench approximate-merge` would. With `--processes 0` it first measures how many
processes the device serves best (training throughput with 1, 4, 8 and 12 at once).
`--deadline` stops launching new jobs after that many seconds and stops running ones at
1.15 times it, so a run on a borrowed machine returns whatever finished; jobs go seed by seed.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import typer

from bench import approximate_report as report

_PROBE = """
import time, torch
from workers.engine import data as d
from workers.engine.architectures import get_architecture
from workers.engine.device import configure
from workers.engine.training import train_model
torch.set_num_threads(1)
device = configure(device={device!r})
data = d.synthetic_purchase(records=7000, seed=0)
spec = get_architecture("mlp")
warm = data.train.subset(slice(0, 256))
train_model(spec=spec, data=warm, num_classes=100, seed=0, device=device)
start = time.perf_counter()
train_model(spec=spec, data=data.train, num_classes=100, seed=1, device=device)
print(time.perf_counter() - start)
"""


def _probe(*, device: str) -> int:
    """The number of processes that trains the most models per second on `device`."""
    best, best_rate = 1, 0.0
    for count in (1, 4, 8, 12):
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _PROBE.format(device=device)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        seconds = [float(p.communicate()[0].split()[-1]) for p in procs]
        rate = count / max(seconds)
        typer.echo(
            f"probe: {count} processes, one model each in {max(seconds):.2f} s "
            f"({rate:.2f} models/s; {time.perf_counter() - started:.0f} s with start-up)"
        )
        if rate > best_rate * 1.1:
            best, best_rate = count, rate
    return best


def approximate_grid(
    out: Path = typer.Option(..., "--out", help="Folder for each job's raw file and log."),
    datasets: str = typer.Option("synthetic-purchase,digits", "--datasets"),
    seeds: str = typer.Option("0-9", "--seeds", help="'0-9' or '0,1,2'."),
    forget: list[str] = typer.Option(["random20", "random60", "random200"], "--forget"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    processes: int = typer.Option(0, "--processes", min=0, help="0: measure the best count."),
    deadline: float = typer.Option(0.0, "--deadline", min=0, help="Seconds; 0 for none."),
    models: int = typer.Option(16, "--models", min=1),
    references: int = typer.Option(16, "--references", min=4),
    methods: str = typer.Option("", "--methods"),
) -> None:
    """Run `lethe bench approximate` per dataset and seed in parallel; merge."""
    from bench.approximate import _parse_seeds

    out.mkdir(parents=True, exist_ok=True)
    count = processes or _probe(device=device)
    typer.echo(f"running {count} processes on {device}")
    jobs = list(itertools.product(_parse_seeds(seeds), datasets.split(",")))
    started = time.perf_counter()
    running: list[tuple[subprocess.Popen[bytes], str]] = []
    while jobs or running:
        elapsed = time.perf_counter() - started
        if deadline and elapsed > deadline * 1.15:
            for proc, name in running:
                proc.kill()
                typer.echo(f"stopped at the deadline: {name}")
            break
        for proc, name in [(p, n) for p, n in running if p.poll() is not None]:
            typer.echo(f"{name}: exit {proc.returncode}")
            running.remove((proc, name))
        while jobs and len(running) < count and not (deadline and elapsed > deadline):
            seed, dataset = jobs.pop(0)
            name = f"{dataset}-s{seed}"
            command = [
                sys.executable, "-m", "bench.approximate", "--dataset", dataset,
                "--seeds", str(seed), *[f"--forget={f}" for f in forget], "--device", device,
                "--models", str(models), "--references", str(references),
                "--methods", methods, "--threads", "1", "--raw", str(out / f"{name}.json"),
            ]  # fmt: skip
            log = (out / f"{name}.log").open("wb")
            running.append((subprocess.Popen(command, stdout=log, stderr=log), name))
        time.sleep(0.5)
    finished = len(list(out.glob("*.json")))
    typer.echo(f"{finished} jobs finished, {len(jobs)} not started, in {elapsed:.0f} s")
    for setup, collected in report.read_raw(str(p) for p in sorted(out.glob("*.json"))):
        lines = report.render(
            setup=setup, collected=collected, json_output=False, forget_sets=forget
        )
        rows = report.render(setup=setup, collected=collected, json_output=True, forget_sets=forget)
        (out / f"{setup.dataset}.md").write_text("\n".join(lines) + "\n")
        (out / f"{setup.dataset}.jsonl").write_text("\n".join(rows) + "\n")
        for line in lines:
            typer.echo(line)


if __name__ == "__main__":
    typer.run(approximate_grid)
