"""The latency objective's one pricing rule: its arithmetic fuzzed with hypothesis, its
validation (one line naming the field), and that zero weights price nothing at all."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cascade_core.errors import InvalidInputError
from cascade_core.latency import LatencyWeights, priced_cost

usd = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
seconds = st.floats(min_value=0.0, max_value=1e3, allow_nan=False)
weights = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(usd, seconds, seconds, weights, weights)
def test_the_priced_cost_is_usd_plus_each_weighted_time(
    cost: float, ttft: float, total: float, w_ttft: float, w_total: float
) -> None:
    w = LatencyWeights(ttft_usd_per_s=w_ttft, total_usd_per_s=w_total)
    assert w.priced(cost, ttft, total) == pytest.approx(cost + w_ttft * ttft + w_total * total)
    assert w.priced(cost, ttft, total) >= cost


@given(st.lists(st.tuples(usd, seconds, seconds), min_size=1, max_size=8), weights, weights)
def test_arrays_price_like_each_of_their_entries(
    rows: list[tuple[float, float, float]], w_ttft: float, w_total: float
) -> None:
    w = LatencyWeights(ttft_usd_per_s=w_ttft, total_usd_per_s=w_total)
    cost, ttft, total = (np.array(column) for column in zip(*rows, strict=True))
    vector = w.priced(cost, ttft, total)
    assert np.allclose(vector, [w.priced(*row) for row in rows])
    assert np.array_equal(vector, priced_cost(cost, ttft, total, w))


@given(st.lists(usd, min_size=1, max_size=8), seconds)
def test_zero_weights_return_the_usd_cost_itself(costs: list[float], time_s: float) -> None:
    vector = np.array(costs)
    assert LatencyWeights().priced(vector, vector * 0 + time_s, None) is vector
    assert LatencyWeights().is_zero


def test_an_unknown_time_is_priced_at_zero() -> None:
    w = LatencyWeights(ttft_usd_per_s=0.5, total_usd_per_s=0.25)
    assert w.priced(1.0, None, None) == 1.0
    assert w.priced(1.0, math.nan, 2.0) == 1.5
    got = w.priced(np.array([1.0, 1.0]), np.array([np.nan, 2.0]), np.array([4.0, np.nan]))
    assert np.array_equal(got, [2.0, 2.0])


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"ttft_usd_per_s": -0.1}, "ttft_usd_per_s"),
        ({"total_usd_per_s": math.inf}, "total_usd_per_s"),
        ({"ttft_usd_per_s": True}, "ttft_usd_per_s"),
        ({"ttft_usd_per_s": "fast"}, "ttft_usd_per_s"),
        ({"ttft_per_s": 0.1}, "ttft_per_s"),
    ],
)
def test_bad_weights_are_one_line_naming_the_field(value: dict, field: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        LatencyWeights.parse(value, "latency_weights")
    message = str(raised.value)
    assert "\n" not in message
    assert f"latency_weights: {field}" in message


def test_a_non_mapping_is_refused_with_an_example() -> None:
    with pytest.raises(InvalidInputError, match="latency_weights: expected a mapping"):
        LatencyWeights.parse(0.1)


def test_parse_accepts_weights_and_none() -> None:
    w = LatencyWeights(ttft_usd_per_s=0.1)
    assert LatencyWeights.parse(w) is w
    assert LatencyWeights.parse(None).is_zero
    assert LatencyWeights.parse({"total_usd_per_s": "1e-3"}).total_usd_per_s == 0.001
