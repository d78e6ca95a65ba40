"""Thresholds of the membership-inference gate. Imports no torch, so the API can validate a
model's policy when it is registered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AttackScore = Literal["loss", "confidence"]
ATTACK_SCORES: tuple[str, ...] = ("loss", "confidence")


@dataclass(frozen=True)
class VerificationSettings:
    """Thresholds of the membership-inference gate.

    Attributes:
        attack: ``loss`` (log-odds of the true label) or ``confidence`` (of the top class).
        confidence: coverage of the bootstrap interval, in (0.5, 1). Default 0.95.
        tolerance: AUC distance from 0.5 that is accepted as chance even when significant.
            Default 0.02.
        bootstrap_samples: bootstrap resamples for the interval, at least 100. Default 1000.
        seed: seed of the bootstrap resampling, so a verdict can be reproduced. Default 0.
    """

    attack: AttackScore = "loss"
    confidence: float = 0.95
    tolerance: float = 0.02
    bootstrap_samples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.attack not in ATTACK_SCORES:
            problems.append(f"attack must be one of {list(ATTACK_SCORES)}, got {self.attack!r}")
        if not isinstance(self.confidence, int | float) or not 0.5 < self.confidence < 1.0:
            problems.append(f"confidence must be a number in (0.5, 1), got {self.confidence!r}")
        if not isinstance(self.tolerance, int | float) or not 0.0 <= self.tolerance < 0.5:
            problems.append(f"tolerance must be a number in [0, 0.5), got {self.tolerance!r}")
        if (
            not isinstance(self.bootstrap_samples, int)
            or isinstance(self.bootstrap_samples, bool)
            or self.bootstrap_samples < 100
        ):
            problems.append(
                f"bootstrap_samples must be an integer >= 100, got {self.bootstrap_samples!r}"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            problems.append(f"seed must be an integer, got {self.seed!r}")
        if problems:
            raise ValueError("; ".join(problems))


__all__ = ["ATTACK_SCORES", "AttackScore", "VerificationSettings"]
