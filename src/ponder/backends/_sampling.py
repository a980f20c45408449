"""Token sampling from raw logits, vectorised over the rows of one decode step.

Why numpy and not llama.cpp's sampler chain: the chain's top-p sorts the whole 152k-token
vocabulary on every call (measured 9.6 ms per token here, more than the decode step of one
sequence costs per token at 8 sequences), and it cannot return the logprob of the chosen
token under the model, which scorers need. Here each step costs one logsumexp per row plus
work on a small candidate set: the tokens within `_CUTOFF` nats of the best one after
temperature. A token below that line has probability < e^-30 relative to the best; even all
152k of them together hold < 2e-8 of the mass, so sampling from the candidate set is exact
to that precision, while top-k / top-p / min-p only ever sort a few hundred candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ponder.core import SamplingParams

_CUTOFF = 30.0


@dataclass(slots=True)
class Draw:
    token: int
    logprob: float
    """log p(token) under the model (raw logits: before temperature and truncation)."""
    top: list[tuple[int, float]]
    """The `top_logprobs` most likely tokens with their logprobs (empty unless asked)."""


def log_normalizers(logits: np.ndarray) -> np.ndarray:
    """logsumexp of each row."""
    peak = logits.max(axis=1)
    return peak + np.log(np.exp(logits - peak[:, None]).sum(axis=1))


def _sample(raw: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    """Temperature first, then top-k, top-p (nucleus of what top-k left) and min-p."""
    scaled = raw / params.temperature
    peak = float(scaled.max())
    cut = _CUTOFF
    if params.min_p > 0.0:
        cut = min(cut, -float(np.log(params.min_p)))
    total = None
    if params.top_p < 1.0 and not params.top_k:
        # Find a small line above which the nucleus surely lies, so only few tokens get sorted.
        weights = np.exp(scaled - peak)
        total = float(weights.sum())
        for narrower in (4.0, 8.0, 16.0):
            if narrower < cut and weights[scaled >= peak - narrower].sum() >= params.top_p * total:
                cut = narrower
                break
    candidates = np.flatnonzero(scaled >= peak - cut)
    if params.top_k and len(candidates) > params.top_k:
        top = np.argpartition(-scaled[candidates], params.top_k - 1)[: params.top_k]
        candidates = candidates[top]
    weights = np.exp(scaled[candidates] - peak)
    if params.top_p < 1.0:
        order = np.argsort(-weights, kind="stable")
        candidates, weights = candidates[order], weights[order]
        mass = np.cumsum(weights) / (total if total is not None else weights.sum())
        keep = int(np.searchsorted(mass, params.top_p)) + 1
        candidates, weights = candidates[:keep], weights[:keep]
    pick = int(np.searchsorted(np.cumsum(weights), rng.random() * weights.sum(), side="right"))
    return int(candidates[min(pick, len(candidates) - 1)])


def draw(
    logits: np.ndarray,
    params: SamplingParams,
    rngs: list[np.random.Generator],
) -> list[Draw]:
    """One token for each row of `logits` (rows share `params`, each has its own rng)."""
    logits = logits.astype(np.float32, copy=False)
    norms = log_normalizers(logits) if params.logprobs else None
    draws: list[Draw] = []
    for row, rng in enumerate(rngs):
        raw = logits[row]
        token = int(raw.argmax()) if params.greedy else _sample(raw, params, rng)
        logprob, top = 0.0, []
        if norms is not None:
            logprob = float(raw[token] - norms[row])
            if params.top_logprobs:
                top = _top(raw, float(norms[row]), params.top_logprobs)
        draws.append(Draw(token, logprob, top))
    return draws


def _top(raw: np.ndarray, norm: float, k: int) -> list[tuple[int, float]]:
    best = np.argpartition(-raw, k)[:k]
    best = best[np.argsort(-raw[best], kind="stable")]
    return [(int(t), float(raw[t] - norm)) for t in best]


def token_logprobs(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """log p(tokens[i]) under row i of `logits` (for scoring a given text)."""
    logits = logits.astype(np.float32, copy=False)
    return logits[np.arange(len(tokens)), tokens] - log_normalizers(logits)
