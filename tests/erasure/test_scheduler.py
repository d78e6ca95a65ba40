"""The erasure scheduler's rule: when a model's exact retrain starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.erasure.scheduler import Policy, Trigger, Waiting, exact_start

T0 = datetime(2026, 11, 1, tzinfo=UTC)
POLICY = Policy(batch_size=3, due_margin=timedelta(days=7), max_wait=timedelta(days=3))


def waiting(*days: float, due_in: float = 30) -> list[Waiting]:
    return [
        Waiting(received_at=T0 + timedelta(days=d), due_at=T0 + timedelta(days=d + due_in))
        for d in days
    ]


def test_an_empty_batch_has_no_start():
    assert exact_start(waiting=[], policy=POLICY) is None


def test_the_oldest_request_waits_at_most_max_wait():
    start = exact_start(waiting=waiting(0, 1), policy=POLICY)
    assert start is not None
    assert (start.at, start.trigger) == (T0 + timedelta(days=3), Trigger.MAX_WAIT)


def test_a_full_batch_starts_when_it_fills():
    start = exact_start(waiting=waiting(0, 0.5, 1), policy=POLICY)
    assert start is not None
    assert (start.at, start.trigger) == (T0 + timedelta(days=1), Trigger.BATCH_FULL)


def test_a_near_due_date_comes_first():
    """A request due in 8 days must start within a day, before its margin runs out."""
    start = exact_start(waiting=waiting(0, due_in=8), policy=POLICY)
    assert start is not None
    assert (start.at, start.trigger) == (T0 + timedelta(days=1), Trigger.DUE_DATE)


def test_a_failed_mitigation_brings_the_batch_forward():
    start = exact_start(waiting=waiting(0, 2), policy=POLICY, bring_forward=True)
    assert start is not None
    assert (start.at, start.trigger) == (T0, Trigger.FALLBACK)


def test_adding_a_request_never_makes_the_start_later():
    batch = waiting(0)
    previous = exact_start(waiting=batch, policy=POLICY)
    for day in (0.2, 0.4, 2.5, 2.9):
        batch += waiting(day, due_in=9)
        start = exact_start(waiting=batch, policy=POLICY)
        assert start is not None and previous is not None and start.at <= previous.at
        previous = start
