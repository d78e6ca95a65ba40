"""The intake baseline: the least a FastAPI endpoint can do to accept a request durably.

It validates a small body and inserts one row on the same Postgres, with the same driver and
pool settings as Lethe. Run by bench/intake.py under uvicorn with one worker.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import JSON, DateTime, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "bench_minimal_rows"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Identity(BaseModel):
    type: str
    value: str


class Body(BaseModel):
    identities: list[Identity]


engine = create_engine(
    os.environ["BENCH_DATABASE_URL"], pool_pre_ping=True, pool_size=10, max_overflow=20
)
Base.metadata.create_all(engine)
app = FastAPI()


@app.post("/rows", status_code=202)
def create_row(body: Body) -> dict[str, str]:
    with Session(engine) as session:
        row = Row(payload=body.model_dump(), created_at=datetime.now(UTC))
        session.add(row)
        session.commit()
        return {"id": str(row.id)}
