from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workers.engine.architectures import ArchitectureSpec, get_architecture
from workers.engine.artifacts import LocalArtifactStore
from workers.engine.checkpoints import CheckpointStore
from workers.engine.data import Dataset, synthetic_purchase

# The test models are tiny: a second intra-op thread only adds synchronization, and it slows
# training several-fold when the runner's cores are busy with other jobs.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    return synthetic_purchase(records=600, seed=3, num_features=32, num_classes=5, num_groups=2)


@pytest.fixture(scope="session")
def tiny_spec() -> ArchitectureSpec:
    return get_architecture("mlp").with_hyperparameters(epochs=2, batch_size=32)


@pytest.fixture
def checkpoints(tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(store=LocalArtifactStore(root=tmp_path / "artifacts"))
