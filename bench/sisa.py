"""`lethe bench sisa`: SISA against monolithic training on the same data.

Trains a monolithic model and a SISA model, unlearns single records and one batch, and reports
accuracy, training time, unlearning time and the speedup over full retraining beside the expected
3RS/(2R+1). "Full retraining" is retraining the deployed model (every SISA shard, from scratch) on
the remaining records; the monolithic model's training time is reported beside it.

torch and the engine are imported inside the command: the API image, which registers the CLI,
has no torch.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from bench._machine import machine

if TYPE_CHECKING:
    from workers.engine.sisa import ProgressCallback, ProgressEvent


def sisa(
    shards: int = typer.Option(16, "--shards", min=1, help="Shards S."),
    slices: int = typer.Option(8, "--slices", min=1, help="Slices per shard R."),
    records: int = typer.Option(
        15_000, "--records", min=100, help="Records generated; 70% are training records."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for data, training and record choice."),
    batch: int = typer.Option(10, "--batch", min=1, help="K records erased in one batch."),
    unlearn_samples: int = typer.Option(
        16,
        "--unlearn-samples",
        min=1,
        help="Single records unlearned one at a time, at random, spread evenly over slices.",
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Plain-training epochs (default: the architecture's)."
    ),
    architecture: str = typer.Option("mlp", "--architecture", help="Registered architecture."),
    dataset: str = typer.Option(
        "synthetic-purchase", "--dataset", help="synthetic-purchase or digits."
    ),
    threads: int = typer.Option(
        1,
        "--threads",
        min=0,
        help="torch intra-op threads; 0 keeps torch's default. One thread gives steady timings "
        "on a small machine that runs other work.",
    ),
    device_name: str = typer.Option(
        "auto", "--device", help="auto (CUDA when present), cpu, cuda or cuda:N."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Benchmark SISA training and exact unlearning against monolithic training."""
    import numpy as np
    import torch

    from workers.engine import data as engine_data
    from workers.engine.aggregation import ensemble_accuracy
    from workers.engine.architectures import get_architecture
    from workers.engine.artifacts import LocalArtifactStore
    from workers.engine.checkpoints import CheckpointStore, find_tainted_checkpoints
    from workers.engine.device import configure
    from workers.engine.partition import assign_shards, assign_slices
    from workers.engine.sisa import SisaConfig, train_sisa
    from workers.engine.training import accuracy, train_model
    from workers.engine.unlearning import unlearn, verify_exact

    if threads:
        torch.set_num_threads(threads)
    if dataset == "synthetic-purchase":
        data = engine_data.synthetic_purchase(records=records, seed=seed)
    elif dataset == "digits":
        data = engine_data.digits(seed=seed)
    else:
        raise typer.BadParameter(f"unknown dataset {dataset!r}", param_hint="--dataset")
    spec = get_architecture(architecture)
    if epochs is not None:
        spec = spec.with_hyperparameters(epochs=epochs)
    config = SisaConfig(shards=shards, slices=slices, seed=seed)
    try:
        device = configure(device=device_name)
    except (ValueError, RuntimeError) as problem:
        raise typer.BadParameter(str(problem), param_hint="--device") from None
    train = data.train
    say: Callable[[str], None] = (lambda _line: None) if json_output else typer.echo

    with tempfile.TemporaryDirectory(prefix="lethe-bench-") as root:
        _warm_up(spec=spec, data=train, num_classes=data.num_classes, device=device, root=root)
        say(f"{data.name}: {len(train)} training records, {len(data.test)} test, device {device}")

        with Stopwatch() as monolithic_time:
            monolithic = train_model(
                spec=spec, data=train, num_classes=data.num_classes, seed=seed, device=device
            )
        accuracy_monolithic = accuracy(model=monolithic, data=data.test)
        say(f"monolithic: {monolithic_time}, test accuracy {accuracy_monolithic:.4f}")

        checkpoints = CheckpointStore(store=LocalArtifactStore(root=f"{root}/deployed"))
        with (
            _progress_bar(description="SISA training", disable=json_output) as on_progress,
            Stopwatch() as sisa_time,
        ):
            trained = train_sisa(
                spec=spec,
                data=train,
                num_classes=data.num_classes,
                config=config,
                checkpoints=checkpoints,
                device=device,
                progress=on_progress,
            )
        shard_models = [trained.shard_models[shard] for shard in sorted(trained.shard_models)]
        accuracy_sisa = ensemble_accuracy(models=shard_models, data=data.test, mode="mean")
        accuracy_vote = ensemble_accuracy(models=shard_models, data=data.test, mode="vote")
        say(
            f"SISA S={shards} R={slices}: {sisa_time}, test accuracy {accuracy_sisa:.4f} "
            f"(mean of softmax), {accuracy_vote:.4f} (majority vote)"
        )

        rng = np.random.default_rng(seed + 1)
        chosen = _choose_records(
            slice_of=assign_slices(records=train, slices=slices, seed=seed),
            count=unlearn_samples,
            rng=rng,
        )
        single: list[Stopwatch] = []
        by_start_slice: dict[int, list[float]] = {}
        all_exact = True
        for position in chosen:
            erased = [int(train.record_ids[position])]
            with Stopwatch() as unlearn_time:
                result = unlearn(
                    model=trained.model,
                    spec=spec,
                    data=train,
                    erased_record_ids=erased,
                    checkpoints=checkpoints,
                    device=device,
                )
            single.append(unlearn_time)
            (start_slice,) = result.affected_slices.values()
            by_start_slice.setdefault(start_slice, []).append(unlearn_time.wall)
            all_exact &= not verify_exact(
                model=result.model, checkpoints=checkpoints, erased_record_ids=erased
            )
        unlearn_wall = statistics.fmean(t.wall for t in single)
        unlearn_cpu = statistics.fmean(t.cpu for t in single)
        say(f"single-record unlearning: {unlearn_wall:.3f} s mean over {len(chosen)} records")

        remaining = train.without(train.record_ids[chosen[:1]])
        scratch = CheckpointStore(store=LocalArtifactStore(root=f"{root}/scratch"))
        with (
            _progress_bar(description="full retraining", disable=json_output) as on_progress,
            Stopwatch() as full_time,
        ):
            train_sisa(
                spec=spec,
                data=remaining,
                num_classes=data.num_classes,
                config=config,
                checkpoints=scratch,
                device=device,
                progress=on_progress,
            )
        say(f"full retraining of every shard from scratch: {full_time}")

        batch_positions = rng.choice(len(train), size=min(batch, len(train)), replace=False)
        batch_ids = train.record_ids[batch_positions]
        with Stopwatch() as batch_time:
            batch_result = unlearn(
                model=trained.model,
                spec=spec,
                data=train,
                erased_record_ids=batch_ids,
                checkpoints=checkpoints,
                device=device,
            )
        shard_of = assign_shards(records=train, shards=shards, seed=seed)
        batch_affected = len(set(shard_of[batch_positions].tolist()))
        all_exact &= not verify_exact(
            model=batch_result.model, checkpoints=checkpoints, erased_record_ids=batch_ids
        )
        tainted = find_tainted_checkpoints(checkpoints=checkpoints, erased_record_ids=batch_ids)
        say(
            f"batch of {len(batch_ids)}: {len(batch_result.retrained_shards)} shard retrains "
            f"({batch_affected} shards hold the records), {batch_time}"
        )

    speedup = full_time.wall / unlearn_wall
    theoretical = config.theoretical_speedup()
    report: dict[str, Any] = {
        "dataset": data.name,
        "architecture": spec.name,
        "records_train": len(train),
        "records_test": len(data.test),
        "shards": shards,
        "slices": slices,
        "seed": seed,
        "epochs": spec.epochs,
        "slice_epochs": config.slice_epochs(spec=spec),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "machine": machine(device),
        "train_seconds_monolithic": monolithic_time.wall,
        "train_seconds_sisa": sisa_time.wall,
        "train_cpu_seconds_monolithic": monolithic_time.cpu,
        "train_cpu_seconds_sisa": sisa_time.cpu,
        "accuracy_monolithic": accuracy_monolithic,
        "accuracy_sisa": accuracy_sisa,
        "accuracy_sisa_vote": accuracy_vote,
        "unlearn_samples": len(single),
        "unlearn_seconds_mean": unlearn_wall,
        "unlearn_seconds_median": statistics.median(t.wall for t in single),
        "unlearn_cpu_seconds_mean": unlearn_cpu,
        "unlearn_seconds_by_start_slice": {
            str(stage): statistics.fmean(times) for stage, times in sorted(by_start_slice.items())
        },
        "full_retrain_seconds": full_time.wall,
        "full_retrain_cpu_seconds": full_time.cpu,
        "full_retrain_seconds_monolithic": monolithic_time.wall,
        "speedup": speedup,
        "speedup_cpu": full_time.cpu / unlearn_cpu,
        "speedup_vs_monolithic": monolithic_time.wall / unlearn_wall,
        "speedup_cpu_vs_monolithic": monolithic_time.cpu / unlearn_cpu,
        "theoretical_speedup": theoretical,
        "speedup_share_of_theoretical": speedup / theoretical,
        "batch_size": len(batch_ids),
        "batch_shard_retrains": len(batch_result.retrained_shards),
        "batch_affected_shards": batch_affected,
        "batch_stages_trained": batch_result.stages_trained,
        "batch_seconds": batch_time.wall,
        "batch_tainted_checkpoints": len(tainted),
        "exact": all_exact,
    }
    if json_output:
        typer.echo(json.dumps(report, sort_keys=True))
        return
    say(
        f"speedup over full retraining: {speedup:.1f}x wall, {report['speedup_cpu']:.1f}x CPU "
        f"(expected 3RS/(2R+1) = {theoretical:.1f}x); over the monolithic model: "
        f"{report['speedup_vs_monolithic']:.1f}x"
    )
    say(f"manifests prove every erased record gone: {all_exact}")


class Stopwatch:
    """Wall-clock and process CPU seconds of a block. CPU time is the steadier figure when other
    work shares the machine."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu

    def __str__(self) -> str:
        return f"{self.wall:.2f} s ({self.cpu:.2f} s CPU)"


def _choose_records(*, slice_of: Any, count: int, rng: Any) -> list[int]:
    """`count` distinct positions at random, cycling through the slices so that every slice is
    sampled evenly: the mean unlearning time then estimates its expectation over a uniformly
    random record with less variance than plain random choice."""
    import numpy as np

    slices = int(slice_of.max()) + 1 if len(slice_of) else 0
    pools = [rng.permutation(np.flatnonzero(slice_of == part)).tolist() for part in range(slices)]
    chosen: list[int] = []
    order = rng.permutation(slices).tolist()
    while len(chosen) < count and any(pools):
        for part in order:
            if pools[part] and len(chosen) < count:
                chosen.append(int(pools[part].pop()))
    return chosen


def _warm_up(*, spec: Any, data: Any, num_classes: int, device: Any, root: str) -> None:
    """Train a tiny SISA model once, so one-time costs (lazy imports in torch, first allocations)
    are not charged to the first timed step."""
    from workers.engine.artifacts import LocalArtifactStore
    from workers.engine.checkpoints import CheckpointStore
    from workers.engine.sisa import SisaConfig, train_sisa

    train_sisa(
        spec=spec.with_hyperparameters(epochs=1),
        data=data.subset(slice(0, 64)),
        num_classes=num_classes,
        config=SisaConfig(shards=1, slices=2),
        checkpoints=CheckpointStore(store=LocalArtifactStore(root=f"{root}/warm-up")),
        device=device,
    )


@contextmanager
def _progress_bar(*, description: str, disable: bool) -> Iterator[ProgressCallback]:
    """A SISA progress callback that drives a tqdm bar on stderr."""
    from tqdm import tqdm

    with tqdm(total=1000, desc=description, disable=disable, leave=False) as shown:

        def on_progress(event: ProgressEvent) -> None:
            shown.set_postfix(shard=event.shard, slice=event.slice, refresh=False)
            shown.update(round(event.fraction * 1000) - shown.n)

        yield on_progress


if __name__ == "__main__":  # where only numpy, torch and typer are installed (a GPU machine)
    typer.run(sisa)
