"""`lethe demo`: the whole product on the embedded default, in a few minutes on a laptop.

It starts Lethe (API and worker), registers a synthetic purchase dataset whose records belong to
people, trains a SISA model and an approximate model, asks Lethe through its HTTP API to forget
three people, and prints what happened: the status trail, accuracy before and after, the
verification figures and the signed certificate. Lethe then keeps running for a look around.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import httpx
import typer

from app.erasure.enums import RequestStatus
from app.jobs.enums import JobStatus

SEEN_STATUSES = (
    RequestStatus.COMPLETED,
    RequestStatus.FAILED,
    RequestStatus.DENIED,
    RequestStatus.CANCELLED,
)


T = TypeVar("T")


def _wait(predicate: Callable[[], T | None], *, timeout: float, every: float = 0.5) -> T:
    """The first truthy value `predicate` returns, polling every `every` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"no result within {timeout:.0f} s")


def _address(subject: int, run: str) -> str:
    """A demo customer's e-mail address. Each run has its own people: those a previous run
    erased are suppressed, and their records would be refused (as they should)."""
    return f"customer-{subject}@{run}.example.com"


def _records(data: Any, split: str, arrays: Any, run: str) -> list[dict[str, Any]]:
    return [
        {
            "key": f"order-{split}-{int(rid)}",
            "identities": [{"type": "email", "value": _address(int(sid), run)}],
            "features": arrays_row.tolist(),
            "label": int(label),
            "split": split,
        }
        for rid, sid, arrays_row, label in zip(
            arrays.record_ids, arrays.subject_ids, arrays.features, arrays.labels, strict=True
        )
    ]


class DemoClient:
    def __init__(self, base: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def wait_job(self, job_id: str, label: str) -> dict[str, Any]:
        shown = -1

        def finished() -> dict[str, Any] | None:
            nonlocal shown
            job = self.call("GET", f"/v1/jobs/{job_id}")
            percent = int(job["progress"] * 100)
            if percent // 10 != shown // 10:
                typer.echo(f"    {label}: {job['stage']} {percent}%")
                shown = percent
            return job if job["status"] in (JobStatus.SUCCEEDED, JobStatus.FAILED) else None

        return _wait(finished, timeout=600)


def demo(
    port: int = typer.Option(8000, help="Port for the API."),
    records: int = typer.Option(6000, min=500, help="Synthetic purchase records."),
    people: int = typer.Option(3, min=1, max=20, help="People to forget."),
    keep_running: bool = typer.Option(
        True, "--keep-running/--exit", help="Keep Lethe running afterwards."
    ),
) -> None:
    """Run the end-to-end demo on the embedded default."""
    import numpy as np

    from app.core.auth import create_client
    from app.core.config import get_settings
    from app.core.db import get_sessionmaker
    from app.core.migrate import ensure_schema
    from app.core.processes import (
        WORKER_STOP_GRACE_SECONDS,
        Stopped,
        shielded,
        start_child,
        stop_child,
        stopping_signals,
    )
    from workers.engine.data import synthetic_purchase

    started = time.perf_counter()
    ensure_schema()
    with get_sessionmaker()() as session:
        key = create_client(
            session,
            name="demo",
            scopes=["admin", "lineage:write", "models:write", "requests:write", "requests:read"],
        ).key
        session.commit()
    settings = get_settings()
    log_path = settings.var_dir / "demo-server.log"
    typer.echo(f"Starting Lethe on port {port} (its log: {log_path})")
    server = None
    try:
        with stopping_signals():
            with log_path.open("ab") as server_log:
                server = start_child(
                    [
                        sys.executable,
                        "-c",
                        "from app.cli import main; main()",
                        "serve",
                        "--port",
                        str(port),
                    ],
                    # The demo's requests make one batch: the approximate model's exact retrain
                    # starts when the last of them arrives, not days later as in production.
                    env={"LETHE_EXACT_BATCH_SIZE": str(people), **os.environ},
                    stdout=server_log,
                    stderr=subprocess.STDOUT,
                )
            base = f"http://127.0.0.1:{port}"
            _wait(lambda: _ready(base), timeout=90)
            client = DemoClient(base, key)
            _scenario(
                client, np=np, data=synthetic_purchase(records=records, seed=7), people=people
            )
            typer.echo(f"\nDemo finished in {time.perf_counter() - started:.0f} s.")
            if keep_running:
                typer.echo(
                    f"Lethe is running at {base} (API docs: {base}/docs). Demo API key:\n"
                    f"  {key}\nPress Ctrl-C to stop."
                )
                server.wait()
    except Stopped:
        pass
    finally:
        if server is not None:
            with shielded():
                # `lethe serve` stops its own worker first; give it the time that takes.
                stop_child(server, grace=WORKER_STOP_GRACE_SECONDS + 10)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _scenario(client: DemoClient, *, np: Any, data: Any, people: int) -> None:
    run = uuid.uuid4().hex[:8]
    typer.echo(f"\n1. Registering {data.name}: records that belong to people")
    dataset = client.call("POST", "/v1/datasets", json={"name": "purchases (demo)"})
    for split in ("train", "holdout", "test"):
        rows = _records(data, split, getattr(data, split), run)
        for start in range(0, len(rows), 2000):
            client.call(
                "POST",
                f"/v1/datasets/{dataset['id']}/records",
                json={"records": rows[start : start + 2000]},
            )
    shown = client.call("GET", f"/v1/datasets/{dataset['id']}")
    typer.echo(f"   {shown['record_counts']} records, {shown['feature_count']} features each")

    typer.echo(
        "\n2. Training a SISA model (4 shards x 4 slices, by person) and an approximate model"
    )
    models = {
        "sisa": client.call(
            "POST",
            "/v1/models",
            json={
                "name": "purchases-sisa",
                "dataset_id": dataset["id"],
                "architecture": "mlp",
                "strategy": "sisa",
                "shards": 4,
                "shard_key": "subject",
                "slices": 4,
                "epochs": 12,
            },
        ),
        "approximate": client.call(
            "POST",
            "/v1/models",
            json={
                "name": "purchases-approx",
                "dataset_id": dataset["id"],
                "architecture": "mlp",
                "strategy": "approximate",
                "epochs": 12,
            },
        ),
    }
    before = {}
    for name, model in models.items():
        job = client.call("POST", f"/v1/models/{model['id']}/train")
        finished = client.wait_job(job["id"], f"train {name}")
        if finished["status"] != JobStatus.SUCCEEDED:
            raise RuntimeError(f"training {name} failed: {finished['error']}")
        before[name] = client.call("GET", f"/v1/models/{model['id']}")["active_version"]
        typer.echo(
            f"   {name}: version 1, test accuracy {before[name]['metrics']['test_accuracy']}"
        )

    subjects, counts = np.unique(data.train.subject_ids, return_counts=True)
    chosen = [int(s) for s in subjects[np.argsort(-counts)][:people]]
    typer.echo(f"\n3. A privacy portal asks Lethe to forget {people} people")
    request_ids = []
    for subject in chosen:
        created = client.call(
            "POST",
            "/v1/erasure-requests",
            json={
                "identities": [{"type": "email", "value": _address(subject, run)}],
                "reference": f"DSR-demo-{subject}",
            },
            headers={"Idempotency-Key": f"demo-{subject}"},
        )
        request_ids.append(created["id"])
        typer.echo(f"   request {created['id']}: {created['status']}, due {created['due_at'][:10]}")

    finals = [_wait(partial(_final, client, r), timeout=600, every=1.0) for r in request_ids]
    typer.echo("\n4. What happened")
    for final in finals:
        trail = client.call("GET", f"/v1/erasure-requests/{final['id']}/events")
        steps = " -> ".join(e["action"].split(".", 1)[1] for e in trail)
        typer.echo(f"   {final['reference']}: {final['plan']['records_found']} records; {steps}")
    for name, model in models.items():
        after = _wait(partial(_evaluated, client, model["id"]), timeout=120)
        verification = after["metrics"].get("verification", {})
        typer.echo(
            f"   {name}: v{before[name]['number']} -> v{after['number']} ({after['method']}), "
            f"test accuracy {before[name]['metrics']['test_accuracy']} -> "
            f"{after['metrics'].get('test_accuracy')}"
        )
        typer.echo(f"      verification: {_summary(verification)}")

    certificate = client.call("GET", f"/v1/erasure-requests/{request_ids[0]}/certificate")
    typer.echo("\n5. The signed certificate of the first request (decoded claims)")
    typer.echo(json.dumps(certificate["claims"], indent=2))
    typer.echo(f"   JWS: {certificate['jws'][:60]}...  keys: /v1/.well-known/jwks.json")
    audit = client.call("GET", "/v1/audit/verify")
    typer.echo(f"   audit chain: ok={audit['ok']}, {audit['events_checked']} events")


def _evaluated(client: DemoClient, model_id: str) -> dict[str, Any] | None:
    """The active version once its test accuracy (measured after activation) is in."""
    version = client.call("GET", f"/v1/models/{model_id}")["active_version"]
    return version if "test_accuracy" in version["metrics"] else None


def _final(client: DemoClient, request_id: str) -> dict[str, Any] | None:
    body = client.call("GET", f"/v1/erasure-requests/{request_id}")
    return body if body["status"] in SEEN_STATUSES else None


def _summary(verification: dict[str, Any]) -> str:
    if verification.get("kind") == "exact":
        text = (
            f"exact; {verification.get('erased_records')} erased records, "
            f"{verification.get('erased_records_in_new_version')} left in the new version"
        )
        attempt = verification.get("approximate_attempt")
        if attempt:
            v = attempt["verification"]
            text += f" (approximate attempt failed its check: {_gate_words(v)})"
        return text
    return _gate_words(verification.get("verification", {}))


def _gate_words(v: dict[str, Any]) -> str:
    """The membership test's verdict in a line: the per-record gate's or the pooled test's."""
    if isinstance(v.get("memory"), dict):
        memory = v["memory"].get("estimate")
        retained = (v.get("retained") or {}).get("estimate")
        share = "" if retained is None else f", retained share {retained:+.2f}"
        return (
            f"per-record gate against {v.get('references')} reference models: verdict "
            f"{v.get('verdict')} (memory {float('nan') if memory is None else memory:+.2f}, "
            f"margin {v.get('margin')}{share})"
        )
    return (
        f"membership inference AUC {v.get('auc', float('nan')):.3f} "
        f"(CI {v.get('ci_low', 0):.3f}-{v.get('ci_high', 0):.3f}), verdict {v.get('verdict')}"
    )
