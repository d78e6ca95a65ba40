"""An embedded SQLite database for the fast service tests, migrated once per test session (the
embedded default's own database engine). No Postgres, Redis or worker is involved."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from app.core.migrate import upgrade

    path: Path = tmp_path_factory.mktemp("fast-db") / "lethe.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture
def sqlite_session(sqlite_url: str) -> Iterator:
    from sqlalchemy.orm import Session

    from app.core.db import make_engine

    engine = make_engine(sqlite_url)
    with Session(bind=engine, expire_on_commit=False) as session:
        yield session
        session.rollback()
    engine.dispose()


@pytest.fixture
def api_client(sqlite_session):
    """A client with the `models:write` scope (not an admin)."""
    from app.core.auth import create_client

    return create_client(sqlite_session, name="fast-tests", scopes=["models:write"]).client


@pytest.fixture
def client_id(api_client) -> uuid.UUID:
    return api_client.id


@pytest.fixture
def model_id(sqlite_session, api_client) -> uuid.UUID:
    """A registered SISA model (never trained) of `api_client`."""
    from app.lineage.service import create_dataset
    from app.registry.models import MlModel

    dataset = create_dataset(sqlite_session, client=api_client, name="d", description=None)
    model = MlModel(
        client_id=api_client.id,
        dataset_id=dataset.id,
        name="m",
        architecture="mlp",
        strategy="sisa",
    )
    sqlite_session.add(model)
    sqlite_session.flush()
    return model.id
