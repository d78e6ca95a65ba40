"""Approximate unlearning on a toy set the model memorizes (30 % label noise, small data)."""

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from workers.engine.approximate.methods import get_method, run_method
from workers.engine.approximate.neggrad import add_weight_noise, neggrad_steps
from workers.engine.approximate.npo_distill import npo_losses, npo_schedule
from workers.engine.approximate.policy import ApproximatePolicy
from workers.engine.approximate.settings import (
    FinetuneSettings,
    L1SparseSettings,
    NegGradPlusSettings,
    NpoDistillSettings,
    SalUnSettings,
    ScrubSettings,
    method_names,
    settings_type,
)
from workers.engine.approximate.workflow import unlearn_and_verify
from workers.engine.architectures import get_architecture
from workers.engine.artifacts import LocalArtifactStore
from workers.engine.data import synthetic_purchase
from workers.engine.mia import membership_test
from workers.engine.training import accuracy, train_model
from workers.engine.verification.references import build_references, load_references
from workers.engine.verification.settings import GateSettings

# Budgets sized for ~1,000 training records; the defaults target far larger training sets.
TOY_SETTINGS = {
    "finetune": FinetuneSettings(steps=150, learning_rate=0.05, optimizer="sgd"),
    "npo_distill": NpoDistillSettings(),
    "neggrad_plus": NegGradPlusSettings(
        forget_epochs=20, learning_rate=1e-3, max_retain_passes=10.0
    ),
    "scrub": ScrubSettings(),
    "l1_sparse": L1SparseSettings(steps=150, learning_rate=0.05, optimizer="sgd"),
    "salun": SalUnSettings(
        forget_epochs=10, learning_rate=5e-4, saliency_fraction=0.2, forget_weight=1.0
    ),
}


@pytest.fixture(scope="module")
def toy():
    torch.set_num_threads(1)
    dataset = synthetic_purchase(
        records=1500, seed=0, num_features=100, num_classes=10, label_noise=0.3
    )
    spec = get_architecture("mlp").with_hyperparameters(epochs=40)
    original = train_model(spec=spec, data=dataset.train, num_classes=10, seed=0, device="cpu")
    chosen = np.random.default_rng(0).choice(len(dataset.train), 100, replace=False)
    forget = dataset.train.subset(np.sort(chosen))
    retain = dataset.train.without(forget.record_ids)
    reference = train_model(spec=spec, data=retain, num_classes=10, seed=1, device="cpu")
    return {
        "dataset": dataset,
        "original": original,
        "reference": reference,
        "forget": forget,
        "retain": retain,
    }


def test_methods_cover_every_catalog_entry():
    assert set(method_names()) == set(TOY_SETTINGS)
    for name, settings in TOY_SETTINGS.items():
        assert get_method(name) is not None and isinstance(settings, settings_type(name))


@pytest.mark.parametrize("name", list(TOY_SETTINGS))
def test_method_forgets_without_wrecking_the_model(toy, name):
    original, forget, test = toy["original"], toy["forget"], toy["dataset"].test
    before = {key: value.clone() for key, value in original.state_dict().items()}
    reports = []

    unlearned = run_method(
        name=name,
        model=original,
        forget=forget,
        retain=toy["retain"],
        settings=TOY_SETTINGS[name],
        progress=lambda done, total: reports.append((done, total)),
    )

    assert unlearned is not original
    for key, value in original.state_dict().items():
        assert torch.equal(value, before[key]), "the input model must not change"
    forget_before = accuracy(model=original, data=forget)
    assert accuracy(model=unlearned, data=forget) < forget_before - 0.04
    assert accuracy(model=unlearned, data=test) > accuracy(model=original, data=test) - 0.12
    assert reports and reports[-1][0] == reports[-1][1]
    assert not unlearned.training


def _fixed_steps(name: str, toy: dict) -> int:
    settings = TOY_SETTINGS[name]
    if name == "neggrad_plus":
        return neggrad_steps(
            settings=settings, forget=len(toy["forget"]), retain=len(toy["retain"])
        )
    if name == "npo_distill":
        return npo_schedule(settings=settings, retain=len(toy["retain"]))[0]
    return settings.steps


@pytest.mark.parametrize("name", ["neggrad_plus", "npo_distill"])
def test_noised_methods_spread_runs_out_and_the_same_seed_repeats(toy, name):
    kwargs = {"model": toy["original"], "forget": toy["forget"], "retain": toy["retain"]}
    settings = TOY_SETTINGS[name]
    reports = []
    first = run_method(
        name=name, settings=settings, progress=lambda *report: reports.append(report), **kwargs
    )
    again = run_method(name=name, settings=settings, **kwargs)
    other = run_method(name=name, settings=dataclasses.replace(settings, seed=1), **kwargs)
    # A fixed budget, the same for every seed; the same seed gives the same model.
    assert reports[-1] == (_fixed_steps(name, toy), _fixed_steps(name, toy))
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in first.state_dict().items())
    assert not all(torch.equal(v, other.state_dict()[k]) for k, v in first.state_dict().items())


def test_npo_loss_flattens_once_the_label_is_less_likely_than_the_originals():
    reference = torch.log(torch.tensor([0.9]))

    def loss_and_slope(probability: float) -> tuple[float, float]:
        log_probs = torch.log(torch.tensor([probability])).requires_grad_()
        loss = npo_losses(log_probs=log_probs, reference_log_probs=reference, beta=1.0).sum()
        loss.backward()
        return loss.item(), log_probs.grad.item()

    start_loss, start_slope = loss_and_slope(0.9)
    far_loss, far_slope = loss_and_slope(0.001)
    # At the original's probability: 2 log 2, slope 1 (as gradient ascent's, halved by 2/beta).
    assert start_loss == pytest.approx(2 * np.log(2))
    assert start_slope == pytest.approx(1.0)
    # Far below it the loss is near zero and nearly flat, where ascent's slope would stay 1.
    assert far_loss < 0.01 and far_slope < 0.01


def test_weight_noise_is_relative_to_each_matrix_and_skips_biases(toy):
    model = copy.deepcopy(toy["original"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    add_weight_noise(model=model, scale=0.5, generator=torch.Generator().manual_seed(0))
    for key, value in model.state_dict().items():
        change = (value - before[key]).std().item()
        if value.dim() < 2:
            assert change == 0.0
        else:
            assert change == pytest.approx(0.5 * before[key].std().item(), rel=0.2)


def test_the_budget_is_capped_at_a_share_of_a_pass_over_retained_records():
    settings = NegGradPlusSettings(forget_epochs=20, max_retain_passes=1.5)
    assert neggrad_steps(settings=settings, forget=64, retain=12_800) == 40  # 20 passes x 2
    assert neggrad_steps(settings=settings, forget=640, retain=12_800) == 150  # 1.5 x 100


def test_npo_distill_shortens_its_run_on_a_small_retained_set_with_larger_steps():
    settings = NpoDistillSettings(steps=40, max_retain_passes=1.0, learning_rate=1e-3)
    # 100 batches a pass: the 40 steps fit, at the set learning rate.
    assert npo_schedule(settings=settings, retain=12_800) == (40, 1e-3)
    # 9 batches a pass: 9 steps, each larger, so that the shorter run still repairs the noise.
    steps, learning_rate = npo_schedule(settings=settings, retain=1_060)
    assert steps == 9
    assert learning_rate == pytest.approx(1e-3 * (40 / 9) ** 0.5)


def test_verdict_fails_the_original_and_passes_a_retrained_reference(toy):
    holdout = toy["dataset"].holdout
    original = membership_test(model=toy["original"], forget=toy["forget"], holdout=holdout)
    reference = membership_test(model=toy["reference"], forget=toy["forget"], holdout=holdout)
    assert original.verdict == "remembers"
    assert reference.verdict == "pass"
    assert original.auc > reference.auc + 0.1


def test_unlearn_and_verify_reports_everything_the_job_needs(toy):
    dataset = toy["dataset"]
    outcome = unlearn_and_verify(
        model=toy["original"],
        forget=toy["forget"],
        retain=toy["retain"],
        holdout=dataset.holdout,
        test=dataset.test,
        policy=ApproximatePolicy(method="neggrad_plus", fallback="sisa"),
    )
    assert outcome.verification_before.verdict == "remembers"
    assert outcome.verification.auc < outcome.verification_before.auc
    assert outcome.utility_after.forget_accuracy < outcome.utility_before.forget_accuracy
    assert outcome.fallback_needed == bool(outcome.reasons)
    assert outcome.fallback == ("sisa" if outcome.fallback_needed else None)
    assert outcome.timings.unlearn_s > 0
    data = json.loads(json.dumps(outcome.to_dict()))
    assert data["method"] == "neggrad_plus"
    assert data["verification"]["n_forget"] == len(toy["forget"])


def test_with_reference_models_the_per_record_gate_decides(toy, tmp_path):
    dataset, spec = toy["dataset"], get_architecture("mlp").with_hyperparameters(epochs=40)
    gate = GateSettings(references=4)
    store = LocalArtifactStore(root=tmp_path)
    build_references(
        spec=spec, data=dataset.train, num_classes=10, settings=gate, store=store, prefix="r"
    )
    outcome = unlearn_and_verify(
        model=toy["original"],
        forget=toy["forget"],
        retain=toy["retain"],
        holdout=dataset.holdout,
        test=dataset.test,
        policy=ApproximatePolicy(
            method="finetune", settings=FinetuneSettings(steps=1), verification=gate
        ),
        references=load_references(store=store, prefix="r", spec=spec),
    )
    assert outcome.verification_before.verdict == "remembers"
    assert outcome.verification.verdict == "remembers"
    assert outcome.fallback_needed
    assert outcome.reasons[0].startswith("membership test: remembers (")
    data = json.loads(json.dumps(outcome.to_dict()))
    assert data["verification"]["test"] == "per_record_references"
    assert len(data["verification"]["record_z"]) == data["verification"]["n_forget"]


def test_the_pooled_test_may_gate_a_mitigation_but_never_closes_a_request(toy):
    dataset = toy["dataset"]

    def attempt(*, closes_request: bool):
        return unlearn_and_verify(
            model=toy["original"],
            forget=toy["forget"],
            retain=toy["retain"],
            holdout=dataset.holdout,
            test=dataset.test,
            policy=ApproximatePolicy(method="finetune", settings=FinetuneSettings(steps=1)),
            closes_request=closes_request,
        )

    refusal = "the pooled test cannot close a request"
    assert not any(refusal in reason for reason in attempt(closes_request=False).reasons)
    closing = attempt(closes_request=True)
    assert closing.fallback_needed and closing.fallback == "retrain"
    assert refusal in closing.reasons[-1]
    assert refusal in closing.to_dict()["reasons"][-1]


def test_a_broken_model_falls_back_even_if_the_membership_test_passes(toy):
    dataset = toy["dataset"]
    wrecking = FinetuneSettings(steps=50, learning_rate=50.0, optimizer="sgd")
    outcome = unlearn_and_verify(
        model=toy["original"],
        forget=toy["forget"],
        retain=toy["retain"],
        holdout=dataset.holdout,
        test=dataset.test,
        policy=ApproximatePolicy(method="finetune", settings=wrecking),
    )
    assert outcome.fallback_needed
    assert outcome.fallback == "retrain"
    assert any("test accuracy fell" in reason for reason in outcome.reasons)


def test_run_method_refuses_bad_calls(toy):
    kwargs = {"model": toy["original"], "forget": toy["forget"], "retain": toy["retain"]}
    with pytest.raises(KeyError, match="unknown unlearning method 'forget_all'"):
        run_method(name="forget_all", **kwargs)
    with pytest.raises(TypeError, match="takes ScrubSettings, got FinetuneSettings"):
        run_method(name="scrub", settings=FinetuneSettings(), **kwargs)
    with pytest.raises(ValueError, match="forget set is empty"):
        run_method(
            name="finetune",
            model=toy["original"],
            forget=toy["forget"].subset(slice(0, 0)),
            retain=toy["retain"],
        )
