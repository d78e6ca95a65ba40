from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workers.engine.artifacts import ArtifactStore, LocalArtifactStore
from workers.engine.checkpoints import (
    CheckpointStore,
    SliceManifest,
    checkpoint_key,
    find_tainted_checkpoints,
    purge_tainted_checkpoints,
)
from workers.engine.data import Dataset
from workers.engine.sisa import SisaConfig, train_sisa


def test_local_store_put_get_list_delete(tmp_path: Path) -> None:
    store = LocalArtifactStore(root=tmp_path)
    assert isinstance(store, ArtifactStore)
    store.put(key="a/b/one.bin", data=b"1")
    store.put(key="a/two.bin", data=b"2")
    store.put(key="a/two.bin", data=b"22")
    assert store.get(key="a/two.bin") == b"22"
    assert store.list(prefix="a/") == ["a/b/one.bin", "a/two.bin"]
    assert store.exists(key="a/b/one.bin")
    assert store.delete(key="a/b/one.bin") is True
    assert store.delete(key="a/b/one.bin") is False
    with pytest.raises(KeyError):
        store.get(key="a/b/one.bin")


@pytest.mark.parametrize("key", ["../escape", "/absolute", "a//b", "a/./b", ""])
def test_local_store_rejects_keys_outside_its_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        LocalArtifactStore(root=tmp_path).put(key=key, data=b"x")


def test_key_depends_on_the_record_set_not_its_order() -> None:
    training = {"seed": 0}
    key = checkpoint_key(record_ids=np.array([3, 1, 2]), parent_key=None, training=training)
    assert key == checkpoint_key(record_ids=np.array([1, 2, 3]), parent_key=None, training=training)
    assert key != checkpoint_key(record_ids=np.array([1, 2]), parent_key=None, training=training)
    assert key != checkpoint_key(record_ids=np.array([1, 2, 3]), parent_key="p", training=training)
    assert key != checkpoint_key(
        record_ids=np.array([1, 2, 3]), parent_key=None, training={"seed": 1}
    )


def test_manifest_round_trips_through_json() -> None:
    manifest = SliceManifest(
        key="k",
        shard=2,
        slice=1,
        parent_key="p",
        training={"seed": 4},
        record_ids=np.array([1, 5, 9]),
    )
    loaded = SliceManifest.from_json(manifest.to_json())
    assert (loaded.key, loaded.shard, loaded.slice, loaded.parent_key) == ("k", 2, 1, "p")
    assert loaded.training == {"seed": 4}
    assert loaded.record_ids.tolist() == [1, 5, 9]
    assert loaded.contains_any(np.array([5])) and not loaded.contains_any(np.array([2]))


def test_purge_lists_and_deletes_every_tainted_checkpoint(
    tiny_dataset: Dataset, tiny_spec, checkpoints: CheckpointStore
) -> None:
    config = SisaConfig(shards=3, slices=3, seed=0)
    trained = train_sisa(
        spec=tiny_spec,
        data=tiny_dataset.train,
        num_classes=5,
        config=config,
        checkpoints=checkpoints,
        device="cpu",
    )
    erased = tiny_dataset.train.record_ids[[0, 50]]
    expected = {
        manifest.key
        for manifest in checkpoints.manifests()
        if np.isin(erased, manifest.record_ids).any()
    }
    assert expected  # the erased records are in some checkpoints

    listed = find_tainted_checkpoints(checkpoints=checkpoints, erased_record_ids=erased)
    assert {m.key for m in listed} == expected
    dry_run = purge_tainted_checkpoints(
        checkpoints=checkpoints, erased_record_ids=erased, delete=False
    )
    assert {m.key for m in dry_run} == expected
    assert set(checkpoints.keys()) == set(trained.model.checkpoint_keys())

    purged = purge_tainted_checkpoints(checkpoints=checkpoints, erased_record_ids=erased)
    assert {m.key for m in purged} == expected
    assert not find_tainted_checkpoints(checkpoints=checkpoints, erased_record_ids=erased)
    remaining = set(checkpoints.keys())
    assert remaining == set(trained.model.checkpoint_keys()) - expected
    leftover_blobs = checkpoints.store.list(prefix="sisa/checkpoints/")
    assert len(leftover_blobs) == len(remaining)


def test_storage_modules_import_without_torch() -> None:
    code = (
        "import sys\n"
        "import workers.engine.artifacts, workers.engine.checkpoints, workers.engine.data\n"
        "import workers.engine.partition, workers.engine.sisa_model\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
