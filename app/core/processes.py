"""Child processes that never outlive the command that started them.

`lethe serve` runs a Celery worker beside the API, the worker runs beat and its pool as
processes of its own, and `lethe demo` runs `lethe serve`. Three rules keep that tree tidy:
- a child starts in a process group of its own, so a terminal's Ctrl-C reaches only the
  command, which then stops its children in order (not everyone at once);
- it is stopped by SIGTERM to the child itself (a Celery worker then shuts down warm: it
  finishes or requeues its task and stops beat and its pool), and after a grace period
  SIGKILL takes whatever is left of its group;
- on Linux it also gets SIGTERM when the command dies without stopping it (`PR_SET_PDEATHSIG`,
  set by a launcher that then execs the child), even from SIGKILL.
`stopping_signals` turns SIGTERM and SIGINT into an exception in the main thread, so that the
`finally` block that stops the children runs whichever signal arrives (uvicorn re-raises the
signal it handled after its own graceful shutdown; without this, SIGTERM killed `lethe serve`
outright and left its worker running).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

_PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long a stopping worker may finish its task before the rest of its process group is killed
# (a task cut short is redelivered: tasks are acknowledged late and re-read their rows).
WORKER_STOP_GRACE_SECONDS = 20.0


class Stopped(Exception):
    """SIGINT or SIGTERM arrived: unwind and stop the children."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextmanager
def stopping_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Stopped` (main thread only)."""
    previous = {s: signal.signal(s, _raise_stopped) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def shielded() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM while children are being stopped, so a second signal cannot
    abandon them half-way (the stop itself is bounded by its grace period)."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def start_child(command: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start `command` in its own process group; it gets SIGTERM if this process dies.

    The death signal is set by a small launcher that then execs `command` (same process id),
    rather than in a `preexec_fn`, which is not safe in a process with threads."""
    launcher = [sys.executable, "-m", "app.core.processes", str(os.getpid())]
    return subprocess.Popen([*launcher, *command], start_new_session=True, **popen)


def _exec_dying_with_parent(parent: int, command: list[str]) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the death signal was set
        sys.exit(1)
    os.execvp(command[0], command)


def stop_child(process: subprocess.Popen[bytes], *, grace: float = 20.0) -> None:
    """SIGTERM to the child; after `grace` seconds (or once it is gone) SIGKILL to whatever is
    left of its process group, such as a Celery worker's beat or pool."""
    if process.poll() is None:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


if __name__ == "__main__":
    _exec_dying_with_parent(int(sys.argv[1]), sys.argv[2:])
