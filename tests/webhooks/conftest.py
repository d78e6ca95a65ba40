from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.webhooks.receiver import Receiver

# The test receivers listen on loopback, which the SSRF guard refuses by default. Set before
# any test runs, so the Celery worker process inherits it too.
os.environ.setdefault("LETHE_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
# A short beat sweep, so that "within one sweep interval" is measured in seconds.
os.environ.setdefault("LETHE_WEBHOOK_SWEEP_SECONDS", "3")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()
