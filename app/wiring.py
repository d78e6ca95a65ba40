"""Connecting the domains to each other, in every process that publishes, validates or delivers.

Packages never import the ones that react to them: the erasure domain does not know OpenDSR, the
webhook transport knows no publisher. Each registers itself when its module is imported (event
types, transition listeners, delivery signers); importing them all is this module's one job.
The API (`create_app`) and the Celery worker and beat (`workers.celery_app`) call
`connect_domains` before they do anything, so that a request planned by a worker still sends its
OpenDSR callbacks and a model event published there is known.
"""

from __future__ import annotations

from importlib import import_module

# Each registers on import: erasure event types; requests following their jobs (the jobs
# domain's change hook); the erasure figures in /metrics; the model event type; OpenDSR's
# transition listener (status callbacks); OpenDSR's delivery signer; the suppression list's
# figures in /metrics.
REGISTRANTS = (
    "app.erasure.events",
    "app.erasure.progress",
    "app.erasure.metrics",
    "app.registry.events",
    "app.opendsr.callbacks",
    "app.opendsr.signing",
    "app.suppression.metrics",
)


def connect_domains() -> None:
    """Import every module that registers something; safe to call any number of times."""
    for name in REGISTRANTS:
        import_module(name)
