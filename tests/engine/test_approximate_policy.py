import json

import pytest

from workers.engine.approximate.policy import ApproximatePolicy, PolicyError
from workers.engine.approximate.settings import (
    NegGradPlusSettings,
    ScrubSettings,
    method_names,
    settings_type,
)
from workers.engine.verification.settings import GateSettings


def test_defaults_round_trip_through_json():
    policy = ApproximatePolicy()
    stored = json.loads(json.dumps(policy.to_dict()))
    assert ApproximatePolicy.from_dict(stored) == policy
    assert stored["version"] == 2
    assert stored["verification"] == {
        "references": 16,
        "reference_share": 0.5,
        "margin": 0.25,
        "retained_margin": 0.25,
        "confidence": 0.9,
        "seed": 0,
    }
    assert stored["fallback"] == "retrain"


def test_custom_policy_round_trips():
    policy = ApproximatePolicy(
        method="scrub",
        settings=ScrubSettings(epochs=4, max_epochs=2, learning_rate=1e-3),
        verification=GateSettings(references=32, margin=0.3),
        max_test_accuracy_drop=0.02,
        fallback="sisa",
    )
    assert ApproximatePolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy


def test_a_stored_version_1_policy_is_still_read():
    stored = {
        "version": 1,
        "method": "neggrad_plus",
        "settings": {
            "forget_epochs": 10,
            "learning_rate": 0.0003,
            "stop_at_unseen": True,
            "check_every": 5,
            "max_forget_epochs": 30,
        },
        "verification": {
            "attack": "loss",
            "confidence": 0.95,
            "tolerance": 0.02,
            "bootstrap_samples": 1000,
            "seed": 0,
        },
        "max_test_accuracy_drop": 0.05,
        "fallback": "retrain",
    }
    policy = ApproximatePolicy.from_dict(stored)
    assert policy.settings == NegGradPlusSettings(forget_epochs=10, learning_rate=0.0003)
    assert policy.verification == GateSettings()
    assert policy.to_dict()["version"] == 2


def test_missing_keys_take_defaults_and_partial_settings_are_completed():
    policy = ApproximatePolicy.from_dict({"method": "scrub", "settings": {"epochs": 8}})
    assert policy.settings == ScrubSettings(epochs=8)
    assert policy.verification == GateSettings()


def test_integers_are_accepted_where_numbers_are_expected():
    policy = ApproximatePolicy.from_dict({"settings": {"learning_rate": 1}})
    assert policy.settings.learning_rate == 1.0
    assert isinstance(policy.settings.learning_rate, float)


def test_for_model_picks_the_fallback():
    assert ApproximatePolicy.for_model(sharded=True).fallback == "sisa"
    assert ApproximatePolicy.for_model(sharded=False).fallback == "retrain"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"method": "forget_everything"}, "method: unknown method 'forget_everything'"),
        ({"method": 3}, "method: unknown method 3"),
        ({"method": "scrub", "settings": {"lr": 0.1}}, "settings: unknown settings ['lr']"),
        ({"settings": {"learning_rate": -1}}, "learning_rate must be positive"),
        (
            {"method": "neggrad_plus", "settings": {"forget_epochs": True}},
            "forget_epochs must be an integer",
        ),
        ({"method": "neggrad_plus", "settings": {"alpha": "high"}}, "alpha must be a number"),
        ({"settings": {"noise": -0.1}}, "noise must be >= 0"),
        ({"settings": {"shrink": 0}}, "shrink must be in (0, 1]"),
        ({"settings": {"beta": 0}}, "beta must be positive"),
        ({"settings": {"max_retain_passes": -1}}, "max_retain_passes must be positive"),
        (
            {"method": "neggrad_plus", "settings": {"max_retain_passes": 0}},
            "max_retain_passes must be positive",
        ),
        ({"settings": {"stop_at_unseen": True}}, "settings: unknown settings ['stop_at_unseen']"),
        (
            {"method": "neggrad_plus", "settings": {"optimizer": "lion"}},
            "optimizer must be one of ['sgd', 'adam']",
        ),
        ({"settings": [1, 2]}, "settings: expected a JSON object, got list"),
        ({"method": "scrub", "settings": {"max_epochs": 9}}, "max_epochs must be in [0, epochs]"),
        ({"verification": {"margin": 0}}, "verification: invalid GateSettings: margin must be"),
        (
            {"verification": {"retained_margin": 1.5}},
            "verification: invalid GateSettings: retained_margin must be",
        ),
        ({"verification": {"references": 2}}, "references must be at least 4"),
        ({"verification": {"reference_share": 0.9}}, "reference_share must be in [0.2, 0.8]"),
        ({"verification": {"confidence": "high"}}, "confidence must be a number"),
        ({"verification": {"tolerance": 0.02}}, "verification: unknown settings ['tolerance']"),
        ({"fallback": "nothing"}, "fallback: must be one of ['retrain', 'sisa']"),
        ({"max_test_accuracy_drop": 5}, "max_test_accuracy_drop: must be a number in [0, 1]"),
        ({"version": 3}, "version: versions 1 and 2 are understood, got 3"),
        ({"mehtod": "scrub"}, "mehtod: unknown key"),
    ],
)
def test_invalid_policies_are_explained(data, message):
    with pytest.raises(PolicyError) as raised:
        ApproximatePolicy.from_dict(data)
    assert message in str(raised.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(PolicyError) as raised:
        ApproximatePolicy.from_dict(
            {"method": "neggrad_plus", "settings": {"alpha": 2.0}, "fallback": "pray"}
        )
    assert len(raised.value.problems) == 2
    assert raised.value.problems[0].startswith("settings:")
    assert raised.value.problems[1].startswith("fallback:")


def test_non_object_is_refused():
    with pytest.raises(PolicyError, match="expected a JSON object, got list"):
        ApproximatePolicy.from_dict([])


def test_settings_of_another_method_are_refused():
    with pytest.raises(PolicyError, match="takes ScrubSettings, got NegGradPlusSettings"):
        ApproximatePolicy(method="scrub", settings=NegGradPlusSettings())


def test_policy_error_is_a_value_error():
    assert issubclass(PolicyError, ValueError)


def test_every_method_has_documented_defaults():
    for name in method_names():
        cls = settings_type(name)
        for field_name in vars(cls()):
            assert field_name in cls.__doc__, (name, field_name)
    for field_name in vars(GateSettings()):
        assert field_name in GateSettings.__doc__
