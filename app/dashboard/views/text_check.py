"""A language model's text figures on the evidence page: what the model says about the erased
records beside people it never saw, for an approximate result (its text check) or an exact
version (figures only: the proof is the manifests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TextCheckView:
    label: str
    figures: dict[str, Any]
    passed: bool | None  # None: figures of an exact version, checked by nothing
    reasons: tuple[str, ...]


def text_checks(verification: dict[str, Any]) -> list[TextCheckView]:
    views = []
    if verification.get("kind") == "text_check":
        views.append(_view("The approximate result, accepted", verification))
    attempt = verification.get("approximate_attempt")
    if isinstance(attempt, dict) and attempt.get("kind") == "text_check":
        views.append(_view("The approximate attempt, refused: the model was retrained", attempt))
    figures = verification.get("text")
    if verification.get("kind") == "exact" and isinstance(figures, dict):
        views.append(
            TextCheckView(
                label="What the retrained version says", figures=figures, passed=None, reasons=()
            )
        )
    return views


def _view(label: str, figures: dict[str, Any]) -> TextCheckView:
    return TextCheckView(
        label=label,
        figures=figures,
        passed=bool(figures.get("passed")),
        reasons=tuple(str(r) for r in figures.get("reasons") or ()),
    )
