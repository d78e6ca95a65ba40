"""The competition's forgetting score against an example computed by hand (N = 4 models)."""

import math

import numpy as np
import pytest

from bench.forgetting_score import bucket_scores, forgetting_score, record_epsilon

# Four forget records, each scored by 4 unlearned and 4 retrained models (one column each).
RETRAINED = np.array(
    [[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0], [3.0, 3.0, 3.0, 3.0], [4.0, 4.0, 4.0, 4.0]]
)
UNLEARNED = np.array(
    [[1.0, 5.0, 2.0, 3.0], [2.0, 6.0, 3.0, 4.0], [3.0, 7.0, 4.0, 5.0], [4.0, 8.0, 5.0, 6.0]]
)


def test_epsilon_of_each_record_by_hand():
    # Record 0: the same four values on both sides. Every attack with two nonzero rates does no
    # better than guessing (e.g. threshold 2: FPR = FNR = 1/2, log(0.49 / 0.5) < 0): epsilon 0.
    assert record_epsilon(unlearned=UNLEARNED[:, 0], retrained=RETRAINED[:, 0]) == 0.0
    # Record 1: 5..8 against 1..4. Threshold 4 makes no error on either side: infinite.
    assert record_epsilon(unlearned=UNLEARNED[:, 1], retrained=RETRAINED[:, 1]) == math.inf
    # Record 2: 2..5 against 1..4. Best attack: "above 2" with FPR 2/4 (3 and 4) and FNR 1/4
    # (the 2), log((1 - 0.01 - 0.5) / 0.25) = log(1.96). Threshold 1 (FNR 0) is discarded.
    assert record_epsilon(unlearned=UNLEARNED[:, 2], retrained=RETRAINED[:, 2]) == pytest.approx(
        math.log(1.96)
    )
    # Record 3: 3..6 against 1..4. "above 3": FPR 1/4 (the 4), FNR 1/4 (the 3): log(0.74 / 0.25).
    assert record_epsilon(unlearned=UNLEARNED[:, 3], retrained=RETRAINED[:, 3]) == pytest.approx(
        math.log(2.96)
    )


def test_an_attack_on_the_low_side_counts_too():
    # Unlearned 1..4 below retrained 3..6: only "below 2" style attacks see it.
    assert record_epsilon(
        unlearned=np.array([1.0, 2.0, 3.0, 4.0]), retrained=np.array([3.0, 4.0, 5.0, 6.0])
    ) == pytest.approx(math.log(2.96))


def test_buckets_of_half_an_epsilon():
    epsilons = np.array([0.0, 0.49, 0.5, 0.99, 1.0, 5.99, 6.0, math.inf])
    assert bucket_scores(epsilons).tolist() == [
        1,
        1,
        0.5,
        0.5,
        0.25,
        2 / 2**12,
        2 / 2**13,
        2 / 2**13,
    ]


def test_forgetting_and_final_score_by_hand():
    score = forgetting_score(
        unlearned_scores=UNLEARNED,
        retrained_scores=RETRAINED,
        unlearned_retain_accuracy=0.99,
        retrained_retain_accuracy=1.0,
        unlearned_test_accuracy=0.80,
        retrained_test_accuracy=0.82,
    )
    # Buckets: epsilon 0 -> 1; infinity -> 2/2^13; log(1.96) = 0.67 -> 1/2; log(2.96) = 1.09 -> 1/4.
    expected_f = (1 + 2 / 2**13 + 0.5 + 0.25) / 4
    assert score.forgetting == pytest.approx(expected_f)
    assert score.final == pytest.approx(expected_f * 0.99 * (0.80 / 0.82))
    assert score.models == 4


def test_shapes_must_match():
    with pytest.raises(ValueError, match="one shape"):
        forgetting_score(
            unlearned_scores=UNLEARNED[:3],
            retrained_scores=RETRAINED,
            unlearned_retain_accuracy=1,
            retrained_retain_accuracy=1,
            unlearned_test_accuracy=1,
            retrained_test_accuracy=1,
        )
