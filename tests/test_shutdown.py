"""`lethe serve` and `lethe demo` stop everything they started, whichever signal stops them, and
a child never outlives a parent that died without stopping it. Real processes throughout: a
process of theirs is any process whose working directory is the test's (children inherit it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_for
from tests.test_embedded import _clean_env, _free_port


def processes_in(directory: Path) -> list[str]:
    """Live processes working in `directory`, as `pid command`."""
    found = []
    target = str(directory.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") != target:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
        except OSError:
            continue
        if state != "Z":
            found.append(f"{entry.name} {command}")
    return found


def _lethe(args: list[str], workdir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main()", *args],
            cwd=workdir,
            env=_clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the signal goes to the command alone, as with `kill`
        )


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _stop_and_check(process: subprocess.Popen[bytes], signum: int, workdir: Path) -> None:
    try:
        running = processes_in(workdir)
        assert len(running) >= 3, running  # the command, the worker, its beat (and pool)
        process.send_signal(signum)
        process.wait(timeout=90)
        wait_for(lambda: not processes_in(workdir), timeout=15, every=0.2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for line in processes_in(workdir):
            os.kill(int(line.split()[0]), signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_its_worker_and_beat(tmp_path, signum):
    port = _free_port()
    log = tmp_path / "serve.log"
    process = _lethe(["serve", "--port", str(port)], tmp_path, log)
    wait_for(lambda: _ready(port), timeout=90, every=0.3)
    wait_for(lambda: b" ready." in log.read_bytes(), timeout=90, every=0.3)  # the worker
    _stop_and_check(process, signum, tmp_path)
    # The embedded queue keeps everything under the var directory.
    assert not (tmp_path / "control").exists()
    assert (tmp_path / "var" / "broker" / "control").is_dir()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_demo_stops_everything_it_started(tmp_path, signum):
    port = _free_port()
    log = tmp_path / "demo.log"
    args = ["demo", "--port", str(port), "--records", "600", "--people", "1", "--exit"]
    process = _lethe(args, tmp_path, log)
    wait_for(lambda: _ready(port), timeout=120, every=0.3)
    wait_for(
        lambda: b" ready." in (tmp_path / "var" / "demo-server.log").read_bytes(),
        timeout=90,
        every=0.3,
    )
    _stop_and_check(process, signum, tmp_path)


def test_a_child_dies_with_a_parent_killed_outright(tmp_path):
    """SIGKILL gives no parent a chance to stop its children: the kernel tells them."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys, time
                from app.core.processes import start_child
                child = start_child([sys.executable, "-c", "import time; time.sleep(600)"])
                print(child.pid, flush=True)
                time.sleep(600)
                """
            ),
        ],
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert len(processes_in(tmp_path)) == 2
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while processes_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftover = processes_in(tmp_path)
    for line in leftover:
        os.kill(int(line.split()[0]), signal.SIGKILL)
    assert not leftover, f"child {child} outlived its parent"
