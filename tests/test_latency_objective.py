"""The latency objective's one pricing rule: its arithmetic fuzzed with hypothesis, its
validation (one line naming the field), that zero weights price nothing at all (the engine
decides exactly as a latency-blind one), and that priced time changes what the engine runs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core.engine import CascadeEngine
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


# -- the engine prices latency ----------------------------------------------------------------

LADDER = [
    {
        "name": "small",
        "model": "openai/small",
        "api_base": "http://127.0.0.1:9/v1",
        "input_cost_per_token": 1e-7,
        "output_cost_per_token": 4e-7,
        "supports_logprobs": True,
    },
    {
        "name": "big",
        "model": "openai/big",
        "api_base": "http://127.0.0.1:9/v1",
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 4e-6,
        "supports_logprobs": True,
    },
]
QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]
timings = st.tuples(
    st.floats(min_value=0.01, max_value=5.0), st.floats(min_value=1e-4, max_value=0.2)
)


def _engine(**settings: Any) -> CascadeEngine:
    return CascadeEngine(models=LADDER, budget={"lambda": 5000.0}, **settings)


def _learn(engine: CascadeEngine, label: str, ttft_s: float, s_per_token: float) -> None:
    """What a streamed call of ``label`` with this speed teaches the engine."""
    engine.parts.latency.observe(  # type: ignore[union-attr]
        label, ttft_s=ttft_s, total_s=ttft_s + 23 * s_per_token, output_tokens=24
    )


def _first_decision(engine: CascadeEngine, **params: Any) -> tuple[str | None, list[str]]:
    run = engine.start(QUESTION, streamed=True, max_tokens=24, **params)
    call = run.next_call()
    return (call.model.label if call else None), list(run.trace.decisions)


@settings(max_examples=30, deadline=None)
@given(timings, timings, st.sampled_from(["cascade_routing", "optimal_cascade", "routing"]))
def test_zero_weights_decide_exactly_as_a_latency_blind_engine(
    small: tuple[float, float], big: tuple[float, float], strategy: str
) -> None:
    blind = _engine(strategy={"name": strategy})
    zero = _engine(
        strategy={"name": strategy},
        latency_weights={"ttft_usd_per_s": 0.0, "total_usd_per_s": 0.0},
    )
    for engine in (blind, zero):
        _learn(engine, "small", *small)
        _learn(engine, "big", *big)
    runs = [e.start(QUESTION, streamed=True, max_tokens=24) for e in (blind, zero)]
    assert all(r.decision_cost is r.cost for r in runs)
    assert _first_decision(blind) == _first_decision(zero)
    # A request's own zero weights override non-zero engine weights just as exactly.
    priced = _engine(strategy={"name": strategy}, latency_weights={"ttft_usd_per_s": 1.0})
    _learn(priced, "small", *small)
    _learn(priced, "big", *big)
    assert _first_decision(priced, latency_weights={}) == _first_decision(blind)


def test_a_slow_draft_priced_in_time_is_skipped() -> None:
    """A small model that takes seconds to its first token is not worth trying first once a
    second of waiting is worth more than the money it saves."""
    engine = _engine()
    _learn(engine, "small", 3.0, 0.05)
    _learn(engine, "big", 0.3, 0.02)
    assert _first_decision(engine)[0] == "small"
    weights = {"ttft_usd_per_s": 1e-5, "total_usd_per_s": 1e-5}
    chosen, decisions = _first_decision(engine, latency_weights=weights)
    assert chosen == "big"
    assert decisions[0].startswith("latency priced: small")
    run = engine.start(QUESTION, streamed=True, max_tokens=24, latency_weights=weights)
    expected = [
        engine.parts.latency.expect(m, max_tokens=24, streamed=True) for m in ("small", "big")
    ]  # type: ignore[union-attr]
    assert np.allclose(
        run.decision_cost,
        [run.cost[i] + 1e-5 * (e.ttft_s + e.total_s) for i, e in enumerate(expected)],
    )
    assert run.cost[0] < run.cost[1]  # USD unchanged: caps and the trace still see dollars


def test_an_unobserved_model_is_priced_at_its_usd_cost() -> None:
    engine = _engine(latency_weights={"ttft_usd_per_s": 1.0, "total_usd_per_s": 1.0})
    run = engine.start(QUESTION, streamed=True, max_tokens=24)
    assert np.array_equal(run.decision_cost, run.cost)


def test_bad_weights_in_a_request_or_config_are_one_line() -> None:
    engine = _engine()
    with pytest.raises(InvalidInputError) as raised:
        engine.start(QUESTION, latency_weights={"ttft_usd_per_s": -1})
    assert str(raised.value).startswith("request: latency_weights.ttft_usd_per_s:")
    with pytest.raises(InvalidInputError, match=r"^request: latency_weights: expected a mapping"):
        engine.start(QUESTION, latency_weights=[0.1])
    with pytest.raises(InvalidInputError) as raised:
        _engine(latency_weights={"total_usd_per_s": float("nan")})
    assert "latency_weights.total_usd_per_s: must be a finite number" in str(raised.value)
    assert "\n" not in str(raised.value)
