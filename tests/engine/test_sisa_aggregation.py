from __future__ import annotations

import numpy as np
import pytest

from workers.engine.aggregation import aggregate


def _probabilities() -> np.ndarray:
    # Three shards, two records, three classes.
    return np.array(
        [
            [[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]],
            [[0.4, 0.5, 0.1], [0.1, 0.8, 0.1]],
            [[0.4, 0.55, 0.05], [0.5, 0.1, 0.4]],
        ]
    )


def test_mean_of_softmax() -> None:
    scores = aggregate(probabilities=_probabilities(), mode="mean")
    assert np.allclose(scores[0], [1.4 / 3, 1.35 / 3, 0.25 / 3])
    assert scores.argmax(axis=1).tolist() == [0, 1]


def test_majority_vote_counts_each_shards_top_class() -> None:
    scores = aggregate(probabilities=_probabilities(), mode="vote")
    assert np.allclose(scores[0], [1 / 3, 2 / 3, 0])
    # Record 1: one vote each; the tie goes to the lower class index.
    assert np.allclose(scores[1], [1 / 3, 1 / 3, 1 / 3])
    assert scores.argmax(axis=1).tolist() == [1, 0]


def test_mean_and_vote_can_disagree() -> None:
    mean = aggregate(probabilities=_probabilities(), mode="mean").argmax(axis=1)
    vote = aggregate(probabilities=_probabilities(), mode="vote").argmax(axis=1)
    assert mean[0] != vote[0]


def test_unknown_mode_and_bad_shape_are_rejected() -> None:
    with pytest.raises(ValueError):
        aggregate(probabilities=_probabilities(), mode="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        aggregate(probabilities=np.zeros((2, 3)), mode="mean")


@pytest.mark.parametrize("mode", ["mean", "vote"])
def test_streaming_the_shards_gives_what_aggregating_them_all_gives(mode) -> None:
    import torch

    from workers.engine.aggregation import ensemble_predict_proba
    from workers.engine.training import predict_proba

    torch.manual_seed(0)
    models = [torch.nn.Linear(4, 3) for _ in range(5)]
    features = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    stacked = np.stack([predict_proba(model=m, features=features) for m in models])
    loaded: list[int] = []

    def one_at_a_time():
        for index, model in enumerate(models):
            loaded.append(index)
            yield model

    streamed = ensemble_predict_proba(models=one_at_a_time(), features=features, mode=mode)
    assert np.array_equal(streamed, aggregate(probabilities=stacked, mode=mode))
    assert loaded == [0, 1, 2, 3, 4]
