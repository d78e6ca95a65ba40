"""A `causal_lm` model's approximate-unlearning policy: the method (NPO, gradient difference, or
an edit that only suppresses the erased answers), its settings, and the text check that accepts
its result. Imports no torch: the API validates a policy when a model is registered.

The check compares what the unlearned model says about the erased records with what it says
about people it never saw (the dataset's holdout split): the erased completions may be
reproduced by greedy decoding at most `max_exact_match_gap` more often, and be at most
`logprob_margin` nats per token more likely. Without holdout records the check cannot compare
and never passes. No stopping rule aims at these figures: the method runs a fixed number of
steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workers.engine.approximate.policy import PolicyError
from workers.engine.validation import from_plain, validate

LM_METHODS = ("npo", "gradient_difference", "edit")
DEFAULT_LM_METHOD = "npo"
# Methods that only change what the model answers: they may mitigate, never close a request.
SUPPRESSION_METHODS = ("edit",)
_KEYS = ("method", "settings", "edit", "check")

EDITING_LIMITATIONS = (
    "An edit changes one layer's weights so that the model answers the edited prompts with the "
    "target instead of the fact. It suppresses an output; it does not remove the data's "
    "influence on the model. The fact may still come out under other phrasings, be read from "
    "other layers or recovered by further fine-tuning, and membership tests may still detect "
    "that the model was trained on it. Only training without the data removes it."
)


@dataclass(frozen=True)
class LmUnlearningSettings:
    """Defaults: NPO's settings chosen by `lethe bench lm` on seeds 100-101 (bench/RESULTS.md)."""

    steps: int = 20
    learning_rate: float = 3e-4
    beta: float = 1.0  # NPO's inverse temperature; unused by gradient difference
    retain_weight: float = 3.0
    batch_size: int = 8
    retain_sample: int = 512  # retained records drawn for the retain term

    def __post_init__(self) -> None:
        validate(
            self,
            lambda: {
                "steps": (1 <= self.steps <= 10_000, "must be 1 to 10000"),
                "learning_rate": (0 < self.learning_rate <= 1, "must be in (0, 1]"),
                "beta": (0 < self.beta <= 100, "must be in (0, 100]"),
                "retain_weight": (0 <= self.retain_weight <= 100, "must be in [0, 100]"),
                "batch_size": (1 <= self.batch_size <= 1024, "must be 1 to 1024"),
                "retain_sample": (1 <= self.retain_sample <= 1_000_000, "must be 1 to 1000000"),
            },
        )


@dataclass(frozen=True)
class LmEditSettings:
    """Method `edit`: every erased prompt answered with `target` by an edit of one MLP layer
    (`workers.engine.lm.editing`), holding `preserve_sample` retained records' answers in place.
    The edit is accepted only if at least `min_locality` of `locality_sample` other retained
    records (not among those held) are answered as before. Defaults: chosen by
    `lethe bench lm-methods` on seeds 100-101 (bench/RESULTS.md)."""

    target: str = " unknown"
    layer: int = -1  # negative counts from the last block
    rounds: int = 4
    steps: int = 40
    learning_rate: float = 0.2
    preserve_weight: float = 3.0
    preserve_sample: int = 512
    locality_sample: int = 120
    min_locality: float = 0.95

    def __post_init__(self) -> None:
        validate(
            self,
            lambda: {
                "target": (
                    isinstance(self.target, str) and 0 < len(self.target) <= 200,
                    "must be a string of 1 to 200 characters",
                ),
                "layer": (-64 <= self.layer < 64, "must be -64 to 63"),
                "rounds": (1 <= self.rounds <= 100, "must be 1 to 100"),
                "steps": (1 <= self.steps <= 10_000, "must be 1 to 10000"),
                "learning_rate": (0 < self.learning_rate <= 10, "must be in (0, 10]"),
                "preserve_weight": (0 <= self.preserve_weight <= 1e6, "must be in [0, 1e6]"),
                "preserve_sample": (1 <= self.preserve_sample <= 100_000, "must be 1 to 100000"),
                "locality_sample": (1 <= self.locality_sample <= 100_000, "must be 1 to 100000"),
                "min_locality": (0 <= self.min_locality <= 1, "must be in [0, 1]"),
            },
        )


@dataclass(frozen=True)
class TextCheckSettings:
    max_exact_match_gap: float = 0.05
    logprob_margin: float = 0.25

    def __post_init__(self) -> None:
        validate(
            self,
            lambda: {
                "max_exact_match_gap": (0 <= self.max_exact_match_gap <= 1, "must be in [0, 1]"),
                "logprob_margin": (0 <= self.logprob_margin <= 100, "must be in [0, 100]"),
            },
        )


@dataclass(frozen=True)
class TextCheck:
    passed: bool
    reasons: tuple[str, ...]


def check_text_figures(*, figures: Mapping[str, Any], settings: TextCheckSettings) -> TextCheck:
    """Whether `text_figures`' figures (erased against holdout) accept an unlearned model."""
    needed = (
        "erased_exact_match",
        "holdout_exact_match",
        "erased_mean_token_logprob",
        "holdout_mean_token_logprob",
    )
    if any(figures.get(key) is None for key in needed):
        return TextCheck(False, ("no holdout records to compare the erased ones with",))
    reasons = []
    gap = figures["erased_exact_match"] - figures["holdout_exact_match"]
    if gap > settings.max_exact_match_gap:
        reasons.append(
            f"erased answers reproduced {gap:.2f} more often than never-seen people's "
            f"(allowed {settings.max_exact_match_gap:.2f})"
        )
    excess = figures["erased_mean_token_logprob"] - figures["holdout_mean_token_logprob"]
    if excess > settings.logprob_margin:
        reasons.append(
            f"erased answers {excess:.2f} nats per token more likely than never-seen people's "
            f"(allowed {settings.logprob_margin:.2f})"
        )
    return TextCheck(not reasons, tuple(reasons))


@dataclass(frozen=True)
class LmApproximatePolicy:
    method: str = DEFAULT_LM_METHOD
    settings: LmUnlearningSettings = field(default_factory=LmUnlearningSettings)
    edit: LmEditSettings = field(default_factory=LmEditSettings)
    check: TextCheckSettings = field(default_factory=TextCheckSettings)

    @property
    def suppresses_only(self) -> bool:
        return self.method in SUPPRESSION_METHODS

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "settings": dataclasses.asdict(self.settings),
            "edit": dataclasses.asdict(self.edit),
            "check": dataclasses.asdict(self.check),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LmApproximatePolicy:
        """Parse `to_dict`'s form; missing keys take their defaults. Raises PolicyError naming
        every problem."""
        if not isinstance(data, Mapping):
            raise PolicyError([f"expected a JSON object, got {type(data).__name__}"])
        problems = [f"{key}: unknown key; known: {list(_KEYS)}" for key in data if key not in _KEYS]
        method = data.get("method", DEFAULT_LM_METHOD)
        if method not in LM_METHODS:
            problems.append(f"method: unknown method {method!r}; known: {list(LM_METHODS)}")
        sections: dict[str, Any] = {}
        for name, section in (
            ("settings", LmUnlearningSettings),
            ("edit", LmEditSettings),
            ("check", TextCheckSettings),
        ):
            values = data.get(name) or {}
            if not isinstance(values, Mapping):
                problems.append(f"{name}: expected a JSON object, got {type(values).__name__}")
                continue
            try:
                sections[name] = from_plain(section, values)
            except (TypeError, ValueError) as exc:
                problems.append(f"{name}: {exc}")
        if problems:
            raise PolicyError(problems)
        return cls(
            method=method,
            settings=sections["settings"],
            edit=sections["edit"],
            check=sections["check"],
        )
