"""What a language model still says about erased records: a figure set for the job and the
certificate, beside the exact verification (which is what proves the erasure).

- exact match: greedy decoding after the record's prompt reproduces its completion;
- mean log probability per completion token, for the erased records and for records of people
  the model never trained on (the holdout split);
- membership AUCs: telling the erased records from the holdout ones by their mean token log
  probability (the loss attack) and by their min-k% probability (Shi et al., 2024); 0.5: they
  look alike. With few records an AUC is noisy: these are figures, not a gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.engine.lm.adapter_sisa import TextRecord
from workers.engine.lm.losses import completion_scores, encode_examples
from workers.engine.lm.scoring import mia_auc, min_k_percent

MAX_RECORDS = 200  # per side: the figures are a sample, their cost bounded


def _scored(records: Sequence[TextRecord]) -> list[TextRecord]:
    return [r for r in records if r.example.completion][:MAX_RECORDS]


def _side(
    *, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, records: Sequence[TextRecord]
) -> tuple[float, list[float], list[float], float]:
    """Exact-match rate, per-record mean and min-k% token log probabilities, and the mean per
    token over every record's tokens: one forward pass over the records."""
    batch = encode_examples(tokenizer=tokenizer, examples=[r.example for r in records])
    scores = completion_scores(
        model=cast(PreTrainedModel, model), batch=batch.to(next(model.parameters()).device)
    )
    per_token = scores.token_logprobs
    means = [float(v.mean()) for v in per_token]
    lows = [min_k_percent(v) for v in per_token]
    overall = float(np.concatenate(per_token).mean())
    return float(scores.greedy_match.float().mean()), means, lows, overall


def text_figures(
    *,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[TextRecord],
    holdout: Sequence[TextRecord],
    name: str = "erased",
) -> dict[str, Any]:
    """Figures of `records` (keys starting with `name`) against the holdout split's. `model` is
    a causal LM or an `AdapterEnsemble`, which answers the same calls."""
    members, others = _scored(records), _scored(holdout)
    figures: dict[str, Any] = {
        f"{name}_records_scored": len(members),
        "holdout_records_scored": len(others),
    }
    sides = {}
    for label, chosen in ((name, members), ("holdout", others)):
        if chosen:
            sides[label] = _side(model=model, tokenizer=tokenizer, records=chosen)
            exact, _, _, overall = sides[label]
            figures[f"{label}_exact_match"] = round(exact, 4)
            figures[f"{label}_mean_token_logprob"] = round(overall, 4)
    if len(sides) == 2:
        _, member_means, member_lows, _ = sides[name]
        _, other_means, other_lows, _ = sides["holdout"]
        figures["membership_auc"] = round(
            mia_auc(member_scores=member_means, nonmember_scores=other_means), 4
        )
        figures["membership_auc_min_k"] = round(
            mia_auc(member_scores=member_lows, nonmember_scores=other_lows), 4
        )
    return figures
