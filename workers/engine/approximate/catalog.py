"""The approximate methods' names and settings classes. Imports no torch: a model's policy can
be validated where PyTorch is not installed (the API)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from workers.engine.approximate.settings import (
    FinetuneSettings,
    L1SparseSettings,
    NegGradPlusSettings,
    SalUnSettings,
    ScrubSettings,
)


@dataclass(frozen=True)
class MethodSettings:
    """A method's name and the dataclass of its settings."""

    name: str
    settings_type: type

    def default_settings(self) -> Any:
        return self.settings_type()

    def settings_from_dict(self, values: Mapping[str, Any] | None) -> Any:
        """Settings from plain values; missing keys take their defaults. ValueError names any
        unknown key or invalid value."""
        values = dict(values or {})
        known = [f.name for f in fields(self.settings_type)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown settings {unknown} for method {self.name!r}; known: {known}")
        return self.settings_type(**values)


CATALOG: dict[str, MethodSettings] = {
    m.name: m
    for m in (
        MethodSettings("finetune", FinetuneSettings),
        MethodSettings("neggrad_plus", NegGradPlusSettings),
        MethodSettings("scrub", ScrubSettings),
        MethodSettings("l1_sparse", L1SparseSettings),
        MethodSettings("salun", SalUnSettings),
    )
}


def method_names() -> list[str]:
    return list(CATALOG)


def method_settings(name: str) -> MethodSettings:
    """KeyError lists the known names."""
    if name not in CATALOG:
        raise KeyError(f"unknown unlearning method {name!r}; known: {method_names()}")
    return CATALOG[name]
