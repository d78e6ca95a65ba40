"""The approximate unlearning methods, by name, each with its settings class.

Every method has the same keyword-only signature::

    method(*, model, forget, retain, settings, progress=None, reference=None) -> new model

It returns a new model in eval mode on the input model's device and never modifies the input.
`progress`, when given, is called with (steps completed, steps in total). `reference`, when
given, holds records of the same dataset that no model trained on; a method may use them to
decide when to stop (`neggrad_plus` does), and must not train on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from torch import nn

from workers.engine.approximate.catalog import MethodSettings, method_names
from workers.engine.approximate.loops import StepProgress
from workers.engine.approximate.neggrad import neggrad_plus
from workers.engine.approximate.retain_only import finetune, l1_sparse
from workers.engine.approximate.salun import salun
from workers.engine.approximate.scrub import scrub
from workers.engine.approximate.settings import (
    FinetuneSettings,
    L1SparseSettings,
    NegGradPlusSettings,
    SalUnSettings,
    ScrubSettings,
)
from workers.engine.data import RecordArrays


class UnlearningMethod(Protocol):
    def __call__(
        self,
        *,
        model: nn.Module,
        forget: RecordArrays,
        retain: RecordArrays,
        settings: Any,
        progress: StepProgress | None = None,
        reference: RecordArrays | None = None,
    ) -> nn.Module: ...


@dataclass(frozen=True)
class MethodSpec(MethodSettings):
    """A registered method: its settings (see `catalog`), its function, and one line on it."""

    run: UnlearningMethod
    summary: str = ""


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            name="finetune",
            run=finetune,
            settings_type=FinetuneSettings,
            summary="fine-tune on the retained records only (baseline)",
        ),
        MethodSpec(
            name="neggrad_plus",
            run=neggrad_plus,
            settings_type=NegGradPlusSettings,
            summary="descend on retained records, ascend on the forget set",
        ),
        MethodSpec(
            name="scrub",
            run=scrub,
            settings_type=ScrubSettings,
            summary="diverge from the original on the forget set, distill it on the rest",
        ),
        MethodSpec(
            name="l1_sparse",
            run=l1_sparse,
            settings_type=L1SparseSettings,
            summary="fine-tune on retained records under a decaying L1 penalty",
        ),
        MethodSpec(
            name="salun",
            run=salun,
            settings_type=SalUnSettings,
            summary="random labels on the forget set, only the most salient weights move",
        ),
    )
}


def get_method(name: str) -> MethodSpec:
    """The method registered as `name`; KeyError lists the known names."""
    if name not in METHODS:
        raise KeyError(f"unknown unlearning method {name!r}; known: {method_names()}")
    return METHODS[name]


def run_method(
    *,
    name: str,
    model: nn.Module,
    forget: RecordArrays,
    retain: RecordArrays,
    settings: Any | None = None,
    progress: StepProgress | None = None,
    reference: RecordArrays | None = None,
) -> nn.Module:
    """Run method `name` with `settings` (its defaults when None)."""
    spec = get_method(name)
    settings = spec.default_settings() if settings is None else settings
    if not isinstance(settings, spec.settings_type):
        raise TypeError(
            f"method {name!r} takes {spec.settings_type.__name__}, got {type(settings).__name__}"
        )
    if len(forget) == 0:
        raise ValueError("the forget set is empty: there is nothing to unlearn")
    if len(retain) == 0:
        raise ValueError("the retain set is empty: retrain from scratch instead")
    return spec.run(
        model=model,
        forget=forget,
        retain=retain,
        settings=settings,
        progress=progress,
        reference=reference,
    )
