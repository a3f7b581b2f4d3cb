"""The cost of a request as recorded: exact to 1e-10 USD, without binary float noise."""

from __future__ import annotations

from relaygate.config.schema import ModelConfig
from relaygate.usage.cost import Usage, cost_usd

MODEL = ModelConfig(name="m", input_price=0.15, output_price=0.6, cached_input_price=0.075)


def test_a_cost_is_recorded_without_float_noise() -> None:
    # The same sum in plain floats: 1.3499999999999998e-06.
    assert (1 * 0.15 + 2 * 0.6) / 1_000_000 != 1.35e-06
    assert repr(cost_usd(MODEL, Usage(prompt_tokens=1, completion_tokens=2))) == "1.35e-06"
    many = Usage(prompt_tokens=3_000, completion_tokens=550, cached_tokens=1_000)
    assert repr(cost_usd(MODEL, many)) == "0.000705"  # 2000*0.15 + 1000*0.075 + 550*0.6


def test_rounding_keeps_every_token() -> None:
    one_token = ModelConfig(name="m", input_price=0.0001)  # 1e-10 USD per token
    assert cost_usd(one_token, Usage(prompt_tokens=1)) == 1e-10
    assert cost_usd(one_token, Usage(prompt_tokens=7)) == 7e-10
