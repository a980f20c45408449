import json

from ponder.backends import load_backend
from ponder.backends.scripted import ScriptedBackend, tokenize
from ponder.core import SamplingParams


def test_replies_in_turn_with_exact_token_counts() -> None:
    backend = ScriptedBackend(["The answer is 4.", "It is 5."], token_logprob=-0.25)
    gen = backend.generate("2+2?", SamplingParams(logprobs=True), n=3)
    texts = [c.text for c in gen.completions]
    assert texts == ["The answer is 4.", "It is 5.", "The answer is 4."]
    first = gen.completions[0]
    assert first.num_tokens == len(tokenize("The answer is 4."))
    assert first.mean_logprob == -0.25
    assert gen.usage.completion_tokens == sum(c.num_tokens for c in gen.completions)
    assert gen.usage.prompt_tokens == gen.completions[0].usage.prompt_tokens  # charged once
    assert gen.usage.calls == 1


def test_stop_strings_and_length() -> None:
    backend = ScriptedBackend(["step one\n\nstep two"])
    cut = backend.generate("q", SamplingParams(stop=("\n\n",)))
    assert cut.completions[0].text == "step one"
    kept = backend.generate("q", SamplingParams(stop=("\n\n",), include_stop=True))
    assert kept.completions[0].text == "step one\n\n"
    assert kept.completions[0].stop == "\n\n"
    short = backend.generate("q", SamplingParams(max_tokens=2))
    assert short.completions[0].finish_reason == "length"


def test_rule_sees_prefix_and_continuation_groups() -> None:
    backend = ScriptedBackend(lambda r: f"<{r.prefix}|{r.index}>")
    gen = backend.continue_("q", ["a", "b"], n=2)
    assert [[c.text for c in g] for g in gen.groups] == [["<a|0>", "<a|1>"], ["<b|0>", "<b|1>"]]


def test_loaded_by_name_from_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(["x", "y"]))
    backend = load_backend("scripted", model=str(path))
    assert [c.text for c in backend.generate("q", n=2).completions] == ["x", "y"]
