"""The hash chain: `hash = sha256(prev_hash || canonical JSON of the event)`.

Canonical JSON is UTF-8, keys sorted, no insignificant white space. The sequence number is part
of the hashed event, so a deleted or reordered link breaks the chain as surely as an edited one.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_event(
    *,
    seq: int,
    occurred_at: datetime,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    data: dict[str, Any],
) -> bytes:
    event = {
        "seq": seq,
        "occurred_at": occurred_at.isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "data": data,
    }
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()
