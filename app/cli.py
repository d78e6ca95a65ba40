"""The `lethe` command."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import func, select

from app.core.config import get_settings
from app.core.db import get_sessionmaker
from app.keys_cli import keys_cli
from app.registry.base_models_cli import base_models_cli

if TYPE_CHECKING:
    from app.lineage.importer import Chunk
    from app.lineage.suppressed import SuppressedIdentities

cli = typer.Typer(help="Lethe: GDPR erasure for machine-learning models.", no_args_is_help=True)
clients_cli = typer.Typer(help="API clients and their keys.", no_args_is_help=True)
records_cli = typer.Typer(help="Training records.", no_args_is_help=True)
bench_cli = typer.Typer(help="Benchmarks (need the `worker` extra).", no_args_is_help=True)
cli.add_typer(clients_cli, name="clients")
cli.add_typer(records_cli, name="records")
cli.add_typer(bench_cli, name="bench")
cli.add_typer(base_models_cli, name="base-models")
cli.add_typer(keys_cli, name="keys")


@cli.command()
def migrate(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Apply database migrations (the container prestart runs this)."""
    from app.core.migrate import upgrade

    upgrade(get_settings().resolved_database_url, revision)
    typer.echo(f"database migrated to {revision}")


def _worker_command(queues: str, concurrency: int, beat: bool) -> list[str]:
    command = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker"]
    command += ["-Q", queues, "--concurrency", str(concurrency), "--loglevel", "INFO"]
    if beat:
        command += ["--beat", "--schedule", str(get_settings().var_dir / "celerybeat-schedule")]
    return command


@cli.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues.")] = "cpu,gpu",
    concurrency: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Run a Celery worker against the configured database and broker."""
    os.execv(sys.executable, _worker_command(queues, concurrency, beat=False))


def _bootstrap_admin() -> None:
    from app.clients import service
    from app.core.auth import ApiClient

    with get_sessionmaker()() as session:
        if session.scalar(select(func.count()).select_from(ApiClient)):
            return
        issued = service.create(
            session, actor=service.CLI_ACTOR, name="bootstrap-admin", scopes=["admin"]
        )
        session.commit()
    typer.echo(
        "Created the first API client (admin). Its key is shown only this once:\n"
        f"  {issued.key}\n"
        "Create narrower keys with `lethe clients create`.",
        err=True,
    )


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    with_worker: Annotated[bool, typer.Option("--worker/--no-worker")] = True,
) -> None:
    """Run the API (and, by default, a worker beside it). With nothing configured this is the
    embedded default: SQLite and a local queue under ./var/."""
    import uvicorn

    from app.core.migrate import ensure_schema
    from app.core.processes import (
        WORKER_STOP_GRACE_SECONDS,
        Stopped,
        shielded,
        start_child,
        stop_child,
        stopping_signals,
    )

    settings = get_settings()
    worker_process = None
    try:
        with stopping_signals():
            ensure_schema()
            _bootstrap_admin()
            if with_worker:
                worker_process = start_child(_worker_command("cpu,gpu", 1, beat=True))
            uvicorn.run(
                "app.main:create_app",
                factory=True,
                host=host or settings.host,
                port=port or settings.port,
                log_config=None,
                access_log=False,
            )
    except Stopped:
        pass  # uvicorn has shut down gracefully; the worker follows
    finally:
        if worker_process is not None:
            with shielded():
                stop_child(worker_process, grace=WORKER_STOP_GRACE_SECONDS)


@clients_cli.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="Who the key is for.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated, e.g. requests:write,requests:read")],
    require_approval: Annotated[
        bool, typer.Option(help="Hold this client's requests for an admin's approval.")
    ] = False,
) -> None:
    """Create an API client and print its key (shown only once)."""
    from app.clients import service
    from app.core.errors import ProblemError
    from app.core.migrate import ensure_schema

    ensure_schema()
    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    with get_sessionmaker()() as session:
        try:
            issued = service.create(
                session,
                actor=service.CLI_ACTOR,
                name=name,
                scopes=wanted,
                requires_approval=require_approval,
            )
        except ProblemError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(2) from None
        session.commit()
    typer.echo(
        f"client {issued.client.id} ({name}) scopes={','.join(issued.client.scopes)}", err=True
    )
    typer.echo(issued.key)


@clients_cli.command("list")
def clients_list(
    all_clients: Annotated[bool, typer.Option("--all", help="Include revoked clients.")] = False,
) -> None:
    """List API clients, newest first (never their keys)."""
    from app.clients import service
    from app.core.migrate import ensure_schema

    ensure_schema()
    with get_sessionmaker()() as session:
        rows, _ = service.list_clients(
            session, revoked=None if all_clients else False, limit=100_000
        )
    typer.echo(f"{'id':<36}  {'key':<17}  {'created':<16}  {'revoked':<16}  scopes  name")
    for c in rows:
        revoked = c.revoked_at.strftime("%Y-%m-%d %H:%M") if c.revoked_at else "-"
        approval = " (approval)" if c.requires_approval else ""
        typer.echo(
            f"{c.id!s:<36}  lth_{c.key_id:<13}  {c.created_at:%Y-%m-%d %H:%M}  {revoked:<16}  "
            f"{','.join(c.scopes)}{approval}  {c.name}"
        )


@clients_cli.command("revoke")
def clients_revoke(
    client_id: Annotated[uuid.UUID, typer.Argument(help="The client's id (`lethe clients list`).")],
) -> None:
    """Revoke a client's key; every API process refuses it from now on."""
    from app.clients import service
    from app.core.errors import ProblemError
    from app.core.migrate import ensure_schema

    ensure_schema()
    with get_sessionmaker()() as session:
        try:
            client = service.revoke(session, actor=service.CLI_ACTOR, client_id=client_id)
        except ProblemError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(2) from None
        session.commit()
    revoked = f"{client.revoked_at:%Y-%m-%d %H:%M:%S} UTC" if client.revoked_at else "-"
    typer.echo(f"client {client.id} ({client.name}) revoked at {revoked}")


def _echo_suppressed_rows(exc: SuppressedIdentities, *, chunk: Chunk, shown: int = 20) -> None:
    """One line per refused row (a person erased on request), naming the row, never the value."""
    rows = sorted({chunk.row_number(i) for i, _ in exc.positions})
    for row in rows[:shown]:
        typer.echo(
            f"error: row {row}: identity erased on request; give the row a lawful_basis "
            "to import it",
            err=True,
        )
    if len(rows) > shown:
        typer.echo(f"error: ... and {len(rows) - shown} more such rows", err=True)


@records_cli.command("import")
def records_import(
    dataset_id: Annotated[uuid.UUID, typer.Argument(help="The dataset to add records to.")],
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    chunk_size: Annotated[int, typer.Option(min=100, help="Records per transaction.")] = 20_000,
) -> None:
    """Import training records from a CSV, NPZ or JSON lines (.jsonl, also for text records)
    file, in chunks, with progress. A row of a person erased on request is refused unless it
    states a lawful basis (`lawful_basis`)."""
    from app.clients.service import CLI_ACTOR
    from app.core.errors import ProblemError
    from app.core.migrate import ensure_schema
    from app.lineage.importer import ImportFileError, count_rows, read_csv, read_npz
    from app.lineage.jsonl_import import read_jsonl
    from app.lineage.models import Dataset
    from app.lineage.prefetch import prefetched
    from app.lineage.service import add_records
    from app.lineage.suppressed import SuppressedIdentities

    ensure_schema()
    settings = get_settings()
    readers = {".npz": read_npz, ".jsonl": read_jsonl}
    reader = readers.get(path.suffix.lower(), read_csv)
    total = count_rows(path)
    imported, started = 0, time.perf_counter()
    chunk: Chunk | None = None
    with get_sessionmaker()() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            typer.echo(f"error: dataset {dataset_id} not found", err=True)
            raise typer.Exit(2)
        try:
            with typer.progressbar(length=total, label="importing", file=sys.stderr) as bar:
                chunks = reader(path, pepper=settings.pepper_bytes(), chunk_size=chunk_size)
                for chunk in prefetched(chunks):
                    add_records(
                        session,
                        dataset=dataset,
                        rows=chunk.rows,
                        feature_count=chunk.feature_count,
                        actor=CLI_ACTOR,
                    )
                    session.commit()
                    imported += len(chunk.rows)
                    bar.update(len(chunk.rows))
        except (ImportFileError, ProblemError) as exc:
            session.rollback()
            if isinstance(exc, SuppressedIdentities) and chunk is not None:
                _echo_suppressed_rows(exc, chunk=chunk)
            detail = exc.detail if isinstance(exc, ProblemError) else str(exc)
            typer.echo(f"error: {detail}; {imported} records were imported before it", err=True)
            raise typer.Exit(1) from None
    elapsed = time.perf_counter() - started
    rate = imported / elapsed if elapsed else 0.0
    typer.echo(f"imported {imported} records in {elapsed:.1f} s ({rate:,.0f} records/s)")


@cli.command("verify-certificate")
def verify_certificate(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    jwks: Annotated[
        str,
        typer.Option(help="JWKS file, or the URL of /v1/.well-known/jwks.json."),
    ],
) -> None:
    """Check an erasure certificate offline against Lethe's public keys. FILE holds the JWS, or
    the JSON that GET /v1/erasure-requests/{id}/certificate returns."""
    import json

    from app.audit.signing import InvalidSignature, verify_token

    raw = path.read_text().strip()
    token = json.loads(raw)["jws"] if raw.startswith("{") else raw
    if jwks.startswith(("http://", "https://")):
        import httpx

        key_set = httpx.get(jwks, timeout=10).raise_for_status().json()
    else:
        key_set = json.loads(Path(jwks).read_text())
    try:
        header, claims = verify_token(token, key_set)
    except InvalidSignature as exc:
        typer.echo(f"INVALID: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"VALID certificate, signed by key {header.get('kid')}")
    typer.echo(f"  request {claims['request_id']} completed {claims['completed_at']}")
    typer.echo(f"  guarantee: {claims.get('guarantee', 'exact')}")
    typer.echo(f"  records erased: {claims['records_erased']}")
    for model in claims["models"]:
        kind = "exact" if model["exact"] else "approximate"
        old, new = model.get("old_version") or {}, model.get("new_version") or {}
        typer.echo(
            f"  model {model['model_id']}: v{old.get('number')} -> v{new.get('number')} "
            f"({model['method']}, {kind})"
        )
    head = claims.get("audit_chain_head") or {}
    typer.echo(f"  audit chain head: #{head.get('seq')} {head.get('hash')}")


_PASS_THROUGH = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
    "help_option_names": [],  # `--help` reaches the benchmark's own parser
}


@bench_cli.command("lm", context_settings=_PASS_THROUGH, add_help_option=False)
def bench_lm(ctx: typer.Context) -> None:
    """Erasing fictitious people from a fine-tuned language model: the retrained reference,
    SISA over adapters and the approximate methods (`lethe bench lm --help` for its options)."""
    from bench.lm import main as run

    run(list(ctx.args))


@bench_cli.command("lm-methods", context_settings=_PASS_THROUGH, add_help_option=False)
def bench_lm_methods(ctx: typer.Context) -> None:
    """Gradient difference, NPO and rank-one edits on a fully fine-tuned language model:
    forgetting, what is kept, edit success and locality (`--help` for its options)."""
    from bench.lm_methods import main as run

    run(list(ctx.args))


def _register_benchmarks() -> None:
    try:
        from bench.sisa import sisa
    except ImportError:
        pass
    else:
        bench_cli.command("sisa")(sisa)
    try:
        from bench.approximate import approximate
    except ImportError:
        pass
    else:
        bench_cli.command("approximate")(approximate)
        from bench.approximate_grid import approximate_grid
        from bench.approximate_merge import approximate_merge
        from bench.device_repro import device_repro

        bench_cli.command("approximate-merge")(approximate_merge)
        bench_cli.command("approximate-grid")(approximate_grid)
        bench_cli.command("device-repro")(device_repro)
    try:
        from workers.demo import demo
    except ImportError:
        pass
    else:
        cli.command("demo")(demo)


_register_benchmarks()


def main() -> None:
    cli()
