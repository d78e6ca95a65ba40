"""What an erasure certificate guarantees. A leaf module: anything may import it."""

from __future__ import annotations

from enum import StrEnum


class Guarantee(StrEnum):
    """What a certificate proves. `exact`: every affected model's active version was trained
    without the records, shown by its manifests. `approximate`: at least one model was only
    edited to forget them, with the verification figures the certificate carries."""

    EXACT = "exact"
    APPROXIMATE = "approximate"
