"""Checking the engine's settings dataclasses, shared by every section of a model's policy.

Imports neither numpy nor torch: the API validates a policy when a model is registered, where
PyTorch is not installed. Every settings class validates itself on creation and reports every
problem at once, so a caller sees all that is wrong with a policy in one answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

Settings = TypeVar("Settings")

# The values a settings field may take, by the string of its annotation; others are not checked.
CHOICES: dict[str, tuple[str, ...]] = {"Optimizer": ("sgd", "adam")}


def type_problems(settings: Any) -> list[str]:
    """Type errors of a settings dataclass, by the annotation of each field.

    Integers are accepted where numbers are expected (JSON has one number type) and stored as
    floats, so a policy read back compares equal to the one written.
    """
    problems = []
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        annotation = str(field.type)
        if annotation == "int":
            if not isinstance(value, int) or isinstance(value, bool):
                problems.append(f"{field.name} must be an integer, got {value!r}")
        elif annotation == "float":
            if not isinstance(value, int | float) or isinstance(value, bool):
                problems.append(f"{field.name} must be a number, got {value!r}")
            else:
                object.__setattr__(settings, field.name, float(value))
        elif annotation == "bool":
            if not isinstance(value, bool):
                problems.append(f"{field.name} must be true or false, got {value!r}")
        elif annotation in CHOICES and value not in CHOICES[annotation]:
            problems.append(
                f"{field.name} must be one of {list(CHOICES[annotation])}, got {value!r}"
            )
    return problems


def validate(settings: Any, checks: Callable[[], dict[str, tuple[bool, str]]]) -> None:
    """Raise one ValueError listing every type error or, when the types are right, every failed
    range check (`checks` is only called then, so it may compare freely)."""
    problems = type_problems(settings)
    if not problems:
        problems = [f"{name} {rule}" for name, (ok, rule) in checks().items() if not ok]
    if problems:
        raise ValueError(f"invalid {type(settings).__name__}: " + "; ".join(problems))


def from_plain(cls: type[Settings], values: Mapping[str, Any] | None) -> Settings:
    """A settings dataclass from plain JSON values; missing keys take their defaults. ValueError
    names any unknown key or invalid value."""
    values = dict(values or {})
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown settings {unknown}; known: {known}")
    return cls(**values)
