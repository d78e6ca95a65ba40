import json

import pytest

from workers.engine.approximate.methods import get_method
from workers.engine.approximate.policy import ApproximatePolicy, PolicyError
from workers.engine.approximate.settings import NegGradPlusSettings, ScrubSettings
from workers.engine.mia import VerificationSettings


def test_defaults_round_trip_through_json():
    policy = ApproximatePolicy()
    stored = json.loads(json.dumps(policy.to_dict()))
    assert ApproximatePolicy.from_dict(stored) == policy
    assert stored["version"] == 1
    assert stored["fallback"] == "retrain"


def test_custom_policy_round_trips():
    policy = ApproximatePolicy(
        method="scrub",
        settings=ScrubSettings(epochs=4, max_epochs=2, learning_rate=1e-3),
        verification=VerificationSettings(tolerance=0.03, bootstrap_samples=500),
        max_test_accuracy_drop=0.02,
        fallback="sisa",
    )
    assert ApproximatePolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy


def test_stopping_settings_round_trip():
    settings = NegGradPlusSettings(stop_at_unseen=False, check_every=3, max_forget_epochs=12)
    policy = ApproximatePolicy(settings=settings)
    stored = json.loads(json.dumps(policy.to_dict()))
    assert stored["settings"]["stop_at_unseen"] is False
    assert ApproximatePolicy.from_dict(stored) == policy


def test_missing_keys_take_defaults_and_partial_settings_are_completed():
    policy = ApproximatePolicy.from_dict({"method": "scrub", "settings": {"epochs": 8}})
    assert policy.settings == ScrubSettings(epochs=8)
    assert policy.verification == VerificationSettings()


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
        ({"settings": {"forget_epochs": True}}, "forget_epochs must be an integer"),
        ({"settings": {"alpha": "high"}}, "alpha must be a number"),
        ({"settings": {"stop_at_unseen": 1}}, "stop_at_unseen must be true or false"),
        ({"settings": {"check_every": 0}}, "check_every must be at least 1"),
        ({"settings": {"max_forget_epochs": 0}}, "max_forget_epochs must be at least 1"),
        ({"settings": {"optimizer": "lion"}}, "optimizer must be one of ['sgd', 'adam']"),
        ({"settings": [1, 2]}, "settings: expected a JSON object, got list"),
        ({"method": "scrub", "settings": {"max_epochs": 9}}, "max_epochs must be in [0, epochs]"),
        ({"verification": {"tolerance": 0.7}}, "verification: tolerance must be a number in"),
        ({"verification": {"alpha": 0.05}}, "verification: unknown settings ['alpha']"),
        ({"fallback": "nothing"}, "fallback: must be one of ['retrain', 'sisa']"),
        ({"max_test_accuracy_drop": 5}, "max_test_accuracy_drop: must be a number in [0, 1]"),
        ({"version": 2}, "version: only version 1 is understood"),
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
    for name in ("finetune", "neggrad_plus", "scrub", "l1_sparse", "salun"):
        spec = get_method(name)
        defaults = spec.default_settings()
        for field_name in vars(defaults):
            assert field_name in spec.settings_type.__doc__, (name, field_name)
