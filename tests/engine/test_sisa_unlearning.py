from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.engine.architectures import ArchitectureSpec
from workers.engine.artifacts import LocalArtifactStore
from workers.engine.checkpoints import CheckpointStore
from workers.engine.data import Dataset
from workers.engine.partition import assign_shards, assign_slices
from workers.engine.sisa import (
    ProgressEvent,
    SisaConfig,
    SisaTrainingReport,
    load_shard_models,
    train_sisa,
)
from workers.engine.unlearning import unlearn, verify_exact

CONFIG = SisaConfig(shards=3, slices=4, seed=5)


def _train(dataset: Dataset, spec: ArchitectureSpec, checkpoints: CheckpointStore, data=None):
    return train_sisa(
        spec=spec,
        data=dataset.train if data is None else data,
        num_classes=dataset.num_classes,
        config=CONFIG,
        checkpoints=checkpoints,
        device="cpu",
    )


def _record_in(dataset: Dataset, *, shard: int, slice_: int) -> int:
    train = dataset.train
    shard_of = assign_shards(records=train, shards=CONFIG.shards, seed=CONFIG.seed)
    slice_of = assign_slices(records=train, slices=CONFIG.slices, seed=CONFIG.seed)
    position = np.flatnonzero((shard_of == shard) & (slice_of == slice_))[0]
    return int(train.record_ids[position])


@pytest.fixture
def trained(tiny_dataset: Dataset, tiny_spec, checkpoints: CheckpointStore) -> SisaTrainingReport:
    return _train(tiny_dataset, tiny_spec, checkpoints)


def test_unlearning_equals_training_from_scratch_bit_for_bit(
    tiny_dataset: Dataset, tiny_spec, checkpoints: CheckpointStore, trained, tmp_path
) -> None:
    erased = [
        _record_in(tiny_dataset, shard=1, slice_=2),
        _record_in(tiny_dataset, shard=2, slice_=0),
    ]
    result = unlearn(
        model=trained.model,
        spec=tiny_spec,
        data=tiny_dataset.train,
        erased_record_ids=erased,
        checkpoints=checkpoints,
        device="cpu",
    )
    assert verify_exact(model=result.model, checkpoints=checkpoints, erased_record_ids=erased) == []
    for key in result.model.checkpoint_keys():
        assert not checkpoints.get_manifest(key=key).contains_any(np.array(erased))
    assert sorted(result.erased_record_ids.tolist()) == sorted(erased)

    fresh = CheckpointStore(store=LocalArtifactStore(root=tmp_path / "fresh"))
    scratch = _train(tiny_dataset, tiny_spec, fresh, data=tiny_dataset.train.without(erased))
    assert scratch.model == result.model
    assert set(result.retrained_shards) == {1, 2}
    deployed = load_shard_models(
        model=result.model, spec=tiny_spec, checkpoints=checkpoints, device="cpu"
    )
    for shard in range(CONFIG.shards):
        unlearned = deployed[shard].state_dict()
        from_scratch = scratch.shard_models[shard].state_dict()
        assert unlearned.keys() == from_scratch.keys()
        for name in unlearned:
            assert torch.equal(unlearned[name], from_scratch[name]), (shard, name)
        if shard in result.retrained_shards:
            in_memory = result.shard_models[shard].state_dict()
            assert all(torch.equal(in_memory[n], unlearned[n]) for n in unlearned)


def test_only_affected_shards_retrain_from_their_earliest_affected_slice(
    tiny_dataset: Dataset, tiny_spec, checkpoints: CheckpointStore, trained
) -> None:
    erased = [
        _record_in(tiny_dataset, shard=0, slice_=3),
        _record_in(tiny_dataset, shard=0, slice_=1),
        _record_in(tiny_dataset, shard=2, slice_=2),
    ]
    events: list[ProgressEvent] = []
    result = unlearn(
        model=trained.model,
        spec=tiny_spec,
        data=tiny_dataset.train,
        erased_record_ids=erased,
        checkpoints=checkpoints,
        device="cpu",
        progress=events.append,
    )
    assert result.affected_slices == {0: 1, 2: 2}
    assert result.retrained_shards == {0: 1, 2: 2}
    # One retrain per affected shard: slices 1..3 of shard 0, slices 2..3 of shard 2.
    assert result.stages_trained == 3 + 2
    assert {(e.shard, e.slice) for e in events} == {(0, 1), (0, 2), (0, 3), (2, 2), (2, 3)}

    before = {s.shard: s.slice_keys for s in trained.model.shards}
    after = {s.shard: s.slice_keys for s in result.model.shards}
    assert after[1] == before[1]
    assert after[0][:1] == before[0][:1] and set(after[0][1:]).isdisjoint(before[0][1:])
    assert after[2][:2] == before[2][:2] and set(after[2][2:]).isdisjoint(before[2][2:])
    assert set(result.superseded_keys) == set(before[0][1:]) | set(before[2][2:])
    assert verify_exact(model=trained.model, checkpoints=checkpoints, erased_record_ids=erased)


def test_erasing_records_the_model_never_saw_trains_nothing(
    tiny_dataset: Dataset, tiny_spec, checkpoints: CheckpointStore, trained
) -> None:
    unseen = tiny_dataset.holdout.record_ids[:3]
    result = unlearn(
        model=trained.model,
        spec=tiny_spec,
        data=tiny_dataset.train,
        erased_record_ids=unseen,
        checkpoints=checkpoints,
        device="cpu",
    )
    assert result.model == trained.model
    assert result.stages_trained == 0 and result.retrained_shards == {}
    assert result.erased_record_ids.size == 0


def test_unlearning_twice_is_idempotent(
    tiny_dataset: Dataset, tiny_spec, checkpoints: CheckpointStore, trained
) -> None:
    erased = [_record_in(tiny_dataset, shard=1, slice_=1)]
    first = unlearn(
        model=trained.model,
        spec=tiny_spec,
        data=tiny_dataset.train,
        erased_record_ids=erased,
        checkpoints=checkpoints,
        device="cpu",
    )
    # A worker that crashed after training re-runs the job: every checkpoint is found again.
    second = unlearn(
        model=trained.model,
        spec=tiny_spec,
        data=tiny_dataset.train,
        erased_record_ids=erased,
        checkpoints=checkpoints,
        device="cpu",
    )
    assert second.model == first.model
    assert first.stages_trained == 3 and second.stages_trained == 0


def test_unlearning_rejects_a_different_spec(
    tiny_dataset: Dataset, tiny_spec, checkpoints: CheckpointStore, trained
) -> None:
    with pytest.raises(ValueError, match="spec"):
        unlearn(
            model=trained.model,
            spec=tiny_spec.with_hyperparameters(epochs=9),
            data=tiny_dataset.train,
            erased_record_ids=[1],
            checkpoints=checkpoints,
            device="cpu",
        )
