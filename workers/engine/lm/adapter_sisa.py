"""SISA over LoRA adapters: exact unlearning for a fine-tuned language model.

The base model is shared and frozen; what is sharded is the fine-tuning. Records are assigned to S
shards by a keyed hash of their record id (or of their subject id, so that one person's records
share a shard), and to R slices within a shard by a second hash, as in `workers.engine.partition`.
Each shard trains its own adapter slice by slice: stage r trains on slices 0..r for
`stage_epochs` epochs, continuing from stage r-1 with a fresh optimizer, so stage r's adapter is a
function of the base, the records of slices 0..r and seeds derived from (seed, shard, stage).
After each stage the adapter's weights are checkpointed as safetensors bytes with the ids of the
records it has seen.

Unlearning finds, per shard, the earliest stage whose checkpoint has seen an erased record,
restores the checkpoint before it, and trains the remaining stages without the erased records.
Shards that held none are not touched. On the CPU the result equals, bit for bit, the adapter
trained from scratch without those records.

Aggregation: the ensemble's next-token distribution is the mean of the shard adapters' next-token
probabilities (the language-model form of the engine's mean-of-softmax). It stays a proper
distribution, so likelihood scores and greedy decoding apply to it unchanged, and a shard that
never saw a record pulls that record's probability toward what a model without it would give,
rather than vetoing it as a product of the shards' probabilities would.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import CausalLMOutput

from workers.engine.lm.corpus import TextExample
from workers.engine.lm.finetune import (
    LoraSettings,
    adapter_state_bytes,
    attach_adapter,
    load_adapter_state,
    train_adapter,
)
from workers.engine.partition import assign_buckets


@dataclass(frozen=True)
class TextRecord:
    record_id: int
    example: TextExample
    subject_id: int = -1  # the person the record is about, for shard_key="subject"


@dataclass(frozen=True)
class AdapterSisaConfig:
    shards: int = 4
    slices: int = 4
    seed: int = 0
    stage_epochs: int = 10
    learning_rate: float = 3e-3
    batch_size: int = 8
    lora: LoraSettings = field(default_factory=LoraSettings)
    shard_key: Literal["record", "subject"] = "record"


@dataclass(frozen=True)
class AdapterCheckpoint:
    """A shard's adapter after one stage. `key` names it for storage: a hash of everything the
    weights depend on, the parent checkpoint's key included."""

    key: str
    shard: int
    stage: int
    record_ids: tuple[int, ...]  # every record trained on through this stage, sorted
    state: bytes


@dataclass(frozen=True)
class UnlearningReport:
    erased_record_ids: tuple[int, ...]
    shards: tuple[int, ...]  # the shards retrained
    first_stages: dict[int, int]  # per retrained shard, the first stage trained again
    superseded_keys: tuple[str, ...]  # checkpoints that held erased records
    seconds: float


class _StageCounter:
    def __init__(self, *, total: int, progress: Callable[[float], None] | None) -> None:
        self.total, self.finished, self.progress = max(total, 1), 0, progress

    def done(self) -> None:
        self.finished += 1
        if self.progress is not None:
            self.progress(self.finished / self.total)


def _derived_seed(*, seed: int, purpose: str, shard: int, stage: int = 0) -> int:
    digest = hashlib.sha256(f"lethe-adapter-sisa:{purpose}:{seed}:{shard}:{stage}".encode())
    return int.from_bytes(digest.digest()[:4], "little")


class AdapterEnsemble(torch.nn.Module):
    """Shard models behind one causal-LM call. Its logits are the log of the mean of the shards'
    next-token probabilities, so a softmax of them gives that mean."""

    def __init__(self, *, models: Sequence[torch.nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.members = torch.nn.ModuleList(models)

    def forward(
        self, *, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any
    ) -> CausalLMOutput:
        logprobs = torch.stack(
            [
                torch.log_softmax(
                    member(input_ids=input_ids, attention_mask=attention_mask).logits.float(),
                    dim=-1,
                )
                for member in self.members
            ]
        )
        return CausalLMOutput(logits=torch.logsumexp(logprobs, dim=0) - np.log(len(self.members)))


class AdapterSisa:
    """SISA-trained LoRA adapters on one frozen base: `train`, then `unlearn` as requests come."""

    def __init__(
        self,
        *,
        base: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        config: AdapterSisaConfig,
    ) -> None:
        self.base = base
        self.tokenizer = tokenizer
        self.config = config
        self.records: dict[int, TextRecord] = {}
        self.checkpoints: dict[tuple[int, int], AdapterCheckpoint] = {}
        self.shard_models: dict[int, PeftModel] = {}

    def shard_of(self, records: Sequence[TextRecord]) -> np.ndarray:
        keys = [
            record.record_id if self.config.shard_key == "record" else record.subject_id
            for record in records
        ]
        return assign_buckets(
            values=np.asarray(keys, dtype=np.int64),
            seed=self.config.seed,
            buckets=self.config.shards,
            purpose="shard",
        )

    def slice_of(self, records: Sequence[TextRecord]) -> np.ndarray:
        return assign_buckets(
            values=np.asarray([record.record_id for record in records], dtype=np.int64),
            seed=self.config.seed,
            buckets=self.config.slices,
            purpose="slice",
        )

    def shard_records(self, *, shard: int) -> list[list[TextRecord]]:
        """The shard's current records per slice, each slice sorted by record id."""
        records = sorted(self.records.values(), key=lambda record: record.record_id)
        by_slice: list[list[TextRecord]] = [[] for _ in range(self.config.slices)]
        if not records:
            return by_slice
        for record, shard_of, slice_of in zip(
            records, self.shard_of(records), self.slice_of(records), strict=True
        ):
            if shard_of == shard:
                by_slice[int(slice_of)].append(record)
        return by_slice

    def train(
        self, *, records: Iterable[TextRecord], progress: Callable[[float], None] | None = None
    ) -> float:
        """Train every shard's adapter from scratch on `records`; returns the seconds it took.
        `progress` hears the fraction of stages done after each one."""
        started = time.perf_counter()
        self.records = {record.record_id: record for record in records}
        self.checkpoints = {}
        stages = _StageCounter(total=self.config.shards * self.config.slices, progress=progress)
        for shard in range(self.config.shards):
            self._train_shard(shard=shard, first_stage=0, stage_done=stages.done)
        return time.perf_counter() - started

    def first_stages(self, *, erased_record_ids: Iterable[int]) -> dict[int, int]:
        """Per shard whose checkpoints saw an erased record, the earliest stage that did."""
        erased = set(erased_record_ids)
        first: dict[int, int] = {}
        for (shard, stage), checkpoint in sorted(self.checkpoints.items()):
            if shard not in first and erased.intersection(checkpoint.record_ids):
                first[shard] = stage
        return first

    def retrain_shard(
        self, *, shard: int, first_stage: int, progress: Callable[[float], None] | None = None
    ) -> None:
        """Train `shard` again from the checkpoint before `first_stage` on its current records
        (one shard of `unlearn`, for a caller that spreads shards over processes)."""
        stages = _StageCounter(total=self.config.slices - first_stage, progress=progress)
        self._train_shard(shard=shard, first_stage=first_stage, stage_done=stages.done)

    def unlearn(
        self,
        *,
        erased_record_ids: Iterable[int],
        progress: Callable[[float], None] | None = None,
    ) -> UnlearningReport:
        """Forget `erased_record_ids`: retrain only the shards whose checkpoints saw one, from
        the checkpoint before the earliest stage that did. Unknown ids are ignored. `progress`
        hears the fraction of the stages to train again done after each one."""
        started = time.perf_counter()
        erased = set(erased_record_ids) & set(self.records)
        first_stages = self.first_stages(erased_record_ids=erased)
        superseded = [
            checkpoint.key
            for (shard, stage), checkpoint in sorted(self.checkpoints.items())
            if shard in first_stages and stage >= first_stages[shard]
        ]
        for record_id in erased:
            del self.records[record_id]
        to_train = sum(self.config.slices - stage for stage in first_stages.values())
        stages = _StageCounter(total=to_train, progress=progress)
        for shard, first_stage in sorted(first_stages.items()):
            self._train_shard(shard=shard, first_stage=first_stage, stage_done=stages.done)
        return UnlearningReport(
            erased_record_ids=tuple(sorted(erased)),
            shards=tuple(sorted(first_stages)),
            first_stages=first_stages,
            superseded_keys=tuple(superseded),
            seconds=time.perf_counter() - started,
        )

    def ensemble(self) -> AdapterEnsemble:
        return AdapterEnsemble(
            models=[self.shard_model(shard=s) for s in range(self.config.shards)]
        )

    def _checkpoint_key(self, *, shard: int, stage: int, record_ids: Sequence[int]) -> str:
        parent = self.checkpoints[(shard, stage - 1)].key if stage > 0 else ""
        config = self.config
        described = (
            f"{config.seed}:{shard}:{stage}:{config.stage_epochs}:{config.learning_rate}:"
            f"{config.batch_size}:{config.lora}:{config.shards}:{config.slices}:"
            f"{config.shard_key}:{parent}:{','.join(map(str, record_ids))}"
        )
        return hashlib.sha256(described.encode()).hexdigest()

    def shard_model(self, *, shard: int) -> PeftModel:
        """The shard's adapter on the base: the one trained in this process, or else its last
        checkpoint's weights (an instance restored from stored checkpoints)."""
        if shard not in self.shard_models:
            model = attach_adapter(
                model=copy.deepcopy(self.base),
                settings=self.config.lora,
                seed=_derived_seed(seed=self.config.seed, purpose="init", shard=shard),
            )
            last = self.checkpoints[(shard, self.config.slices - 1)]
            self.shard_models[shard] = load_adapter_state(model=model, data=last.state).eval()
        return self.shard_models[shard]

    def _train_shard(
        self, *, shard: int, first_stage: int, stage_done: Callable[[], None] | None = None
    ) -> None:
        config = self.config
        model = attach_adapter(
            model=copy.deepcopy(self.base),
            settings=config.lora,
            seed=_derived_seed(seed=config.seed, purpose="init", shard=shard),
        )
        if first_stage > 0:
            load_adapter_state(model=model, data=self.checkpoints[(shard, first_stage - 1)].state)
        by_slice = self.shard_records(shard=shard)
        for stage in range(first_stage, config.slices):
            seen = sorted(
                (record for part in by_slice[: stage + 1] for record in part),
                key=lambda record: record.record_id,
            )
            train_adapter(
                model=model,
                tokenizer=self.tokenizer,
                examples=[record.example for record in seen],
                epochs=config.stage_epochs,
                learning_rate=config.learning_rate,
                batch_size=config.batch_size,
                seed=_derived_seed(seed=config.seed, purpose="order", shard=shard, stage=stage),
            )
            record_ids = tuple(record.record_id for record in seen)
            self.checkpoints[(shard, stage)] = AdapterCheckpoint(
                key=self._checkpoint_key(shard=shard, stage=stage, record_ids=record_ids),
                shard=shard,
                stage=stage,
                record_ids=record_ids,
                state=adapter_state_bytes(model=model),
            )
            if stage_done is not None:
                stage_done()
        self.shard_models[shard] = model
