from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from workers.engine.aggregation import ensemble_accuracy
from workers.engine.checkpoints import CheckpointStore
from workers.engine.data import Dataset
from workers.engine.sisa import (
    ProgressEvent,
    SisaConfig,
    SisaModel,
    load_shard_models,
    train_sisa,
)


def _train(dataset: Dataset, spec, checkpoints: CheckpointStore, config: SisaConfig, **kwargs):
    return train_sisa(
        spec=spec,
        data=dataset.train,
        num_classes=dataset.num_classes,
        config=config,
        checkpoints=checkpoints,
        device="cpu",
        **kwargs,
    )


@pytest.mark.parametrize("slices", [1, 2, 4, 8])
def test_slice_schedule_matches_the_compute_of_plain_training(tiny_spec, slices: int) -> None:
    config = SisaConfig(shards=1, slices=slices, epochs=20)
    shard_size = 1_000
    per_slice = shard_size / slices
    samples = sum(config.slice_epochs(spec=tiny_spec) * per_slice * r for r in range(1, slices + 1))
    assert samples == pytest.approx(20 * shard_size)


def test_theoretical_speedup() -> None:
    assert SisaConfig(shards=16, slices=8).theoretical_speedup() == pytest.approx(384 / 17)
    assert SisaConfig(shards=1, slices=1).theoretical_speedup() == 1.0


def test_every_shard_trains_on_cumulative_slices(
    tiny_dataset: Dataset, tiny_spec, checkpoints: CheckpointStore
) -> None:
    report = _train(tiny_dataset, tiny_spec, checkpoints, SisaConfig(shards=3, slices=3))
    assert report.stages_trained == 9
    assert report.retrained_shards == {0: 0, 1: 0, 2: 0}
    seen: list[np.ndarray] = []
    for shard in report.model.shards:
        manifests = [checkpoints.get_manifest(key=key) for key in shard.slice_keys]
        for earlier, later in pairwise(manifests):
            assert set(earlier.record_ids) < set(later.record_ids)
            assert later.parent_key == earlier.key
        assert manifests[-1].record_ids.size == shard.records
        seen.append(manifests[-1].record_ids)
    everything = np.concatenate(seen)
    assert np.array_equal(np.sort(everything), np.sort(tiny_dataset.train.record_ids))


def test_an_unchanged_key_trains_nothing(
    tiny_dataset: Dataset, tiny_spec, checkpoints: CheckpointStore
) -> None:
    config = SisaConfig(shards=2, slices=3)
    first = _train(tiny_dataset, tiny_spec, checkpoints, config)
    events: list[ProgressEvent] = []
    again = _train(tiny_dataset, tiny_spec, checkpoints, config, progress=events.append)
    assert again.stages_trained == 0
    assert events == []
    assert again.retrained_shards == {}
    assert again.model == first.model


def test_changed_seed_or_hyperparameters_retrain(
    tiny_dataset: Dataset, tiny_spec, checkpoints: CheckpointStore
) -> None:
    config = SisaConfig(shards=2, slices=2)
    first = _train(tiny_dataset, tiny_spec, checkpoints, config)
    other_seed = _train(
        tiny_dataset, tiny_spec, checkpoints, SisaConfig(shards=2, slices=2, seed=1)
    )
    other_lr = _train(
        tiny_dataset, tiny_spec.with_hyperparameters(learning_rate=0.01), checkpoints, config
    )
    assert other_seed.stages_trained == other_lr.stages_trained == 4
    keys = [set(r.model.checkpoint_keys()) for r in (first, other_seed, other_lr)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2])


def test_progress_reports_shard_slice_epoch_and_reaches_one(
    tiny_dataset: Dataset, tiny_spec, checkpoints: CheckpointStore
) -> None:
    events: list[ProgressEvent] = []
    _train(
        tiny_dataset, tiny_spec, checkpoints, SisaConfig(shards=2, slices=2), progress=events.append
    )
    assert {(e.shard, e.slice) for e in events} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions)
    assert fractions[-1] == pytest.approx(1.0)
    assert all(1 <= e.epoch <= e.epochs for e in events)


def test_model_manifest_round_trips_and_loads(
    tiny_dataset: Dataset, tiny_spec, checkpoints: CheckpointStore
) -> None:
    config = SisaConfig(shards=3, slices=2, aggregation="vote")
    report = _train(tiny_dataset, tiny_spec.with_hyperparameters(epochs=6), checkpoints, config)
    restored = SisaModel.from_dict(report.model.to_dict())
    assert restored == report.model
    spec = tiny_spec.with_hyperparameters(epochs=6)
    models = load_shard_models(model=restored, spec=spec, checkpoints=checkpoints, device="cpu")
    assert sorted(models) == [0, 1, 2]
    in_memory = [report.shard_models[shard] for shard in range(3)]
    loaded = [models[shard] for shard in range(3)]
    for mode in ("mean", "vote"):
        expected = ensemble_accuracy(models=in_memory, data=tiny_dataset.test, mode=mode)
        assert ensemble_accuracy(models=loaded, data=tiny_dataset.test, mode=mode) == expected
    assert expected > 0.4


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        SisaConfig(shards=0, slices=1)
    with pytest.raises(ValueError):
        SisaConfig(shards=1, slices=1, aggregation="median")  # type: ignore[arg-type]
