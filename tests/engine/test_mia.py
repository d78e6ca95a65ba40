import json

import numpy as np
import pytest

from workers.engine.mia import (
    VerificationSettings,
    attack_auc,
    decide_verdict,
    holdout_percentiles,
    membership_scores,
    membership_test_from_scores,
)

# Scores of a fixed small example (higher = more member-like).
FORGET = np.array([0.9, 0.4, 0.7, 0.4])
HOLDOUT = np.array([0.4, 0.1, 0.7])


def test_auc_matches_pair_counting_by_hand():
    # Each (forget, holdout) pair scores 1 when the forget score is higher, 1/2 on a tie:
    #   0.9 beats 0.4, 0.1, 0.7                 -> 3
    #   0.4 ties 0.4, beats 0.1, loses to 0.7   -> 1.5
    #   0.7 beats 0.4 and 0.1, ties 0.7         -> 2.5
    #   0.4 (again)                             -> 1.5
    # 8.5 wins out of 4 * 3 = 12 pairs.
    expected = 8.5 / 12
    assert attack_auc(forget_scores=FORGET, holdout_scores=HOLDOUT) == pytest.approx(expected)


def test_percentiles_by_hand_and_their_mean_is_the_auc():
    # 0.9: 3 of 3 below; 0.4: 1 below + 1 tie; 0.7: 2 below + 1 tie.
    expected = [100.0, 150 / 3, 250 / 3, 150 / 3]
    percentiles = holdout_percentiles(forget_scores=FORGET, holdout_scores=HOLDOUT)
    assert percentiles == pytest.approx(expected)
    assert percentiles.mean() / 100 == pytest.approx(8.5 / 12)


def test_loss_score_ranks_records_as_the_cross_entropy_does():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(200, 5))
    labels = rng.integers(0, 5, size=200)
    scores = membership_scores(logits=logits, labels=labels, attack="loss")
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    cross_entropy = -log_probs[np.arange(200), labels]
    assert np.array_equal(np.argsort(scores), np.argsort(-cross_entropy))
    p = np.exp(-cross_entropy)
    assert scores == pytest.approx(np.log(p / (1 - p)))


def test_confidence_score_is_the_log_odds_of_the_top_class():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    scores = membership_scores(logits=logits, labels=np.array([1, 1]), attack="confidence")
    top = np.exp(logits).max(axis=1) / np.exp(logits).sum(axis=1)
    assert scores == pytest.approx(np.log(top / (1 - top)))


def test_loss_score_keeps_confident_records_apart():
    # Both round to probability 1.0 in float32, yet one is fitted far more confidently.
    logits = np.array([[30.0, 0.0], [60.0, 0.0]])
    scores = membership_scores(logits=logits, labels=np.array([0, 0]))
    assert scores[1] > scores[0] > 20


def test_diverged_model_scores_are_finite_and_lowest():
    logits = np.array([[np.nan, np.nan], [1.0, 0.0]])
    scores = membership_scores(logits=logits, labels=np.array([0, 0]))
    assert np.isfinite(scores).all()
    assert scores[0] < scores[1]


@pytest.mark.parametrize(
    ("ci_low", "ci_high", "verdict"),
    [
        (0.53, 0.70, "remembers"),
        (0.51, 0.60, "pass"),  # significant, but within the tolerance
        (0.30, 0.47, "over_forgot"),
        (0.40, 0.49, "pass"),
        (0.45, 0.56, "pass"),
    ],
)
def test_verdict_thresholds(ci_low, ci_high, verdict):
    assert decide_verdict(ci_low=ci_low, ci_high=ci_high, tolerance=0.02) == verdict


def test_clear_signal_fails_and_no_signal_passes():
    rng = np.random.default_rng(1)
    holdout = rng.normal(size=1000)
    remembered = membership_test_from_scores(
        forget_scores=rng.normal(loc=1.0, size=100), holdout_scores=holdout
    )
    over_forgotten = membership_test_from_scores(
        forget_scores=rng.normal(loc=-1.0, size=100), holdout_scores=holdout
    )
    unseen = membership_test_from_scores(forget_scores=rng.normal(size=100), holdout_scores=holdout)
    assert remembered.verdict == "remembers" and remembered.auc > 0.7
    assert over_forgotten.verdict == "over_forgot" and over_forgotten.auc < 0.3
    assert unseen.verdict == "pass"
    for result in (remembered, over_forgotten, unseen):
        assert result.ci_low <= result.auc <= result.ci_high
        assert (result.n_forget, result.n_holdout) == (100, 1000)


def test_interval_narrows_with_more_forget_records_and_is_reproducible():
    rng = np.random.default_rng(2)
    holdout = rng.normal(size=2000)
    few, many = rng.normal(size=10), rng.normal(size=500)
    small = membership_test_from_scores(forget_scores=few, holdout_scores=holdout)
    large = membership_test_from_scores(forget_scores=many, holdout_scores=holdout)
    assert small.ci_high - small.ci_low > 2 * (large.ci_high - large.ci_low)
    assert small.undetectable_above > large.undetectable_above
    repeat = membership_test_from_scores(forget_scores=many, holdout_scores=holdout)
    assert (repeat.ci_low, repeat.ci_high) == (large.ci_low, large.ci_high)


def test_result_to_dict_is_json():
    result = membership_test_from_scores(forget_scores=FORGET, holdout_scores=HOLDOUT)
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) >= {
        "auc",
        "ci_low",
        "ci_high",
        "percentiles",
        "verdict",
        "n_forget",
        "n_holdout",
        "undetectable_above",
    }
    assert data["n_forget"] == 4 and len(data["percentiles"]) == 4


def test_empty_groups_are_refused():
    with pytest.raises(ValueError, match="at least one forget"):
        membership_test_from_scores(forget_scores=np.array([]), holdout_scores=HOLDOUT)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"attack": "lira"}, "attack must be one of"),
        ({"confidence": 1.0}, "confidence must be a number in"),
        ({"tolerance": -0.1}, "tolerance must be a number in"),
        ({"bootstrap_samples": 10}, "bootstrap_samples must be an integer >= 100"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_verification_settings_are_validated(overrides, message):
    with pytest.raises(ValueError, match=message):
        VerificationSettings(**overrides)
