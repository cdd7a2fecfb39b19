"""Every strategy honours one contract, so no driver special-cases a strategy class.

A mixed policy decides a batch like any strategy (each query by the policy its draw picks),
names the deterministic policy of one query (`for_query`), and states its mixture for expected
outcomes; a strategy that looks at one answer (`Routing`) says so through ``max_answers``,
which is what makes the live engine stream that answer.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core.engine import CascadeEngine, CascadeRun
from cascade_core.engine.request import build_request
from cascade_core.errors import InvalidInputError
from cascade_core.estimates import Uncertainty
from cascade_core.expected_max import expected_max
from cascade_core.strategies import (
    CascadeRouting,
    MixedStrategy,
    Routing,
    ThresholdCascade,
)
from cascade_core.strategies.base import STOP, StateGroup, Strategy
from tests.conftest import random_covariance


def group_of(
    quality: np.ndarray,
    cost: np.ndarray,
    uncertainty: Uncertainty,
    ran: frozenset[int],
    draws: np.ndarray | None,
) -> StateGroup:
    def evaluate(masks, expectation, within=None):
        rows = quality if within is None else quality[within]
        noise = uncertainty if expectation else Uncertainty.none(quality.shape[1])
        return expected_max(rows, noise, masks)

    return StateGroup(ran, quality, cost, uncertainty, evaluate, draws)


def per_query(strategy: Strategy, group: StateGroup, row: int) -> int:
    """The plain definition: the query's own policy deciding the query alone."""
    assert group.draws is not None
    policy = strategy.for_query(float(group.draws[row]))
    return int(policy.decide_batch(group.subset(np.array([row])))[0])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    gamma=st.floats(0.0, 1.0),
    n_ran=st.integers(0, 2),
    nested=st.booleans(),
)
def test_mixed_batch_decision_is_each_querys_own_policy(
    seed: int, gamma: float, n_ran: int, nested: bool
) -> None:
    rng = np.random.default_rng(seed)
    n, k = 12, 4
    quality = rng.uniform(0, 1, (n, k))
    # Cheapest first in every row, so the state "ran the first n_ran" is one a cascade reaches.
    cost = np.sort(rng.uniform(0.01, 1.0, (n, k)), axis=1)
    uncertainty = Uncertainty.from_covariance(random_covariance(rng, k, 0.2))
    cheap: Strategy = ThresholdCascade(threshold=0.6)
    dear: Strategy = CascadeRouting(lam=0.05)
    if nested:
        dear = MixedStrategy(cheap=Routing(lam=0.1), expensive=dear, gamma=0.5, seed=3)
    mixed = MixedStrategy(cheap=cheap, expensive=dear, gamma=gamma, seed=seed)
    ran = frozenset(range(n_ran))
    group = group_of(quality, cost, uncertainty, ran, mixed.query_draws(n))
    choice = mixed.decide_batch(group)
    assert choice.tolist() == [per_query(mixed, group, row) for row in range(n)]
    assert all(c == STOP or c not in ran for c in choice)


def test_mixed_policy_without_draws_names_the_fix() -> None:
    mixed = MixedStrategy(cheap=Routing(), expensive=Routing(lam=1.0), gamma=0.5)
    group = group_of(np.full((2, 2), 0.5), np.ones((2, 2)), Uncertainty.none(2), frozenset(), None)
    with pytest.raises(InvalidInputError, match=r"StateGroup\.draws"):
        mixed.decide_batch(group)


def test_query_draws_pick_the_expensive_policy_with_probability_gamma() -> None:
    cheap, dear = Routing(), Routing(lam=1.0)
    mixed = MixedStrategy(cheap=cheap, expensive=dear, gamma=0.3, seed=11)
    draws = mixed.query_draws(20_000)
    share = np.mean([mixed.for_query(float(d)) is dear for d in draws])
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 20_000)
    # Repeatable, and a query's draw does not depend on how many queries follow it.
    assert np.array_equal(mixed.query_draws(50), draws[:50])


def test_nested_mixture_draws_independently_and_weights_multiply() -> None:
    a, b, c = Routing(), Routing(lam=0.5), Routing(lam=2.0)
    mixed = MixedStrategy(
        cheap=MixedStrategy(cheap=a, expensive=b, gamma=0.5), expensive=c, gamma=0.5, seed=2
    )
    assert [(w, p) for w, p in mixed.mixture] == [(0.25, a), (0.25, b), (0.5, c)]
    draws = mixed.query_draws(20_000)
    share_a = np.mean([mixed.for_query(float(d)) is a for d in draws])
    assert abs(share_a - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 20_000)
    plain = ThresholdCascade()
    assert plain.mixture == ((1.0, plain),) and plain.for_query(0.9) is plain


def _engine(strategy: dict) -> CascadeEngine:
    rung = {"api_base": "http://127.0.0.1:9/v1", "supports_logprobs": True}
    return CascadeEngine(
        models=[
            {
                "model": f"openai/{name}",
                "input_cost_per_token": p,
                "output_cost_per_token": p,
                **rung,
            }
            for name, p in (("small", 1e-7), ("large", 1e-5))
        ],
        strategy=strategy,
    )


def _run(engine: CascadeEngine, strategy: Strategy | None = None, text: str = "hi") -> CascadeRun:
    parts = engine.parts if strategy is None else replace(engine.parts, strategy=strategy)
    return CascadeRun(parts, build_request([{"role": "user", "content": text}], {}))


def test_a_one_answer_strategy_makes_every_call_final() -> None:
    run = _run(_engine({"name": "routing"}))
    call = run.next_call()
    assert call is not None and call.final  # streams live: routing looks at no second answer
    run.record_failure(call, RuntimeError("down"), 0.0)
    fallback = run.next_call()
    assert fallback is not None and fallback.model.index != call.model.index and fallback.final


def test_a_cascade_first_call_is_not_final() -> None:
    run = _run(_engine({"name": "threshold_cascade", "threshold": 0.5}))
    call = run.next_call()
    assert call is not None and call.model.index == 0 and not call.final


def test_live_run_follows_the_policy_its_request_draws() -> None:
    engine = _engine({"name": "routing"})
    cheap, dear = ThresholdCascade(threshold=0.5), Routing(lam=0.0)
    mixed = MixedStrategy(cheap=cheap, expensive=dear, gamma=0.5)
    picked = [_run(engine, mixed, f"question {i}").strategy for i in range(64)]
    assert {id(p) for p in picked} == {id(cheap), id(dear)}
    again = [_run(engine, mixed, f"question {i}").strategy for i in range(64)]
    assert [id(p) for p in again] == [id(p) for p in picked]  # a request keeps its policy
    for policy, text in zip(picked, (f"question {i}" for i in range(64)), strict=True):
        call = _run(engine, mixed, text).next_call()
        assert call is not None and call.final == (policy is dear)


def test_a_driver_passing_draws_replays_mixed_as_run_batch_does() -> None:
    """The contract is enough for replay: a plain stepping driver that hands each group its
    queries' draws (`query_draws`) reproduces `run_batch` on a mixed policy exactly."""
    from cascade_core.answer_choice import choose_answers
    from cascade_core.replay.simulate import BatchContext, StagedEstimates, run_batch

    rng = np.random.default_rng(7)
    n, k = 40, 3
    ante, post = rng.uniform(0, 1, (n, k)), rng.uniform(0, 1, (n, k))
    cost = np.sort(rng.uniform(0.01, 1.0, (n, k)), axis=1)

    def estimator(ran: frozenset[int]) -> tuple[np.ndarray, Uncertainty]:
        mask = np.isin(np.arange(k), list(ran))
        return np.where(mask, post, ante), Uncertainty.independent_std(np.where(mask, 0, 0.2))

    context = BatchContext(StagedEstimates(cost, estimator))
    mixed = MixedStrategy(
        cheap=ThresholdCascade(threshold=0.7), expensive=CascadeRouting(lam=0.3), gamma=0.4
    )
    draws = mixed.query_draws(n)
    ran = np.zeros((n, k), dtype=bool)
    active = np.ones(n, dtype=bool)
    for _ in range(k + 1):
        states: dict[frozenset[int], list[int]] = {}
        for row in np.flatnonzero(active):
            states.setdefault(frozenset(np.flatnonzero(ran[row]).tolist()), []).append(row)
        for state, members in states.items():
            rows = np.array(members)
            group = replace(context.group(state, rows), draws=draws[rows])
            choice = mixed.decide_batch(group)
            active[rows[choice == STOP]] = False
            ran[rows[choice != STOP], choice[choice != STOP]] = True
    answer = np.array(
        [
            choose_answers(estimator(frozenset(np.flatnonzero(ran[i]).tolist()))[0][i : i + 1],
                           ran[i : i + 1], cost[i : i + 1])[0]
            for i in range(n)
        ]
    )  # fmt: skip
    expected = run_batch(mixed, context)
    assert 0 < (draws < mixed.gamma).sum() < n and len({tuple(r) for r in ran}) > 2
    assert np.array_equal(ran, expected.ran) and np.array_equal(answer, expected.answer)
