from __future__ import annotations

from pathlib import Path

import pytest

from workers.engine.lm.adapter_sisa import AdapterSisa, AdapterSisaConfig, TextRecord
from workers.engine.lm.base import load_base
from workers.engine.lm.corpus import Person, facts
from workers.engine.lm.finetune import LoraSettings, adapter_state_bytes
from workers.engine.lm.scoring import completion_logprobs

CONFIG = AdapterSisaConfig(
    shards=2,
    slices=2,
    seed=4,
    stage_epochs=14,
    learning_rate=1e-2,
    batch_size=8,
    lora=LoraSettings(rank=16, alpha=32),
    shard_key="subject",
)


def _records(people: list[Person]) -> list[TextRecord]:
    return [
        TextRecord(record_id=person.person_id * 10 + index, example=fact.example,
                   subject_id=person.person_id)
        for person in people
        for index, fact in enumerate(facts(person))
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained(base_directory: Path, people: list[Person]) -> AdapterSisa:
    base, tokenizer = load_base(directory=base_directory)
    sisa = AdapterSisa(base=base, tokenizer=tokenizer, config=CONFIG)
    sisa.train(records=_records(people[:6]))
    return sisa


def _mean_logprob(sisa: AdapterSisa, person: Person) -> float:
    values = completion_logprobs(
        model=sisa.ensemble(), tokenizer=sisa.tokenizer, examples=[f.example for f in facts(person)]
    )
    return sum(values) / len(values)


def test_unlearning_retrains_one_shard_to_the_adapter_trained_without_the_person(
    trained: AdapterSisa, people: list[Person]
) -> None:
    erased_person, retained_person, never_trained = people[0], people[1], people[20]
    erased_shard = int(trained.shard_of(_records([erased_person]))[0])
    states_before = {key: point.state for key, point in trained.checkpoints.items()}
    erased_before = _mean_logprob(trained, erased_person)
    never_level = _mean_logprob(trained, never_trained)
    assert erased_before > never_level + 1.0

    erased_ids = [record.record_id for record in _records([erased_person])]
    report = trained.unlearn(erased_record_ids=[*erased_ids, 99_999])

    assert report.erased_record_ids == tuple(sorted(erased_ids))
    assert report.shards == (erased_shard,)
    assert len(report.superseded_keys) >= 1
    for (shard, stage), point in trained.checkpoints.items():
        assert not set(erased_ids) & set(point.record_ids)
        if shard != erased_shard:
            assert point.state == states_before[(shard, stage)]

    scratch = AdapterSisa(base=trained.base, tokenizer=trained.tokenizer, config=CONFIG)
    scratch.train(records=[r for r in _records(people[:6]) if r.record_id not in erased_ids])
    for shard in range(CONFIG.shards):
        assert adapter_state_bytes(model=trained.shard_models[shard]) == adapter_state_bytes(
            model=scratch.shard_models[shard]
        )
    assert trained.checkpoints == scratch.checkpoints

    erased_after = _mean_logprob(trained, erased_person)
    assert erased_after < erased_before - 1.0
    assert abs(erased_after - never_level) < abs(erased_before - never_level) / 2
    assert _mean_logprob(trained, retained_person) > never_level + 1.0
