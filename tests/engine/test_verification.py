"""The per-record gate on a toy set where the answer is known, and its reference models' purge."""

import json
import subprocess
import sys

import numpy as np
import pytest

from workers.engine.approximate.workflow import closing_refusal
from workers.engine.architectures import get_architecture
from workers.engine.artifacts import LocalArtifactStore
from workers.engine.data import synthetic_purchase
from workers.engine.mia import membership_test
from workers.engine.training import train_model
from workers.engine.verification.gate import verify_forgetting
from workers.engine.verification.manifests import (
    purge_references,
    read_manifests,
    reference_files,
    references_holding,
    stored_references,
)
from workers.engine.verification.references import (
    ReferenceSet,
    build_references,
    carry_references,
    load_references,
)
from workers.engine.verification.settings import GateSettings
from workers.engine.verification.verdict import Interval, decide

SETTINGS = GateSettings(references=8)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    # 30 % random labels and 30 epochs: the model memorizes its training records.
    data = synthetic_purchase(
        records=3000, seed=0, num_features=40, num_classes=10, label_noise=0.3
    )
    spec = get_architecture("mlp").with_hyperparameters(epochs=30)
    store = LocalArtifactStore(root=tmp_path_factory.mktemp("artifacts"))
    manifests = build_references(
        spec=spec, data=data.train, num_classes=10, settings=SETTINGS, store=store, prefix="r"
    )
    return {
        "data": data,
        "spec": spec,
        "store": store,
        "manifests": manifests,
        "model": train_model(spec=spec, data=data.train, num_classes=10, seed=0, device="cpu"),
        "references": load_references(store=store, prefix="r", spec=spec),
    }


def _verify(toy, *, model, forget):
    return verify_forgetting(
        model=model,
        forget=forget,
        holdout=toy["data"].holdout,
        references=toy["references"],
        settings=SETTINGS,
    )


def test_a_model_that_memorized_its_records_remembers_them(toy):
    verdict = _verify(toy, model=toy["model"], forget=toy["data"].train.subset(slice(0, 150)))
    assert verdict.verdict == "remembers"
    assert verdict.memory.low > SETTINGS.margin
    assert verdict.retained is not None and verdict.retained.low > SETTINGS.retained_margin
    assert np.mean(verdict.record_z) > 0.5
    assert len(verdict.record_z) == verdict.n_forget == 150 - verdict.unreferenced


def test_a_model_retrained_without_the_records_passes_on_the_retained_share(toy):
    forget = toy["data"].train.subset(slice(0, 150))
    retrained = train_model(
        spec=toy["spec"],
        data=toy["data"].train.without(forget.record_ids),
        num_classes=10,
        seed=1,
        device="cpu",
    )
    verdict = _verify(toy, model=retrained, forget=forget)
    assert verdict.verdict == "pass", verdict.reason
    assert verdict.retained is not None and verdict.retained_records > 100
    assert -SETTINGS.retained_margin < verdict.retained.low
    assert verdict.retained.high < SETTINGS.retained_margin


def test_records_the_model_never_saw_pass(toy):
    verdict = _verify(toy, model=toy["model"], forget=toy["data"].test.subset(slice(0, 300)))
    assert verdict.verdict == "pass", verdict.reason
    # No reference saw a test record: no retained share, the memory excess decides.
    assert verdict.retained is None and "memory excess decides" in verdict.reason
    for interval in (verdict.memory, verdict.overshoot):
        assert -SETTINGS.margin < interval.low and interval.high < SETTINGS.margin
    assert verdict.resolution < SETTINGS.margin


def test_a_handful_of_records_is_inconclusive_never_a_pass(toy):
    verdict = _verify(toy, model=toy["model"], forget=toy["data"].test.subset(slice(0, 6)))
    assert verdict.verdict == "inconclusive"
    assert verdict.resolution > SETTINGS.margin
    assert "too few" in verdict.reason


def test_one_record_is_inconclusive_and_its_figures_are_strict_json(toy):
    verdict = _verify(toy, model=toy["model"], forget=toy["data"].test.subset(slice(0, 1)))
    assert verdict.verdict == "inconclusive"
    figures = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert figures["memory"]["low"] is None and figures["resolution"] is None


def test_each_record_is_compared_only_with_references_that_never_saw_it(toy):
    forget = toy["data"].train.subset(slice(0, 40))
    verdict = _verify(toy, model=toy["model"], forget=forget)
    for record_id, unseen in zip(verdict.record_ids, verdict.record_unseen_references, strict=True):
        holding = references_holding(manifests=toy["manifests"], erased_record_ids=[record_id])
        assert unseen == SETTINGS.references - len(holding)


def test_a_request_closes_only_on_the_gate_its_policy_chose(toy):
    forget = toy["data"].train.subset(slice(0, 150))
    whole = _verify(toy, model=toy["model"], forget=forget)
    assert whole.retained is not None
    assert closing_refusal(verification=whole, settings=SETTINGS) is None
    # Earlier erasures purged half the references: no record has three on each side left.
    kept = ReferenceSet(
        manifests=toy["references"].manifests[:4], models=toy["references"].models[:4]
    )
    thinned = verify_forgetting(
        model=toy["model"],
        forget=forget,
        holdout=toy["data"].holdout,
        references=kept,
        settings=SETTINGS,
    )
    assert thinned.retained is None and thinned.references == 4
    refusal = closing_refusal(verification=thinned, settings=SETTINGS)
    assert refusal is not None and "4 of the policy's 8 reference models" in refusal
    # A policy whose references never give the share chose the memory excess.
    excess_only = GateSettings(references=8, reference_share=0.2)
    assert SETTINGS.gives_retained_share and not excess_only.gives_retained_share
    assert closing_refusal(verification=thinned, settings=excess_only) is None
    pooled = membership_test(model=toy["model"], forget=forget, holdout=toy["data"].holdout)
    refusal = closing_refusal(verification=pooled, settings=SETTINGS)
    assert refusal is not None and "pooled test cannot close" in refusal


def i(low: float, high: float) -> Interval:
    return Interval(estimate=(low + high) / 2, low=low, high=high)


def verdict_of(memory: Interval, overshoot: Interval, retained: Interval | None = None) -> str:
    """`decide` at margins of 0.25 for the excesses and the share."""
    return decide(
        memory=memory, overshoot=overshoot, margin=0.25, retained=retained, retained_margin=0.25
    )


INSIDE, ABOVE, STRADDLING = i(-0.1, 0.1), i(0.3, 0.6), i(0.1, 0.4)


def test_decisions_from_the_two_intervals():
    assert verdict_of(INSIDE, INSIDE) == "pass"
    assert verdict_of(ABOVE, INSIDE) == "remembers"
    assert verdict_of(i(-0.6, -0.3), ABOVE) == "over_forgot"
    # Both directions at once cannot cancel: each has its own interval.
    assert verdict_of(ABOVE, ABOVE) == "remembers"
    assert verdict_of(STRADDLING, INSIDE) == "inconclusive"
    # Each excess measures one harm: only its upper bound must lie below the margin.
    assert verdict_of(i(-0.6, -0.3), i(-0.5, 0.2)) == "pass"
    assert verdict_of(INSIDE, STRADDLING) == "inconclusive"


def test_the_retained_share_decides_the_memory_side_when_there_is_one():
    # The memory excess passes, the share shows memory: a few records remembered strongly.
    assert verdict_of(INSIDE, INSIDE, retained=ABOVE) == "remembers"
    assert verdict_of(ABOVE, INSIDE, retained=INSIDE) == "pass"
    assert verdict_of(INSIDE, INSIDE, retained=i(-0.6, -0.3)) == "over_forgot"
    assert verdict_of(INSIDE, INSIDE, retained=i(-0.2, 0.4)) == "inconclusive"
    assert verdict_of(INSIDE, ABOVE, retained=INSIDE) == "over_forgot"


def test_manifests_say_which_references_saw_an_erased_person_and_only_those_are_rebuilt(toy):
    data, store = toy["data"], toy["store"]
    person = int(data.train.subject_ids[0])
    erased = data.train.of_subjects([person]).record_ids
    holding = references_holding(
        manifests=read_manifests(store=store, prefix="r"), erased_record_ids=erased
    )
    # A person's records are all in a reference or all out of it (selection by subject).
    assert 0 < len(holding) < SETTINGS.references
    holding_indices = {m.index for m in holding}
    for manifest in toy["manifests"]:
        assert manifest.holds_any(erased) == (manifest.index in holding_indices)
        assert np.isin(erased, manifest.record_ids).all() == manifest.holds_any(erased)

    before = {m.index: m.record_ids for m in read_manifests(store=store, prefix="r")}
    deleted = purge_references(store=store, prefix="r", erased_record_ids=erased)
    assert sorted(deleted) == sorted(key for m in holding for key in m.artifact_keys)
    assert all(not store.exists(key=key) for key in deleted)
    assert not references_holding(
        manifests=read_manifests(store=store, prefix="r"), erased_record_ids=erased
    )

    rebuilt = build_references(
        spec=toy["spec"],
        data=data.train.without(erased),
        num_classes=10,
        settings=SETTINGS,
        store=store,
        prefix="r",
    )
    assert not references_holding(manifests=rebuilt, erased_record_ids=erased)
    for manifest in rebuilt:
        if manifest.index not in holding_indices:  # kept as it was, not retrained
            assert np.array_equal(manifest.record_ids, before[manifest.index])


def test_a_new_prefix_carries_the_references_that_never_saw_the_erased_records(toy):
    data, store = toy["data"], toy["store"]
    erased = data.train.of_subjects([int(data.train.subject_ids[1])]).record_ids
    remaining = data.train.without(erased)
    source = {m.index: m for m in read_manifests(store=store, prefix="r")}
    clean = {i for i, m in source.items() if not m.holds_any(erased)}
    assert 0 < len(clean) < SETTINGS.references

    carried = carry_references(
        store=store,
        source="r",
        target="next",
        spec=toy["spec"],
        data=remaining,
        num_classes=10,
        settings=SETTINGS,
    )
    assert {m.index for m in carried} == clean
    for manifest in carried:
        assert manifest.prefix == "next"
        assert np.array_equal(manifest.record_ids, source[manifest.index].record_ids)
        weights = [
            store.get(key=k)
            for k in (manifest.artifact_keys[1], source[manifest.index].artifact_keys[1])
        ]
        assert weights[0] == weights[1]
    assert len(read_manifests(store=store, prefix="r")) == SETTINGS.references  # left in place

    rebuilt = build_references(
        spec=toy["spec"],
        data=remaining,
        num_classes=10,
        settings=SETTINGS,
        store=store,
        prefix="next",
    )
    assert len(rebuilt) == SETTINGS.references
    assert not references_holding(manifests=rebuilt, erased_record_ids=erased)
    assert stored_references(store=store, prefix="next") == [m.artifact_keys[0] for m in rebuilt]
    for manifest in rebuilt:
        assert reference_files(manifest_key=manifest.artifact_keys[0]) == manifest.artifact_keys
    # A reference whose manifest is gone is still found, by its weights.
    store.delete(key=rebuilt[0].artifact_keys[0])
    assert stored_references(store=store, prefix="next")[0] == rebuilt[0].artifact_keys[0]
    with pytest.raises(ValueError):
        reference_files(manifest_key="next/weights/000.pt")


def test_the_policy_and_the_manifests_import_without_torch():
    code = (
        "import sys\n"
        "import workers.engine.approximate.policy, workers.engine.verification.manifests\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
