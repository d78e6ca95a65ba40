"""`lethe serve` with nothing configured: SQLite and a local queue under ./var/."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")}


@pytest.fixture
def embedded_server(tmp_path: Path):
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from app.cli import main; main()",
                "serve",
                "--port",
                str(port),
            ],
            cwd=tmp_path,
            env=_clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, timeout=60, every=0.3)
        key = re.search(r"lth_[A-Za-z0-9_-]+", log_path.read_text()).group(0)
        yield base, {"Authorization": f"Bearer {key}"}, tmp_path
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)


def test_embedded_default_plans_a_request(embedded_server):
    base, headers, workdir = embedded_server
    assert (workdir / "var" / "lethe.db").exists()
    assert (workdir / "var" / "broker").is_dir()
    created = httpx.post(
        f"{base}/v1/erasure-requests",
        json={"identities": [{"type": "email", "value": "embedded@example.com"}]},
        headers=headers,
    )
    assert created.status_code == 202
    request_id = created.json()["id"]

    def finished() -> dict | None:
        body = httpx.get(f"{base}/v1/erasure-requests/{request_id}", headers=headers).json()
        return body if body["status"] in {"planned", "completed"} else None

    final = wait_for(finished, timeout=60, every=0.5)
    assert final["status"] == "completed"
    assert final["status_reason"] == "no training data found"
    verified = httpx.get(f"{base}/v1/audit/verify", headers=headers).json()
    assert verified["ok"] is True
    # The first admin key's creation, then the request: received, planning, completed.
    assert verified["events_checked"] == 4


def test_readyz_reports_an_unreachable_broker(tmp_path):
    port = _free_port()
    env = _clean_env() | {"LETHE_BROKER_URL": "redis://127.0.0.1:1/0"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from app.cli import main; main()",
            "serve",
            "--no-worker",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answered() -> httpx.Response | None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            except httpx.HTTPError:
                return None

        response = wait_for(answered, timeout=60, every=0.3)
        assert response.status_code == 503
        assert response.json()["checks"] == {"database": "ok", "broker": "unreachable"}
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
