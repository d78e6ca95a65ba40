"""A doorbell rings only for committed work, once per dedupe key, and never for a rollback."""

from __future__ import annotations

from sqlalchemy import text

from app.core import broker


def test_rings_after_commit_once_per_key(session, enqueued):
    session.execute(text("select 1"))
    broker.enqueue_after_commit(session, "a", args=[1])
    broker.enqueue_after_commit(session, "b", args=[2], dedupe_key="stream-1")
    broker.enqueue_after_commit(session, "b", args=[3], dedupe_key="stream-1")
    assert enqueued == []
    session.commit()
    assert enqueued == [("a", [1]), ("b", [2])]
    session.commit()
    assert len(enqueued) == 2


def test_a_rollback_or_an_abandoned_session_forgets(database, enqueued):
    from app.core.db import get_sessionmaker

    with get_sessionmaker()() as session:
        session.execute(text("select 1"))
        broker.enqueue_after_commit(session, "a", args=[1])
        session.rollback()
        session.commit()
        session.execute(text("select 1"))
        broker.enqueue_after_commit(session, "b", args=[2])
    assert enqueued == []
    assert not session.info
