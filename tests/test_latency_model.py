"""The latency model's averages: properties of the EWMA update, fuzzed with hypothesis, and the
thread-safety and bounds of the per-ladder model."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cascade_core.latency import LatencyModel, ModelLatency, ewma

seconds = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)
alphas = st.floats(min_value=1e-6, max_value=1.0)
junk = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -1e-9])


def _average(observations: list[float], alpha: float) -> float | None:
    average: float | None = None
    for x in observations:
        average = ewma(average, x, alpha)
    return average


@given(seconds, alphas)
def test_the_first_observation_is_the_average(x: float, alpha: float) -> None:
    assert ewma(None, x, alpha) == x


@given(st.lists(seconds, min_size=1, max_size=40), alphas, st.randoms())
def test_the_average_stays_within_the_observations_in_any_order(
    observations: list[float], alpha: float, rng: object
) -> None:
    shuffled = list(observations)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    low, high = min(observations), max(observations)
    for order in (observations, shuffled):
        average = _average(order, alpha)
        assert average is not None and math.isfinite(average)
        assert low * (1 - 1e-12) <= average <= high * (1 + 1e-12)


@given(st.lists(st.one_of(seconds, junk), max_size=40), alphas)
def test_glitched_observations_are_ignored(observations: list[float], alpha: float) -> None:
    clean = [x for x in observations if math.isfinite(x) and x >= 0]
    assert _average(observations, alpha) == _average(clean, alpha)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, math.nan])
def test_an_alpha_outside_the_unit_interval_is_refused(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        ewma(1.0, 2.0, alpha)
    with pytest.raises(ValueError, match="alpha"):
        LatencyModel(["m"], alpha=alpha)


calls = st.tuples(seconds, seconds, st.integers(min_value=0, max_value=4096), st.booleans())


@given(st.lists(calls, min_size=1, max_size=30), st.integers(min_value=1, max_value=4096))
def test_expectations_are_finite_non_negative_and_ttft_within_total(
    observed: list[tuple[float, float, int, bool]], max_tokens: int
) -> None:
    latency = ModelLatency()
    for a, b, tokens, streamed in observed:
        ttft, total = min(a, b), max(a, b)
        latency = latency.updated(
            ttft_s=ttft if streamed else None, total_s=total, output_tokens=tokens, complete=True
        )
    assert latency.observations == len(observed)
    for streamed in (True, False):
        expected = latency.expect(max_tokens=max_tokens, streamed=streamed)
        for value in (expected.ttft_s, expected.total_s):
            assert value is None or (math.isfinite(value) and value >= 0)
        if expected.ttft_s is not None and expected.total_s is not None:
            assert expected.ttft_s <= expected.total_s * (1 + 1e-12)
    assert latency.output_tokens is None or latency.output_tokens <= 4096


def test_one_streamed_call_predicts_itself() -> None:
    latency = ModelLatency().updated(ttft_s=0.5, total_s=2.5, output_tokens=21, complete=True)
    expected = latency.expect(max_tokens=None, streamed=True)
    assert expected.ttft_s == 0.5
    assert expected.total_s == pytest.approx(2.5)
    whole = latency.expect(max_tokens=None, streamed=False)
    assert whole.ttft_s == whole.total_s == expected.total_s
    # max_tokens caps the expected answer length
    assert latency.expect(max_tokens=1, streamed=True).total_s == pytest.approx(0.5)


def test_a_stopped_draft_teaches_speed_but_not_answer_length() -> None:
    latency = ModelLatency().updated(ttft_s=0.1, total_s=1.1, output_tokens=11, complete=True)
    after = latency.updated(ttft_s=0.1, total_s=0.7, output_tokens=4, complete=False)
    assert after.output_tokens == latency.output_tokens
    assert after.s_per_token == pytest.approx(0.1 + 0.2 * (0.2 - 0.1))


def test_nothing_is_expected_before_any_call_and_other_models_are_not_kept() -> None:
    model = LatencyModel(["small", "large"])
    assert model.expect("small", max_tokens=10, streamed=True).total_s is None
    model.observe("elsewhere", ttft_s=0.1, total_s=1.0, output_tokens=5)
    assert set(model.snapshot()) == {"small", "large"}
    assert model.expect("elsewhere", max_tokens=10, streamed=True).ttft_s is None


def test_concurrent_updates_lose_no_observation() -> None:
    model = LatencyModel(["m"])
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(500):
            model.observe("m", ttft_s=0.2, total_s=1.0, output_tokens=9)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    averages = model.snapshot()["m"]
    assert averages.observations == 8 * 500
    assert averages.ttft_s == pytest.approx(0.2)
    assert averages.s_per_token == pytest.approx(0.1)
