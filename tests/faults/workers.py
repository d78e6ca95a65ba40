"""Real Celery worker processes for the fault suite, forked from a preloaded zygote
(`tests.faults.zygote`), one at a time: the worker alive is the one that runs the job, so a
kill always hits the process doing the work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO_ROOT


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Workers:
    def __init__(self, *, var_dir: Path, env: dict[str, str], ready: bool = True) -> None:
        from app.core.processes import start_child

        self.var_dir = var_dir
        self.log_path = var_dir / "fault-workers.log"
        self.spawned = 0
        self.pid: int | None = None
        self.kills = 0
        self.zygote = start_child(
            [sys.executable, "-m", "tests.faults.zygote"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(var_dir / "zygote.log").open("ab"),
        )
        if ready:
            self.wait_zygote()

    def wait_zygote(self) -> None:
        assert self._read() == "ready", (self.var_dir / "zygote.log").read_text()[-2000:]

    def _read(self) -> str:
        assert self.zygote.stdout is not None
        line = self.zygote.stdout.readline().decode().strip()
        if not line:
            raise RuntimeError("the zygote died: " + (self.var_dir / "zygote.log").read_text())
        return line

    def start(self, *, wait: bool = True) -> int:
        """Fork a fresh worker; with `wait`, return once it consumes its queues."""
        assert self.pid is None or not alive(self.pid), "one worker at a time"
        assert self.zygote.stdin is not None
        self.spawned += 1
        name = f"fault-{os.getpid()}-{self.spawned}@%h"
        schedule = self.var_dir / f"fault-beat-{self.spawned}"
        self.zygote.stdin.write(f"spawn {self.log_path} {schedule} {name}\n".encode())
        self.zygote.stdin.flush()
        self.pid = int(self._read())
        if wait:
            self.wait_ready()
        return self.pid

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.pid is not None
        marker = f"fault-{os.getpid()}-{self.spawned}@".encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes() if self.log_path.exists() else b""
            if marker in text and b"ready." in text.rsplit(marker, 1)[1]:
                return
            if not alive(self.pid):
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        raise RuntimeError("worker did not become ready")

    def kill(self) -> None:
        """SIGKILL to the worker and its beat, as when its machine dies."""
        assert self.pid is not None
        os.killpg(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not alive(self.pid), "the killed worker is still alive"
        self.kills += 1

    def restart(self) -> None:
        self.kill()
        self.start()

    def pause(self) -> None:
        assert self.pid is not None
        os.killpg(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.pid is not None
        os.killpg(self.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.pid is not None and alive(self.pid):
            os.killpg(self.pid, signal.SIGKILL)
        if self.zygote.stdin is not None:
            self.zygote.stdin.close()
        try:
            self.zygote.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.zygote.kill()
            self.zygote.wait()
