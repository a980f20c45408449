"""The embedded backend on the real small model (qwen2.5-coder-0.5b), small max_tokens."""

from __future__ import annotations

import asyncio
import math

import pytest

from ponder.backends import Backend
from ponder.core import SamplingParams
from ponder.errors import ConfigError, ContextOverflowError

pytestmark = pytest.mark.model

CHAT = [{"role": "user", "content": "Tom has 3 apples and buys 5 more. How many apples now?"}]


def test_chat_template_comes_from_the_gguf(embedded_backend: Backend) -> None:
    text = embedded_backend.render(CHAT).decode()  # type: ignore[attr-defined]
    assert "<|im_start|>user\nTom has 3 apples" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_n_samples_are_batched_reproducible_and_counted(embedded_backend: Backend) -> None:
    params = SamplingParams(max_tokens=12, temperature=1.0, seed=5)
    first = embedded_backend.generate(CHAT, params, n=4)
    again = embedded_backend.generate(CHAT, params, n=4)
    texts = [c.text for c in first.completions]
    assert texts == [c.text for c in again.completions]
    assert len(set(texts)) > 1
    assert len(first.groups) == 1
    assert first.usage.calls == 1
    assert first.usage.completion_tokens == sum(len(c.token_ids or ()) for c in first.completions)
    # the prompt is charged once, to the group's first completion
    assert first.completions[0].usage.prompt_tokens > 0
    assert all(c.usage.prompt_tokens == 0 for c in first.completions[1:])
    assert again.usage.cached_prompt_tokens == again.usage.prompt_tokens - 1
    assert first.usage.flops > 0


def test_greedy_logprobs_match_exact_scoring(embedded_backend: Backend) -> None:
    params = SamplingParams(max_tokens=10, temperature=0.0, logprobs=True, top_logprobs=3)
    completion = embedded_backend.generate(CHAT, params).completions[0]
    assert completion.logprobs is not None
    for token in completion.logprobs:
        assert token.logprob <= 0.0
        assert len(token.top) == 3
        # greedy picks the most likely token
        assert token.logprob == pytest.approx(token.top[0][1], abs=1e-4)
        assert sum(math.exp(lp) for _, lp in token.top) <= 1.0 + 1e-4
    scored = embedded_backend.score(CHAT, completion.text)
    assert "".join(t.token for t in scored.tokens) == completion.text
    # scoring decodes the text in one batch, generation one token per step: the quantized
    # matmuls round differently, by about 0.01 nats per token
    tolerance = 0.02 * len(scored.tokens) + 0.05
    assert scored.logprob == pytest.approx(completion.sum_logprob, abs=tolerance)
    assert scored.usage.cached_prompt_tokens > 0


def test_stop_strings_include_stop_and_length(embedded_backend: Backend) -> None:
    raw = "1, 2, 3, 4, 5, 6, 7,"
    cut = embedded_backend.generate(raw, SamplingParams(max_tokens=16, temperature=0, stop=" 9"))
    assert cut.completions[0].finish_reason == "stop"
    assert cut.completions[0].stop == " 9"
    assert cut.completions[0].text.startswith(" 8,")
    assert not cut.completions[0].text.endswith("9")
    kept = embedded_backend.generate(
        raw, SamplingParams(max_tokens=16, temperature=0, stop=" 9", include_stop=True)
    )
    assert kept.completions[0].text.endswith(" 9")
    short = embedded_backend.generate(raw, SamplingParams(max_tokens=2, temperature=0))
    assert short.completions[0].finish_reason == "length"
    assert short.completions[0].num_tokens == 2


def test_continuations_reuse_the_cached_prefix(embedded_backend: Backend) -> None:
    params = SamplingParams(max_tokens=8, temperature=0.7, seed=1, stop="\n", include_stop=True)
    step = embedded_backend.generate(CHAT, params, n=2)
    prefixes = [c.text for c in step.completions]
    before = embedded_backend.stats()  # type: ignore[attr-defined]
    nxt = embedded_backend.continue_(CHAT, prefixes, params)
    decoded = embedded_backend.stats().decoded_tokens - before.decoded_tokens  # type: ignore[attr-defined]
    assert [len(g) for g in nxt.groups] == [1, 1]
    usage = nxt.usage
    assert usage.cached_prompt_tokens >= usage.prompt_tokens - 2 * 2
    # only the seam tokens and the new tokens were decoded, not the prompt again
    assert decoded <= usage.completion_tokens + 2 * 2


def test_concurrent_callers_share_the_model(embedded_backend: Backend) -> None:
    async def many() -> list:
        params = SamplingParams(max_tokens=6, temperature=0.8, seed=3)
        return await asyncio.gather(
            *(embedded_backend.agenerate(f"Count to {k}:", params, n=2) for k in range(3))
        )

    results = asyncio.run(many())
    assert [len(r.completions) for r in results] == [2, 2, 2]


def test_cancelled_call_frees_the_model(embedded_backend: Backend) -> None:
    async def cancel_then_use() -> str:
        task = asyncio.create_task(
            embedded_backend.agenerate("Write a long story:", SamplingParams(max_tokens=400), n=4)
        )
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after = await asyncio.wait_for(
            embedded_backend.agenerate("Hi", SamplingParams(max_tokens=4)), timeout=20
        )
        return after.completions[0].text

    assert isinstance(asyncio.run(cancel_then_use()), str)


def test_bad_input(embedded_backend: Backend) -> None:
    with pytest.raises(ContextOverflowError, match="context holds"):
        embedded_backend.generate("word " * 20000, SamplingParams(max_tokens=4))
    with pytest.raises(ConfigError, match="empty"):
        embedded_backend.generate("  ")
    with pytest.raises(ConfigError, match="maximum"):
        embedded_backend.generate("hi", n=1000)
    with pytest.raises(ConfigError, match="empty"):
        embedded_backend.score(CHAT, "")
