"""How well a language model knows a record: likelihoods, generated answers, membership scores,
and TOFU's truth ratio and forget quality.

`model` is anything called as `model(input_ids=..., attention_mask=...)` that returns an object
with `.logits` of shape (batch, length, vocabulary): a Hugging Face causal LM, a PEFT model, or
`adapter_sisa.AdapterEnsemble`. Scores are computed in float32 with gradients off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from rouge_score import rouge_scorer
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score
from transformers import PreTrainedTokenizerBase

from workers.engine.lm.base import CONTEXT_LENGTH
from workers.engine.lm.corpus import Fact, TextExample
from workers.engine.lm.encoding import collate, encode_example

_SCORING_BATCH = 32
_ROUGE = rouge_scorer.RougeScorer(["rougeL"])


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _token_logprobs(
    *, model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    # Log probability of each token given those before it: (batch, length - 1).
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    return torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def completion_token_logprobs(
    *, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, examples: Sequence[TextExample]
) -> list[np.ndarray]:
    """Per example, the log probability of each completion token given everything before it."""
    pad = tokenizer.pad_token_id
    assert isinstance(pad, int)
    encoded = [
        encode_example(tokenizer=tokenizer, example=item, end_with_eos=False) for item in examples
    ]
    result: list[np.ndarray] = []
    for start in range(0, len(encoded), _SCORING_BATCH):
        chunk = encoded[start : start + _SCORING_BATCH]
        batch = collate(encoded=chunk, pad_token_id=pad, device=_device(model))
        logprobs = _token_logprobs(
            model=model, input_ids=batch.input_ids, attention_mask=batch.attention_mask
        ).cpu()
        for row, item in enumerate(chunk):
            # Token t is predicted at position t - 1.
            result.append(logprobs[row, item.prompt_length - 1 : len(item.input_ids) - 1].numpy())
    return result


def completion_logprobs(
    *, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, examples: Sequence[TextExample]
) -> list[float]:
    """Per example, the mean log probability per completion token."""
    return [
        float(values.mean())
        for values in completion_token_logprobs(model=model, tokenizer=tokenizer, examples=examples)
    ]


def completion_logprob(
    *, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, example: TextExample
) -> float:
    """The mean log probability per token of `example.completion` given its prompt."""
    return completion_logprobs(model=model, tokenizer=tokenizer, examples=[example])[0]


def example_loss(
    *, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, example: TextExample
) -> float:
    """The training loss of one example: minus its mean completion log probability."""
    return -completion_logprob(model=model, tokenizer=tokenizer, example=example)


@torch.no_grad()
def generate(
    *,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    max_new_tokens: int = 16,
) -> str:
    """The greedy continuation of `prompt`, up to end-of-text or `max_new_tokens`."""
    eos = tokenizer.eos_token_id
    encoded = encode_example(
        tokenizer=tokenizer, example=TextExample(prompt=prompt, completion=""), end_with_eos=False
    )
    ids = torch.tensor([encoded.input_ids], dtype=torch.long, device=_device(model))
    new: list[int] = []
    for _ in range(max_new_tokens):
        if ids.shape[1] >= CONTEXT_LENGTH:
            break
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1]
        token = int(logits.argmax())
        if token == eos:
            break
        new.append(token)
        ids = torch.cat([ids, ids.new_tensor([[token]])], dim=1)
    return str(tokenizer.decode(new, skip_special_tokens=True))


def _normalize(text: str) -> str:
    return " ".join(text.strip().rstrip(".").split()).casefold()


def exact_match(*, prediction: str, answer: str) -> bool:
    """Whether the first line of `prediction` is `answer`, ignoring case, spacing and a final
    full stop."""
    first_line = prediction.strip().split("\n", 1)[0]
    return _normalize(first_line) == _normalize(answer)


def rouge_l(*, prediction: str, answer: str) -> float:
    """ROUGE-L F-measure of `prediction` against `answer` (TOFU's generation score)."""
    return float(_ROUGE.score(target=answer, prediction=prediction)["rougeL"].fmeasure)


def min_k_percent_score(
    *, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, text: str, k: float = 0.2
) -> float:
    """Min-k% probability (Shi et al., 2024): the mean log probability of the `k` fraction of
    `text`'s tokens the model finds least likely. Higher looks more like training data."""
    values = completion_token_logprobs(
        model=model, tokenizer=tokenizer, examples=[TextExample(prompt="", completion=text)]
    )[0]
    return min_k_percent(values, k=k)


def min_k_percent(values: np.ndarray, *, k: float = 0.2) -> float:
    """The mean of the lowest `k` fraction of per-token log probabilities (at least one)."""
    lowest = np.sort(values)[: max(1, math.ceil(k * len(values)))]
    return float(lowest.mean())


def mia_auc(*, member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """ROC AUC of telling members from non-members by score, higher scores meaning member (pass
    minus the loss, or a min-k% score). 0.5 is chance: the members look unseen."""
    labels = [1] * len(member_scores) + [0] * len(nonmember_scores)
    return float(roc_auc_score(labels, [*member_scores, *nonmember_scores]))


def truth_ratio(
    *,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    fact: Fact,
    perturbed_answers: Sequence[str],
) -> float:
    """TOFU's truth ratio: the length-normalized probability of wrong answers (their geometric
    mean) over that of the true answer. Well below 1: the model knows the fact; near 1: it cannot
    tell the truth from plausible wrong answers. The true answer stands in for TOFU's paraphrase,
    since a name or a year has none."""
    examples = [
        fact.example,
        *(TextExample(prompt=fact.prompt, completion=" " + wrong) for wrong in perturbed_answers),
    ]
    true, *wrong = completion_logprobs(model=model, tokenizer=tokenizer, examples=examples)
    return math.exp(float(np.mean(wrong)) - true)


def forget_quality(
    *, truth_ratios_unlearned: Sequence[float], truth_ratios_retrained: Sequence[float]
) -> float:
    """TOFU's forget quality: the p-value of the two-sample Kolmogorov-Smirnov test between the
    forget set's truth ratios under the unlearned model and under a model retrained without it.
    High (say above 0.05): the two cannot be told apart."""
    return float(ks_2samp(truth_ratios_unlearned, truth_ratios_retrained).pvalue)
