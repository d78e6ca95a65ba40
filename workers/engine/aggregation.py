"""Combining the shard models of a SISA ensemble into one prediction."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from torch import nn

from workers.engine.data import RecordArrays
from workers.engine.sisa_model import AGGREGATIONS, Aggregation
from workers.engine.training import predict_proba


def aggregate(*, probabilities: np.ndarray, mode: Aggregation = "mean") -> np.ndarray:
    """Per-shard class probabilities [shards, n, classes] to ensemble scores [n, classes].

    `mean`: the mean of the shards' softmax outputs. `vote`: the share of shards whose top class
    is each class (a tie goes to the lower class index under argmax).
    """
    if probabilities.ndim != 3 or probabilities.shape[0] == 0:
        raise ValueError("expected probabilities of shape [shards, n, classes] with shards >= 1")
    if mode == "mean":
        mean: np.ndarray = probabilities.mean(axis=0)
        return mean
    if mode == "vote":
        shards, count, classes = probabilities.shape
        winners = probabilities.argmax(axis=2)
        votes = np.zeros((count, classes), dtype=np.float32)
        for shard_winners in winners:
            votes[np.arange(count), shard_winners] += 1.0
        shares: np.ndarray = votes / shards
        return shares
    raise ValueError(f"unknown aggregation {mode!r}; expected one of {AGGREGATIONS}")


def ensemble_predict_proba(
    *, models: Iterable[nn.Module], features: np.ndarray, mode: Aggregation = "mean"
) -> np.ndarray:
    """Ensemble scores [n, classes] of the shard models on `features`, as `aggregate` gives
    them. Models are taken one at a time, and only a running sum is kept: given an iterator
    that loads each model as it is asked for, one shard's model is in memory at a time."""
    if mode not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {mode!r}; expected one of {AGGREGATIONS}")
    total: np.ndarray | None = None
    count = 0
    for model in models:
        probabilities = predict_proba(model=model, features=features)
        if mode == "vote":
            winners = probabilities.argmax(axis=1)
            probabilities = np.zeros_like(probabilities)
            probabilities[np.arange(len(winners)), winners] = 1.0
        total = probabilities if total is None else total + probabilities
        count += 1
    if total is None:
        raise ValueError("an ensemble needs at least one shard model")
    scores: np.ndarray = total / count
    return scores


def ensemble_accuracy(
    *, models: Iterable[nn.Module], data: RecordArrays, mode: Aggregation = "mean"
) -> float:
    """Share of `data` the ensemble labels correctly."""
    if len(data) == 0:
        return float("nan")
    scores = ensemble_predict_proba(models=models, features=data.features, mode=mode)
    return float((scores.argmax(axis=1) == data.labels).mean())
