from __future__ import annotations

from importlib.metadata import EntryPoint

import numpy as np
import pytest
import torch
from torch import nn

from workers.engine.architectures import (
    ENTRY_POINT_GROUP,
    ArchitectureSpec,
    get_architecture,
    list_architectures,
    load_entry_point_architectures,
)
from workers.engine.data import Dataset, digits
from workers.engine.device import pick_device
from workers.engine.training import accuracy, epoch_sizes, predict_proba, train_model


def _build_linear(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), num_classes))


# Resolved by the entry points below, as an installed plugin's would be.
linear_spec = ArchitectureSpec(name="linear-test", build=_build_linear, epochs=3)


def make_linear_spec() -> ArchitectureSpec:
    return linear_spec.with_hyperparameters(name="linear-factory-test")


def not_a_spec() -> str:
    return "nope"


def _entry_point(name: str, attribute: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{__name__}:{attribute}", group=ENTRY_POINT_GROUP)


def _parameters(model: nn.Module) -> list[torch.Tensor]:
    return list(model.state_dict().values())


def test_builtin_architectures_are_listed() -> None:
    names = list_architectures()
    assert {"mlp", "cnn"} <= set(names)
    assert names == sorted(names)
    assert get_architecture("mlp").name == "mlp"


def test_unknown_architecture_names_the_available_ones() -> None:
    with pytest.raises(KeyError, match="mlp"):
        get_architecture("does-not-exist")


def test_builtin_models_produce_class_scores() -> None:
    mlp = get_architecture("mlp").build((600,), 100)
    cnn = get_architecture("cnn").build((1, 8, 8), 10)
    assert mlp(torch.zeros(3, 600)).shape == (3, 100)
    assert cnn(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(ValueError):
        get_architecture("cnn").build((64,), 10)


def test_entry_points_load_specs_and_spec_factories() -> None:
    specs = load_entry_point_architectures(
        entry_points_to_load=[
            _entry_point("linear", "linear_spec"),
            _entry_point("linear-factory", "make_linear_spec"),
        ]
    )
    assert set(specs) == {"linear-test", "linear-factory-test"}
    assert specs["linear-test"].build((4,), 2)(torch.zeros(1, 4)).shape == (1, 2)


def test_entry_point_that_is_not_a_spec_is_rejected() -> None:
    with pytest.raises(TypeError, match="ArchitectureSpec"):
        load_entry_point_architectures(entry_points_to_load=[_entry_point("bad", "not_a_spec")])


def test_hyperparameters_describe_the_spec() -> None:
    spec = get_architecture("mlp").with_hyperparameters(epochs=3, learning_rate=0.01)
    assert spec.hyperparameters()["epochs"] == 3
    assert spec.hyperparameters()["learning_rate"] == 0.01
    assert spec.hyperparameters() != get_architecture("mlp").hyperparameters()


def test_epoch_schedule_allows_fractional_epochs() -> None:
    assert epoch_sizes(records=10, epochs=2) == [10, 10]
    assert epoch_sizes(records=10, epochs=2.5) == [10, 10, 5]
    assert epoch_sizes(records=10, epochs=0.01) == []


def test_training_is_deterministic_for_a_seed(tiny_dataset: Dataset, tiny_spec) -> None:
    def train(seed: int, order: np.ndarray | None = None) -> nn.Module:
        data = tiny_dataset.train if order is None else tiny_dataset.train.subset(order)
        return train_model(spec=tiny_spec, data=data, num_classes=5, seed=seed, device="cpu")

    first, second, other_seed = train(1), train(1), train(2)
    shuffled = train(1, np.random.default_rng(0).permutation(len(tiny_dataset.train)))
    assert all(map(torch.equal, _parameters(first), _parameters(second)))
    assert all(map(torch.equal, _parameters(first), _parameters(shuffled)))
    assert not all(map(torch.equal, _parameters(first), _parameters(other_seed)))


def test_training_leaves_the_global_rng_alone(tiny_dataset: Dataset, tiny_spec) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_model(spec=tiny_spec, data=tiny_dataset.train, num_classes=5, seed=0, device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_training_reports_epochs_and_continues_from_a_state(
    tiny_dataset: Dataset, tiny_spec
) -> None:
    seen: list[tuple[int, int]] = []
    model = train_model(
        spec=tiny_spec,
        data=tiny_dataset.train,
        num_classes=5,
        seed=0,
        epochs=2.5,
        device="cpu",
        progress=lambda epoch, total: seen.append((epoch, total)),
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    continued = train_model(
        spec=tiny_spec,
        data=tiny_dataset.train,
        num_classes=5,
        seed=0,
        epochs=0,
        device="cpu",
        init_state=model.state_dict(),
    )
    assert all(map(torch.equal, _parameters(model), _parameters(continued)))


def test_trained_model_learns_and_predicts_probabilities(tiny_dataset: Dataset, tiny_spec) -> None:
    model = train_model(
        spec=tiny_spec, data=tiny_dataset.train, num_classes=5, seed=0, epochs=5, device="cpu"
    )
    probabilities = predict_proba(model=model, features=tiny_dataset.test.features)
    assert probabilities.shape == (len(tiny_dataset.test), 5)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert accuracy(model=model, data=tiny_dataset.test) > 0.5


def test_cnn_trains_on_digits() -> None:
    dataset = digits(seed=0)
    spec = get_architecture("cnn").with_hyperparameters(epochs=2)
    train = dataset.train.subset(slice(0, 600))
    model = train_model(spec=spec, data=train, num_classes=10, seed=0, device="cpu")
    assert accuracy(model=model, data=dataset.test) > 0.5


def test_pick_device_uses_cuda_only_when_present() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device().type == expected
    assert pick_device(prefer="cpu").type == "cpu"
