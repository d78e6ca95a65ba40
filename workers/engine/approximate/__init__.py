"""Approximate unlearning: methods that edit a trained model instead of retraining it, and the
membership-inference gate that decides whether the edit may replace retraining."""

from workers.engine.approximate.policy import ApproximatePolicy, PolicyError
from workers.engine.approximate.registry import (
    METHODS,
    MethodSpec,
    get_method,
    method_names,
    run_method,
)
from workers.engine.approximate.settings import (
    FinetuneSettings,
    L1SparseSettings,
    NegGradPlusSettings,
    SalUnSettings,
    ScrubSettings,
)
from workers.engine.approximate.workflow import (
    ApproximateOutcome,
    Timings,
    Utility,
    measure_utility,
    unlearn_and_verify,
)

__all__ = [
    "METHODS",
    "ApproximateOutcome",
    "ApproximatePolicy",
    "FinetuneSettings",
    "L1SparseSettings",
    "MethodSpec",
    "NegGradPlusSettings",
    "PolicyError",
    "SalUnSettings",
    "ScrubSettings",
    "Timings",
    "Utility",
    "get_method",
    "measure_utility",
    "method_names",
    "run_method",
    "unlearn_and_verify",
]
