"""The language-model approximate policy: parsing with every problem named, and the text check's
verdicts on figures where the answer is known."""

from __future__ import annotations

import pytest

from workers.engine.approximate.policy import PolicyError
from workers.engine.lm.policy import (
    LmApproximatePolicy,
    TextCheckSettings,
    check_text_figures,
)

LOOKS_UNSEEN = {
    "erased_exact_match": 0.0,
    "holdout_exact_match": 0.0,
    "erased_mean_token_logprob": -6.0,
    "holdout_mean_token_logprob": -5.5,
}


def test_round_trip_and_every_problem_named():
    policy = LmApproximatePolicy.from_dict({"method": "gradient_difference"})
    assert LmApproximatePolicy.from_dict(policy.to_dict()) == policy
    assert policy.settings.steps == 20
    with pytest.raises(PolicyError) as caught:
        LmApproximatePolicy.from_dict(
            {"method": "scrub", "settings": {"steps": 0, "colour": 1}, "extra": True}
        )
    problems = " | ".join(caught.value.problems)
    assert "extra: unknown key" in problems
    assert "method: unknown method 'scrub'" in problems
    assert "settings:" in problems and "colour" in problems
    with pytest.raises(PolicyError, match="steps must be 1 to 10000"):
        LmApproximatePolicy.from_dict({"settings": {"steps": 0}})


def test_the_text_check_passes_unseen_looking_answers_only():
    settings = TextCheckSettings()
    assert check_text_figures(figures=LOOKS_UNSEEN, settings=settings).passed
    remembered = {**LOOKS_UNSEEN, "erased_exact_match": 0.6, "erased_mean_token_logprob": -0.4}
    verdict = check_text_figures(figures=remembered, settings=settings)
    assert not verdict.passed
    assert len(verdict.reasons) == 2
    assert "0.60 more often" in verdict.reasons[0]
    no_holdout = {k: v for k, v in LOOKS_UNSEEN.items() if not k.startswith("holdout")}
    verdict = check_text_figures(figures=no_holdout, settings=settings)
    assert not verdict.passed and "no holdout records" in verdict.reasons[0]


def test_the_edit_section_and_what_only_suppresses():
    edit = LmApproximatePolicy.from_dict({"method": "edit", "edit": {"target": " no comment"}})
    assert edit.suppresses_only and edit.edit.target == " no comment"
    assert edit.edit.min_locality == 0.95
    assert LmApproximatePolicy.from_dict(edit.to_dict()) == edit
    assert not LmApproximatePolicy.from_dict({}).suppresses_only
    with pytest.raises(PolicyError) as caught:
        LmApproximatePolicy.from_dict(
            {"method": "edit", "edit": {"target": "", "min_locality": 1.5, "layer": 99}}
        )
    problems = " | ".join(caught.value.problems)
    assert problems.startswith("edit:")
    for wrong in ("target must be a string", "min_locality must be in [0, 1]", "layer must be"):
        assert wrong in problems
