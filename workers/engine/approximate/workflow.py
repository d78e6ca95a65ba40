"""One approximate erasure, end to end: unlearn, verify, measure, and decide on the fallback.

With the model version's reference models the gate is the per-record test
(`workers.engine.verification`); without them, the pooled loss-threshold test of
`workers.engine.mia`, which one pooled number can satisfy and which is kept only for models whose
references are not built yet.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from torch import nn

from workers.engine.approximate.loops import StepProgress
from workers.engine.approximate.methods import run_method
from workers.engine.approximate.policy import ApproximatePolicy
from workers.engine.data import RecordArrays
from workers.engine.device import synchronize
from workers.engine.mia import MembershipTestResult, membership_test
from workers.engine.training import accuracy
from workers.engine.verification.gate import verify_forgetting
from workers.engine.verification.references import ReferenceSet
from workers.engine.verification.settings import GateSettings
from workers.engine.verification.verdict import ForgettingVerdict

Verification = MembershipTestResult | ForgettingVerdict


@dataclass(frozen=True)
class Utility:
    """Accuracy (fraction correct) of one model on the forget, retain and test records."""

    forget_accuracy: float
    retain_accuracy: float
    test_accuracy: float


def measure_utility(
    *, model: nn.Module, forget: RecordArrays, retain: RecordArrays, test: RecordArrays
) -> Utility:
    return Utility(
        forget_accuracy=accuracy(model=model, data=forget),
        retain_accuracy=accuracy(model=model, data=retain),
        test_accuracy=accuracy(model=model, data=test),
    )


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds of each stage, and the process CPU seconds of the unlearning (steadier
    than wall time on a machine that runs other work)."""

    unlearn_s: float
    unlearn_cpu_s: float
    verify_s: float
    evaluate_s: float


@dataclass(frozen=True)
class ApproximateOutcome:
    """What an approximate erasure produced and whether it may be activated.

    `fallback_needed` is true when the gate's verdict is not ``pass`` (``inconclusive`` is not
    a pass) or the test accuracy fell by more than the policy allows; `fallback` then names what
    to run instead. `verification_before` is the same test on the original model, for the
    record: it shows how much membership signal there was to remove. Both are a
    `ForgettingVerdict` when reference models were given, else a `MembershipTestResult`.
    """

    model: nn.Module
    method: str
    settings: dict[str, Any]
    verification: Verification
    verification_before: Verification
    utility_before: Utility
    utility_after: Utility
    timings: Timings
    fallback_needed: bool
    fallback: str | None
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able metrics (everything but the model)."""
        return {
            "method": self.method,
            "settings": self.settings,
            "verification": self.verification.to_dict(),
            "verification_before": self.verification_before.to_dict(),
            "utility_before": dataclasses.asdict(self.utility_before),
            "utility_after": dataclasses.asdict(self.utility_after),
            "timings": dataclasses.asdict(self.timings),
            "fallback_needed": self.fallback_needed,
            "fallback": self.fallback,
            "reasons": list(self.reasons),
        }


def unlearn_and_verify(
    *,
    model: nn.Module,
    forget: RecordArrays,
    retain: RecordArrays,
    holdout: RecordArrays,
    test: RecordArrays,
    policy: ApproximatePolicy,
    references: ReferenceSet | None = None,
    progress: StepProgress | None = None,
    closes_request: bool = False,
) -> ApproximateOutcome:
    """Unlearn `forget` from a copy of `model` with the policy's method, then gate the result.

    `holdout` must be records of the same dataset that no version of the model (and no
    reference model) trained on; `test` measures utility. `references` are the reference
    models of the version `model` is (`load_references`); with them the per-record gate
    decides, with the policy's `verification` settings. `progress` receives the method's
    (steps done, steps in total). With `closes_request` (the result would end the request, not
    only mitigate) a check too weak to close one (`closing_refusal`) also needs the fallback.
    The input model is left untouched.
    """
    started = time.perf_counter()
    cpu_started = time.process_time()
    unlearned = run_method(
        name=policy.method,
        model=model,
        forget=forget,
        retain=retain,
        settings=policy.settings,
        progress=progress,
    )
    synchronize(next(unlearned.parameters()).device)
    unlearned_at = time.perf_counter()
    unlearn_cpu_s = time.process_time() - cpu_started
    verification = _gate(
        model=unlearned, forget=forget, holdout=holdout, references=references, policy=policy
    )
    verification_before = _gate(
        model=model, forget=forget, holdout=holdout, references=references, policy=policy
    )
    verified_at = time.perf_counter()
    utility_before = measure_utility(model=model, forget=forget, retain=retain, test=test)
    utility_after = measure_utility(model=unlearned, forget=forget, retain=retain, test=test)
    evaluated_at = time.perf_counter()

    reasons = []
    if verification.verdict != "pass":
        reasons.append(f"membership test: {verification.verdict} ({_figures(verification)})")
    drop = utility_before.test_accuracy - utility_after.test_accuracy
    if drop > policy.max_test_accuracy_drop:
        reasons.append(
            f"test accuracy fell {drop:.3f}, more than the allowed "
            f"{policy.max_test_accuracy_drop:.3f}"
        )
    if closes_request and (
        refusal := closing_refusal(verification=verification, settings=policy.verification)
    ):
        reasons.append(refusal)
    return ApproximateOutcome(
        model=unlearned,
        method=policy.method,
        settings=dataclasses.asdict(policy.settings),
        verification=verification,
        verification_before=verification_before,
        utility_before=utility_before,
        utility_after=utility_after,
        timings=Timings(
            unlearn_s=unlearned_at - started,
            unlearn_cpu_s=unlearn_cpu_s,
            verify_s=verified_at - unlearned_at,
            evaluate_s=evaluated_at - verified_at,
        ),
        fallback_needed=bool(reasons),
        fallback=policy.fallback if reasons else None,
        reasons=tuple(reasons),
    )


def closing_refusal(*, verification: Verification, settings: GateSettings) -> str | None:
    """Why this check, whatever its verdict, may not close a request (None when it may).

    A request closed by the approximate path rests on the per-record gate its policy chose.
    Without reference models (a version built before the gate had them, or whose references
    earlier erasures purged) only the pooled test ran, which one pooled number satisfies.
    Where the policy's references give the retained share but too few are left to give it
    (each approximate close purges the references that saw the erased people, about half),
    only the memory excess decided, which misses memory concentrated in a few records. Either
    way the job retrains, and the exact version's references are built afresh.
    """
    if not isinstance(verification, ForgettingVerdict):
        return (
            "the base version has no reference models, and the pooled test cannot close a request"
        )
    thinned = verification.references < settings.references
    if thinned and verification.retained is None and settings.gives_retained_share:
        return (
            f"{verification.references} of the policy's {settings.references} reference "
            "models are left, too few for the retained share, and the memory excess alone "
            "cannot close a request"
        )
    return None


def _gate(
    *,
    model: nn.Module,
    forget: RecordArrays,
    holdout: RecordArrays,
    references: ReferenceSet | None,
    policy: ApproximatePolicy,
) -> Verification:
    if references is None:
        return membership_test(model=model, forget=forget, holdout=holdout)
    return verify_forgetting(
        model=model,
        forget=forget,
        holdout=holdout,
        references=references,
        settings=policy.verification,
    )


def _figures(verification: Verification) -> str:
    if isinstance(verification, ForgettingVerdict):
        return verification.reason
    v = verification
    return f"AUC {v.auc:.3f}, {v.confidence:.0%} CI {v.ci_low:.3f}-{v.ci_high:.3f}"
