from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.core.scopes import Scope


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Who or what the key is for.")
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    requires_approval: bool = Field(
        False, description="Hold this client's erasure requests for an admin's approval."
    )


class ClientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    key_id: str = Field(description="The public part of the key: `lth_<key_id>_...`.")
    scopes: list[Scope]
    requires_approval: bool
    created_at: datetime
    revoked_at: datetime | None


class ClientWithKey(ClientOut):
    key: str = Field(description="The API key, shown only in this response; Lethe keeps a hash.")


class ClientPage(BaseModel):
    items: list[ClientOut]
    next_cursor: str | None
