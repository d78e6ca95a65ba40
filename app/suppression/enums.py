from __future__ import annotations

from enum import StrEnum


class LawfulBasis(StrEnum):
    """The lawful bases of GDPR Art. 6(1), (a) to (f)."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"
