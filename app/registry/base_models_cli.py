"""`lethe base-models`: registering the pretrained bases that `causal_lm` models fine-tune."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

base_models_cli = typer.Typer(
    help="Pretrained language models that causal_lm models fine-tune (need the `worker` extra).",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Option(help="A unique name for the base.")]


def _register(directory: Path, name: str) -> None:
    from app.core.errors import ProblemError
    from app.core.migrate import ensure_schema
    from app.registry.base_models import BaseDirectoryError
    from workers.pipeline.lm.base_store import register_base_directory

    if not 0 < len(name) <= 200:
        typer.echo("error: --name must be 1 to 200 characters", err=True)
        raise typer.Exit(2)
    ensure_schema()
    try:
        base = register_base_directory(directory=directory, name=name)
    except (BaseDirectoryError, ProblemError) as exc:
        detail = exc.detail if isinstance(exc, ProblemError) else str(exc)
        typer.echo(f"error: {detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"registered base model {base.name} ({base.model_type}, {base.parameters:,} parameters, "
        f"{len(base.files)} files): id {base.id}"
    )


@base_models_cli.command("add")
def add(
    directory: Annotated[Path, typer.Argument(help="config.json, tokenizer.json, weights.")],
    name: Name,
) -> None:
    """Register a local model directory (Hugging Face layout: config.json, tokenizer.json and
    model.safetensors; GPT-2 family): its files go to the artifact store, named by SHA-256."""
    _register(directory, name)


@base_models_cli.command("build")
def build(
    directory: Annotated[Path, typer.Argument(help="Where to write the new base.")],
    name: Name,
    seed: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """Build Lethe's own small base (a tokenizer and a GPT-2 of about 0.9M parameters,
    pretrained on generic synthetic text about nobody; about a minute on one CPU core), then
    register it."""
    from workers.engine.lm.base import build_base_model
    from workers.engine.lm.corpus import generic_corpus

    if directory.exists() and any(directory.iterdir()):
        typer.echo(f"error: {directory} is not empty", err=True)
        raise typer.Exit(2)
    typer.echo("building the base model ...", err=True)
    build_base_model(
        directory=directory, seed=seed, corpus=generic_corpus(sentences=4000, seed=seed)
    )
    _register(directory, name)


@base_models_cli.command("list")
def list_bases() -> None:
    """The registered bases."""
    from app.core.db import get_sessionmaker
    from app.core.migrate import ensure_schema
    from app.registry.base_models import list_base_models

    ensure_schema()
    with get_sessionmaker()() as session:
        for base in list_base_models(session):
            typer.echo(f"{base.id}  {base.name}  {base.model_type}  {base.parameters:,} parameters")
