"""Every process that publishes, validates or delivers webhooks is wired: the API and the
Celery worker and beat. Each is probed in a fresh interpreter, as it starts in production."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

# The public list of event types (besides `*`), which subscribers depend on.
EVENT_TYPES = {
    *(
        f"erasure_request.{status}"
        for status in (
            "received",
            "pending_approval",
            "approved",
            "denied",
            "planning",
            "planned",
            "running",
            "verifying",
            "mitigated",
            "completed",
            "failed",
            "cancelled",
        )
    ),
    "model.version_activated",
    "model.version_held",
}

PROBE = """
import json
{start}
from app.webhooks.events import event_types
types = sorted(event_types())  # before anything below registers its own
from app.erasure.events import listeners
from app.webhooks.models import Target
from app.webhooks.signing import signer_for
signers = []
for target in Target:
    try:
        signer_for(target)
        signers.append(target.value)
    except LookupError:
        pass
from app.jobs.service import job_listeners
listening = [f"{{f.__module__}}.{{f.__name__}}" for f in listeners()]
following = [f"{{f.__module__}}.{{f.__name__}}" for f in job_listeners()]
print(json.dumps({{"event_types": types, "listeners": listening, "signers": signers,
                  "job_listeners": following}}))
"""

STARTS = {
    "api": "from app.main import create_app; create_app()",
    "worker": "import workers.celery_app",
}


def _probe(start: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(start=start)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("process", sorted(STARTS))
def test_the_process_is_wired(process):
    wired = _probe(STARTS[process])
    assert set(wired["event_types"]) == EVENT_TYPES
    assert "app.opendsr.callbacks._on_transition" in wired["listeners"]
    assert set(wired["signers"]) == {"endpoint", "callback", "opendsr"}
    assert wired["job_listeners"] == ["app.erasure.progress.follow_job"]


def test_an_unwired_process_knows_no_publisher():
    """The probe can fail: without the wiring nothing but the transport's own is registered."""
    bare = _probe("pass")
    assert bare == {
        "event_types": [],
        "listeners": [],
        "signers": ["endpoint", "callback"],
        "job_listeners": [],
    }
