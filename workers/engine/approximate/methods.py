"""The approximate unlearning methods, by name (their settings classes are in `settings`).

Every method has the same keyword-only signature::

    method(*, model, forget, retain, settings, progress=None) -> new model

It returns a new model in eval mode on the input model's device and never modifies the input.
`progress`, when given, is called with (steps completed, steps in total). No method looks at
records that no model trained on: those belong to the gate that judges the result.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import nn

from workers.engine.approximate.loops import StepProgress
from workers.engine.approximate.neggrad import neggrad_plus
from workers.engine.approximate.npo_distill import npo_distill
from workers.engine.approximate.retain_only import finetune, l1_sparse
from workers.engine.approximate.salun import salun
from workers.engine.approximate.scrub import scrub
from workers.engine.approximate.settings import method_names, settings_type
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
    ) -> nn.Module: ...


# Each method and one line on what it does.
METHODS: dict[str, tuple[UnlearningMethod, str]] = {
    "finetune": (finetune, "fine-tune on the retained records only (baseline)"),
    "npo_distill": (
        npo_distill,
        "shrink and noise the weights, then NPO on the forget set while distilling the original "
        "on retained records",
    ),
    "neggrad_plus": (
        neggrad_plus,
        "noise the weights, then descend on retained records and ascend on the forget set",
    ),
    "scrub": (scrub, "diverge from the original on the forget set, distill it on the rest"),
    "l1_sparse": (l1_sparse, "fine-tune on retained records under a decaying L1 penalty"),
    "salun": (salun, "random labels on the forget set, only the most salient weights move"),
}


def get_method(name: str) -> UnlearningMethod:
    """The method registered as `name`; KeyError lists the known names."""
    if name not in METHODS:
        raise KeyError(f"unknown unlearning method {name!r}; known: {method_names()}")
    return METHODS[name][0]


def run_method(
    *,
    name: str,
    model: nn.Module,
    forget: RecordArrays,
    retain: RecordArrays,
    settings: Any | None = None,
    progress: StepProgress | None = None,
) -> nn.Module:
    """Run method `name` with `settings` (its defaults when None)."""
    method, expected = get_method(name), settings_type(name)
    settings = expected() if settings is None else settings
    if not isinstance(settings, expected):
        raise TypeError(f"method {name!r} takes {expected.__name__}, got {type(settings).__name__}")
    if len(forget) == 0:
        raise ValueError("the forget set is empty: there is nothing to unlearn")
    if len(retain) == 0:
        raise ValueError("the retain set is empty: retrain from scratch instead")
    return method(model=model, forget=forget, retain=retain, settings=settings, progress=progress)
