import pytest

from ponder.usage import Usage


def test_usages_add_up_and_sum_from_zero() -> None:
    a = Usage.for_tokens(prompt=10, cached=4, completion=5, parameters=100) + Usage(calls=1)
    b = Usage.for_tokens(prompt=3, completion=2, parameters=100) + Usage(calls=1, seconds=0.5)
    total = sum([a, b])
    assert total == Usage.total([a, b])
    assert total.prompt_tokens == 13
    assert total.cached_prompt_tokens == 4
    assert total.completion_tokens == 7
    assert total.calls == 2
    assert total.decoded_tokens == 13 - 4 + 7
    assert total.total_tokens == 20
    assert total.flops == pytest.approx(2 * 100 * total.decoded_tokens)


def test_cached_tokens_are_part_of_prompt_tokens() -> None:
    with pytest.raises(ValueError, match="cached_prompt_tokens"):
        Usage(prompt_tokens=3, cached_prompt_tokens=4)


def test_unknown_parameter_count_gives_zero_flops() -> None:
    assert Usage.for_tokens(prompt=5, completion=5).flops == 0.0


def test_round_trip_through_dict() -> None:
    usage = Usage(
        prompt_tokens=3, cached_prompt_tokens=1, completion_tokens=2, calls=1, seconds=1.5
    )
    data = usage.to_dict()
    assert data["decoded_tokens"] == 4
    assert Usage.from_dict(data) == usage
