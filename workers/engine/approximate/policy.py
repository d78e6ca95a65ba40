"""A model's approximate-unlearning policy: which method, its settings, the gate, the fallback.

The workflow layer stores a policy as JSON on the model row; `to_dict` and `from_dict` are exact
inverses, and `from_dict` reports every problem of a malformed policy at once. Imports no torch:
the API validates a policy when a model is registered.

Version 2 replaced the pooled membership test by the per-record gate (`verification` holds
`GateSettings`) and dropped `neggrad_plus`'s stopping rule. A stored version-1 policy is still
read: its method and settings are kept, its `verification` section and the stopping keys
(`stop_at_unseen`, `check_every`, `max_forget_epochs`) are dropped, and what is missing takes
today's defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from workers.engine.approximate.settings import method_names, settings_type
from workers.engine.validation import from_plain
from workers.engine.verification.settings import GateSettings

Fallback = Literal["retrain", "sisa"]
FALLBACKS: tuple[str, ...] = ("retrain", "sisa")
POLICY_VERSION = 2
DEFAULT_METHOD = "npo_distill"
_KEYS = ("version", "method", "settings", "verification", "max_test_accuracy_drop", "fallback")
_DROPPED_IN_V2 = {"stop_at_unseen", "check_every", "max_forget_epochs"}


class PolicyError(ValueError):
    """A policy that cannot be used; `problems` lists each reason, with the key it concerns."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid approximate-unlearning policy: " + "; ".join(problems))


@dataclass(frozen=True)
class ApproximatePolicy:
    """How a model unlearns approximately, and when the result is not accepted.

    Attributes:
        method: a name from `settings.METHOD_SETTINGS`. Default ``npo_distill``.
        settings: that method's settings dataclass; None means its defaults.
        verification: the per-record gate: its reference models and its margin.
        max_test_accuracy_drop: the largest fall in test accuracy (a fraction, 0.05 = five
            points) accepted. It catches a model broken into passing: a model that predicts
            nothing well also cannot tell forget from holdout records. Default 0.05.
        fallback: what to run when a gate fails: ``retrain`` (from scratch, for a monolithic
            model) or ``sisa`` (retrain the affected shards, for a SISA model). Default
            ``retrain``.
    """

    method: str = DEFAULT_METHOD
    settings: Any = None
    verification: GateSettings = field(default_factory=GateSettings)
    max_test_accuracy_drop: float = 0.05
    fallback: Fallback = "retrain"

    def __post_init__(self) -> None:
        try:
            expected = settings_type(self.method)
        except KeyError:
            raise PolicyError(
                [f"method: unknown method {self.method!r}; known: {method_names()}"]
            ) from None
        problems = []
        if self.settings is None:
            object.__setattr__(self, "settings", expected())
        elif not isinstance(self.settings, expected):
            problems.append(
                f"settings: method {self.method!r} takes {expected.__name__}, "
                f"got {type(self.settings).__name__}"
            )
        # Checked at run time too: a policy may be built from untyped values.
        verification: object = self.verification
        if not isinstance(verification, GateSettings):
            problems.append("verification: expected GateSettings")
        problems += _scalar_problems(
            max_test_accuracy_drop=self.max_test_accuracy_drop, fallback=self.fallback
        )
        if problems:
            raise PolicyError(problems)

    @classmethod
    def for_model(cls, *, sharded: bool, method: str = DEFAULT_METHOD) -> ApproximatePolicy:
        """Defaults for a model: falls back to SISA shard retraining when `sharded`."""
        return cls(method=method, fallback="sisa" if sharded else "retrain")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return {
            "version": POLICY_VERSION,
            "method": self.method,
            "settings": dataclasses.asdict(self.settings),
            "verification": dataclasses.asdict(self.verification),
            "max_test_accuracy_drop": self.max_test_accuracy_drop,
            "fallback": self.fallback,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApproximatePolicy:
        """Parse `to_dict`'s form (or a stored version 1); missing keys take their defaults.
        Raises PolicyError."""
        if not isinstance(data, Mapping):
            raise PolicyError([f"expected a JSON object, got {type(data).__name__}"])
        problems = [f"{key}: unknown key; known: {list(_KEYS)}" for key in data if key not in _KEYS]
        version = data.get("version", POLICY_VERSION)
        if version not in (1, POLICY_VERSION):
            problems.append(
                f"version: versions 1 and {POLICY_VERSION} are understood, got {version!r}"
            )
        method = data.get("method", DEFAULT_METHOD)
        settings_values = data.get("settings")
        verification_values = data.get("verification")
        if version == 1:
            if isinstance(settings_values, Mapping):
                settings_values = {
                    k: v for k, v in settings_values.items() if k not in _DROPPED_IN_V2
                }
            verification_values = None

        settings = None
        try:
            expected = settings_type(method) if isinstance(method, str) else None
        except KeyError:
            expected = None
        if expected is None:
            problems.append(f"method: unknown method {method!r}; known: {method_names()}")
        else:
            settings = _parse_section("settings", settings_values, expected, problems)
        verification = _parse_section("verification", verification_values, GateSettings, problems)
        max_test_accuracy_drop = data.get("max_test_accuracy_drop", 0.05)
        fallback = data.get("fallback", "retrain")
        problems += _scalar_problems(
            max_test_accuracy_drop=max_test_accuracy_drop, fallback=fallback
        )
        if problems:
            raise PolicyError(problems)
        return cls(
            method=method,
            settings=settings,
            verification=verification,
            max_test_accuracy_drop=max_test_accuracy_drop,
            fallback=fallback,
        )


def _scalar_problems(*, max_test_accuracy_drop: Any, fallback: Any) -> list[str]:
    problems = []
    drop = max_test_accuracy_drop
    if isinstance(drop, bool) or not isinstance(drop, int | float) or not 0.0 <= drop <= 1.0:
        problems.append(f"max_test_accuracy_drop: must be a number in [0, 1], got {drop!r}")
    if fallback not in FALLBACKS:
        problems.append(f"fallback: must be one of {list(FALLBACKS)}, got {fallback!r}")
    return problems


def _parse_section(name: str, values: Any, cls: type, problems: list[str]) -> Any:
    """Parse one nested object, turning its errors into problems prefixed by the key."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        problems.append(f"{name}: expected a JSON object, got {type(values).__name__}")
        return None
    try:
        return from_plain(cls, values)
    except (TypeError, ValueError) as error:
        problems.append(f"{name}: {error}")
        return None
