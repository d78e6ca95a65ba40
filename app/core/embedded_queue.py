"""The embedded default's queue: kombu's filesystem transport, made responsive and kept inside
`$LETHE_VAR_DIR/broker`. It needs no service, which is the point of the embedded default.

What differs from kombu's own `filesystem://` transport:
- It polls every `POLLING_INTERVAL_SECONDS` instead of every second, and `drain_events` hands
  control back to the worker as soon as nothing can be consumed: a worker that may hold one
  unacknowledged task at a time (Celery's `acks_late` with a prefetch of 1) took its next task
  up to two seconds after acknowledging the last one, so a burst of short tasks ran at about
  one task every two seconds whatever their size.
- A message is written under a temporary name and renamed into the queue when complete, and
  taken by renaming it into `processed/` (both atomic within one filesystem), so a consumer
  never reads half a message and two consumers never take the same one. kombu moves a taken
  message to the system's temporary directory, which may be another filesystem (then the move
  is a copy that two consumers can both make) and is outside the var directory.
- The exchange tables (`control_folder`) live in `broker/control`, not in the working directory.

Listing a directory of a few hundred entries costs tens of microseconds, so polling twenty
times a second is not noticeable on an idle machine.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from kombu.transport import filesystem, virtual
from kombu.utils import json as kombu_json

POLLING_INTERVAL_SECONDS = 0.05
_TMP_SUFFIX = ".tmp"
_dumps: Callable[[Any], str] = kombu_json.dumps
_loads: Callable[[str], Any] = kombu_json.loads


# kombu's base classes disagree with each other on these signatures; ours follow the direct
# parent's (filesystem.Channel, virtual.Transport).
class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        name = f"{round(time.monotonic() * 1000):015d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + _TMP_SUFFIX
        with open(partial, "wb") as handle:
            handle.write(_dumps(payload).encode())
        os.rename(partial, final)

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.processed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except FileNotFoundError:  # another consumer took it first
                continue
            try:
                with open(claimed, "rb") as handle:
                    payload = handle.read()
            finally:
                if not self.store_processed:
                    os.remove(claimed)
            return _loads(payload.decode())
        raise virtual.Empty()


class Transport(filesystem.Transport):
    Channel = Channel
    polling_interval = POLLING_INTERVAL_SECONDS

    def drain_events(self, connection: Any, timeout: Any = None) -> Any:  # type: ignore[override]
        assert self.cycle is not None
        get: Callable[..., Any] = self.cycle.get
        started = time.monotonic()
        while True:
            try:
                return get(self._deliver, timeout=timeout)
            except virtual.Empty:
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise TimeoutError() from None
                time.sleep(self.polling_interval)
                if not any(channel.qos.can_consume() for channel in self.channels):
                    # Nothing may be taken until the worker has acknowledged what it holds or
                    # raised its prefetch (for a task with a countdown), which it does between
                    # calls: give it control back now rather than at the end of `timeout`.
                    raise TimeoutError() from None


def transport_options(folder: os.PathLike[str] | str) -> dict[str, Any]:
    """The folders under `folder` (created here) and settings of the embedded transport."""
    paths = {name: os.path.join(folder, name) for name in ("queue", "processed", "control")}
    for path in paths.values():
        os.makedirs(path, exist_ok=True)
    return {
        "data_folder_in": paths["queue"],
        "data_folder_out": paths["queue"],
        "processed_folder": paths["processed"],
        "control_folder": paths["control"],
        "store_processed": False,
        "polling_interval": POLLING_INTERVAL_SECONDS,
    }
