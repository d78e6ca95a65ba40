"""`lethe bench device-repro`: is training on this device bit-for-bit repeatable?

Trains the same model twice with the same records and seed on the chosen device (with the
deterministic settings `workers.engine.device.configure` applies), and once on the CPU, and
says which pairs of parameters are bit-identical (`torch.equal`) and how far apart the others
are. SISA's exact erasure relies on a shard retrained from a checkpoint being the same function
of its records as before: on the CPU it is bit-identical; this shows what holds on a GPU.
"""

from __future__ import annotations

import json

import typer

from bench._machine import machine


def device_repro(
    device_name: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    records: int = typer.Option(3000, "--records", min=100, help="synthetic-purchase records."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train twice on the device and once on the CPU; compare parameters bit for bit."""
    import torch

    from workers.engine import data as engine_data
    from workers.engine.architectures import get_architecture
    from workers.engine.device import configure
    from workers.engine.training import train_model

    try:
        device = configure(device=device_name)
    except (ValueError, RuntimeError) as problem:
        raise typer.BadParameter(str(problem), param_hint="--device") from None
    data = engine_data.synthetic_purchase(records=records, seed=seed)
    spec = get_architecture("mlp").with_hyperparameters(epochs=5)

    def fit(on: torch.device) -> dict[str, torch.Tensor]:
        model = train_model(
            spec=spec, data=data.train, num_classes=data.num_classes, seed=seed, device=on
        )
        return {name: value.detach().cpu() for name, value in model.state_dict().items()}

    first, second, cpu = fit(device), fit(device), fit(torch.device("cpu"))

    def compare(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, object]:
        return {
            "bit_identical": all(torch.equal(a[name], b[name]) for name in a),
            "max_abs_difference": max(float((a[name] - b[name]).abs().max()) for name in a),
        }

    typer.echo(
        json.dumps(
            {
                "device": str(device),
                "machine": machine(device),
                "torch": torch.__version__,
                "records": len(data.train),
                "same_device_twice": compare(first, second),
                "device_vs_cpu": compare(first, cpu),
            }
        )
    )


if __name__ == "__main__":
    typer.run(device_repro)
