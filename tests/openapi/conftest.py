"""The API as an integrator meets it: its OpenAPI document, a real server on a loopback port,
and a client generated from the document by `openapi-python-client`."""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SDK_PACKAGE = "lethe_sdk"

# Hypothesis (under schemathesis) keeps its caches in the suite's scratch directory, not in the
# working tree.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", str(Path(os.environ["LETHE_VAR_DIR"]) / "hypothesis")
)


@pytest.fixture(scope="session")
def lethe_app(database: str) -> Any:
    from app.main import create_app

    return create_app()


@pytest.fixture(scope="session")
def document(lethe_app: Any) -> dict[str, Any]:
    return lethe_app.openapi()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server(lethe_app: Any) -> Iterator[str]:
    """The API under uvicorn on a free loopback port, in a thread of this process; stopped at
    the end of the session."""
    import uvicorn

    config = uvicorn.Config(lethe_app, host="127.0.0.1", port=_free_port(), log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{config.port}"
    running.should_exit = True
    thread.join(timeout=10)


def generate_sdk(document: dict[str, Any], folder: Path) -> Path:
    """What an integrator runs: `openapi-python-client generate` on the document (offline, no
    formatter hooks). Returns the package's folder."""
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(document))
    config = folder / "sdk.yml"
    config.write_text("post_hooks: []\n")
    package = folder / SDK_PACKAGE
    generated = subprocess.run(
        [
            *(sys.executable, "-m", "openapi_python_client", "generate"),
            *("--path", str(spec), "--output-path", str(package)),
            *("--meta", "none", "--config", str(config), "--fail-on-warning"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    return package


@pytest.fixture(scope="session")
def sdk(document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated client package, imported (one per session)."""
    folder = tmp_path_factory.mktemp("sdk")
    generate_sdk(document, folder)
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(SDK_PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == SDK_PACKAGE or n.startswith(SDK_PACKAGE + ".")]:
            del sys.modules[name]
