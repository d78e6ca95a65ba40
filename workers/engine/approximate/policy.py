"""A model's approximate-unlearning policy: which method, its settings, the gates, the fallback.

The workflow layer stores a policy as JSON on the model row; `to_dict` and `from_dict` are exact
inverses, and `from_dict` reports every problem of a malformed policy at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from workers.engine.approximate.catalog import method_names, method_settings
from workers.engine.mia_settings import VerificationSettings

Fallback = Literal["retrain", "sisa"]
FALLBACKS: tuple[str, ...] = ("retrain", "sisa")
POLICY_VERSION = 1
DEFAULT_METHOD = "neggrad_plus"
_KEYS = ("version", "method", "settings", "verification", "max_test_accuracy_drop", "fallback")


class PolicyError(ValueError):
    """A policy that cannot be used; `problems` lists each reason, with the key it concerns."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid approximate-unlearning policy: " + "; ".join(problems))


@dataclass(frozen=True)
class ApproximatePolicy:
    """How a model unlearns approximately, and when the result is not accepted.

    Attributes:
        method: a name from the method catalog. Default ``neggrad_plus``.
        settings: that method's settings dataclass; None means its defaults.
        verification: thresholds of the membership-inference gate.
        max_test_accuracy_drop: the largest fall in test accuracy (a fraction, 0.05 = five
            points) accepted. It catches a model broken into passing: a model that predicts
            nothing well also cannot tell forget from holdout records. Default 0.05.
        fallback: what to run when a gate fails: ``retrain`` (from scratch, for a monolithic
            model) or ``sisa`` (retrain the affected shards, for a SISA model). Default
            ``retrain``.
    """

    method: str = DEFAULT_METHOD
    settings: Any = None
    verification: VerificationSettings = field(default_factory=VerificationSettings)
    max_test_accuracy_drop: float = 0.05
    fallback: Fallback = "retrain"

    def __post_init__(self) -> None:
        problems = []
        try:
            spec = method_settings(self.method)
        except KeyError:
            raise PolicyError(
                [f"method: unknown method {self.method!r}; known: {method_names()}"]
            ) from None
        if self.settings is None:
            object.__setattr__(self, "settings", spec.default_settings())
        elif not isinstance(self.settings, spec.settings_type):
            problems.append(
                f"settings: method {self.method!r} takes {spec.settings_type.__name__}, "
                f"got {type(self.settings).__name__}"
            )
        # Checked at run time too: a policy may be built from untyped values.
        verification: object = self.verification
        if not isinstance(verification, VerificationSettings):
            problems.append("verification: expected VerificationSettings")
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
        """Parse `to_dict`'s form; missing keys take their defaults. Raises PolicyError."""
        if not isinstance(data, Mapping):
            raise PolicyError([f"expected a JSON object, got {type(data).__name__}"])
        problems = [f"{key}: unknown key; known: {list(_KEYS)}" for key in data if key not in _KEYS]
        version = data.get("version", POLICY_VERSION)
        if version != POLICY_VERSION:
            problems.append(
                f"version: only version {POLICY_VERSION} is understood, got {version!r}"
            )

        method = data.get("method", DEFAULT_METHOD)
        settings = None
        try:
            spec = method_settings(method) if isinstance(method, str) else None
        except KeyError:
            spec = None
        if spec is None:
            problems.append(f"method: unknown method {method!r}; known: {method_names()}")
        else:
            settings = _parse_section(
                "settings", data.get("settings"), spec.settings_from_dict, problems
            )

        verification = _parse_section(
            "verification", data.get("verification"), _verification_from_dict, problems
        )
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


def _verification_from_dict(values: Mapping[str, Any]) -> VerificationSettings:
    known = [f.name for f in dataclasses.fields(VerificationSettings)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown settings {unknown}; known: {known}")
    return VerificationSettings(**values)


def _parse_section(name: str, values: Any, parse: Any, problems: list[str]) -> Any:
    """Parse one nested object, turning its errors into problems prefixed by the key."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        problems.append(f"{name}: expected a JSON object, got {type(values).__name__}")
        return None
    try:
        return parse(values)
    except (TypeError, ValueError) as error:
        problems.append(f"{name}: {error}")
        return None
