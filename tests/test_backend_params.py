"""Bad input to the Backend layer raises typed errors that say what to change."""

import pytest

from ponder.backends import load_backend
from ponder.backends.base import check_n
from ponder.backends.models import find_spec, resolve
from ponder.backends.scripted import ScriptedBackend
from ponder.core import SamplingParams, normalize_prompt
from ponder.errors import ConfigError, ContextOverflowError, ModelError, UnknownNameError


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -3}, "max_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"min_p": 1.0}, "min_p"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"stop": ("",)}, "stop"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_sampling_params(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SamplingParams(**options)


def test_sampling_params_normalise() -> None:
    params = SamplingParams(stop="\n\n", top_logprobs=3)  # type: ignore[arg-type]
    assert params.stop == ("\n\n",)
    assert params.logprobs


@pytest.mark.parametrize("prompt", ["", "   ", [], [{"role": "user", "content": " "}]])
def test_empty_prompt(prompt: object) -> None:
    with pytest.raises(ConfigError, match="empty"):
        normalize_prompt(prompt)  # type: ignore[arg-type]


def test_bad_messages() -> None:
    with pytest.raises(ConfigError, match="role"):
        normalize_prompt([{"role": "robot", "content": "hi"}])
    with pytest.raises(ConfigError, match="mapping"):
        normalize_prompt(["hi"])  # type: ignore[list-item]


@pytest.mark.parametrize("n", [0, -1, 65, 1.5])
def test_bad_n(n: object) -> None:
    with pytest.raises(ConfigError, match="n"):
        check_n(n, 64)  # type: ignore[arg-type]


def test_scripted_backend_checks_n_and_context() -> None:
    backend = ScriptedBackend(context_tokens=10, max_n=4)
    with pytest.raises(ConfigError, match="maximum of 4"):
        backend.generate("hello", n=5)
    with pytest.raises(ContextOverflowError):
        backend.generate("word " * 20)


def test_unknown_names_list_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"Valid backends: .*embedded"):
        load_backend("embeded")
    with pytest.raises(UnknownNameError, match="Did you mean 'embedded'"):
        load_backend("embeded")
    with pytest.raises(UnknownNameError, match=r"qwen2\.5-coder-0\.5b"):
        find_spec("gpt-9")


def test_missing_and_corrupt_model_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelError, match="does not exist"):
        resolve(str(tmp_path / "nope.gguf"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ModelError, match="not a GGUF"):
        resolve(str(bad))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelError, match="could not load"):
        load_backend("embedded", model=str(truncated))
