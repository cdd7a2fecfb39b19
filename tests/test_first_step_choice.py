"""Cascade routing's first step, planned or drafted (`CascadeRouting.draft`), and the choice
between them on calibration data (`fit_best_to_budgets`, `best_within_budget`, calibrate's
profile, the engine's ``strategy.draft``).

The instance: a cheap model (price 1) and a dear one (price 10), Σ = 0, two kinds of
queries the ex-ante estimates tell apart. On kind A the cheap model is weak (0.2) and the
dear one strong (0.95); on kind B they are close (0.6 and 0.62). When the cheap model's
post-hoc signal tells its right answers from its wrong ones, the planned first step drafts
kind A only at lambda >= 0.75 / 9 and escalates kind B's wrong drafts only at lambda <
0.62 / 10: no one lambda drafts both kinds and escalates, so at a middle budget it reaches
less (0.869 at 7) than drafting every query and escalating the wrong drafts (0.905). When the
signal says nothing, a draft only adds its price: at 5.5 the plan sends kind A to the dear
model and kind B to the cheap one (0.775), a draft of every query can escalate only 45% of
them (0.7375).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core import (
    BatchContext,
    CascadeRouting,
    QueryEstimates,
    StagedEstimates,
    run_batch,
)
from cascade_core.calibrate.fit import CalibrationData, build_profile
from cascade_core.engine.config import RouterConfig, StrategySpec
from cascade_core.engine.lambda_choice import configured_strategy
from cascade_core.errors import InvalidInputError
from cascade_core.fitting import best_within_budget, fit_best_to_budgets, fit_quality_estimator
from cascade_core.replay import ReplayDataset
from cascade_core.strategies import MixedStrategy, Strategy
from tests.conftest import random_covariance

N = 1000
ROW = np.arange(N)
KIND_A = ROW < N // 2
CHEAP_RIGHT = np.where(KIND_A, ROW % 10 < 2, ROW % 10 < 6)
DEAR_RIGHT = np.where(KIND_A, (ROW * 7919) % 100 < 95, (ROW * 7919) % 100 < 62)
TRUTH = np.stack([CHEAP_RIGHT, DEAR_RIGHT], axis=1).astype(float)
EX_ANTE = np.stack([np.where(KIND_A, 0.2, 0.6), np.where(KIND_A, 0.95, 0.62)], axis=1)


def two_models(informative: bool) -> tuple[BatchContext, np.ndarray, np.ndarray]:
    post_hoc = np.stack([TRUTH[:, 0], EX_ANTE[:, 1]], axis=1) if informative else EX_ANTE
    cost = np.tile([1.0, 10.0], (N, 1))
    return BatchContext(StagedEstimates.from_arrays(EX_ANTE, post_hoc, cost)), TRUTH, cost


PLAN, DRAFT = CascadeRouting(), CascadeRouting(draft=True)


@pytest.mark.parametrize(
    ("informative", "budget", "expected", "quality"),
    [(True, 7.0, 1, 0.905), (False, 5.5, 0, 0.775)],
)
def test_the_first_step_that_pays_is_chosen(informative, budget, expected, quality):
    context, truth, cost = two_models(informative)
    ((index, fit),) = fit_best_to_budgets([PLAN, DRAFT], context, [budget], cost, truth)
    assert index == expected
    assert fit.quality == pytest.approx(quality, abs=1e-3)
    # what was reported is what the chosen policy replays to, within the budget
    outcome = run_batch(fit.strategy, context)
    assert outcome.cost(cost).mean() <= budget + 0.1
    for weight, policy in fit.strategy.mixture:
        assert weight == 0 or policy.draft == (expected == 1)


@pytest.mark.parametrize("informative", [True, False])
def test_the_choice_is_the_best_candidate_at_every_budget(informative):
    context, truth, cost = two_models(informative)
    budgets = [1.0, 2.0, 3.5, 5.0, 7.5, 10.0]
    chosen = fit_best_to_budgets([PLAN, DRAFT], context, budgets, cost, truth)
    alone = [fit_best_to_budgets([s], context, budgets, cost, truth) for s in (PLAN, DRAFT)]
    for b, (index, fit) in enumerate(chosen):
        assert fit.cost <= budgets[b] * (1 + 1e-9)
        qualities = [fits[b][1].quality for fits in alone]
        assert fit.quality == pytest.approx(max(qualities))
        assert fit.quality == pytest.approx(qualities[index])


def test_best_within_budget_prefers_quality_then_the_first() -> None:
    assert best_within_budget([1.0, 1.0], [0.5, 0.7], 1.0) == 1
    assert best_within_budget([1.0, 1.0], [0.7, 0.7], 1.0) == 0  # ties: the first
    assert best_within_budget([1.0, 1.5], [0.5, 0.9], 1.0) == 0  # over budget never wins
    assert best_within_budget([2.0, 1.5], [0.9, 0.5], 1.0) == 1  # none fits: the cheapest
    assert best_within_budget([1.0, 1.0], [None, 0.4], 1.0) == 1  # unknown quality loses
    assert best_within_budget([1.0, 1.0], [None, None], 1.0) == 0
    with pytest.raises(InvalidInputError, match="candidates"):
        fit_best_to_budgets([], *two_models(True)[:1], [1.0], np.ones((N, 2)), np.ones((N, 2)))


@given(seed=st.integers(0, 100_000), n_models=st.integers(1, 7), lam=st.floats(0, 2))
@settings(max_examples=80, deadline=None)
def test_a_draft_runs_the_cheapest_model_and_then_routes_as_planned(seed, n_models, lam):
    rng = np.random.default_rng(seed)
    cost = rng.choice([0.1, 0.2, 0.5, 1.0], n_models)  # ties: the lower index drafts
    estimates = QueryEstimates.create(
        rng.uniform(0, 1, n_models), cost, covariance=random_covariance(rng, n_models, 0.2)
    )
    first = CascadeRouting(lam=lam, draft=True).decide(estimates, ())
    assert first.next_model == int(np.flatnonzero(cost == cost.min())[0])
    ran = frozenset({first.next_model})
    drafted = CascadeRouting(lam=lam, draft=True).decide(estimates, ran)
    planned = CascadeRouting(lam=lam).decide(estimates, ran)
    assert (drafted.next_model, drafted.plan) == (planned.next_model, planned.plan)


# -- calibrate and the engine ------------------------------------------------------------


def replay(informative: bool) -> ReplayDataset:
    """The instance as logs, the kinds as tasks: the cheap model's confidence is its
    correctness when ``informative``, a constant otherwise; the dear model's says nothing."""
    signal = np.where(TRUTH[:, :1] == 1, -0.05, -3.0) if informative else np.full((N, 1), -0.5)
    confidence = np.concatenate([signal, np.full((N, 1), -0.1)], axis=1)
    return ReplayDataset(
        name="two",
        model_names=["cheap", "dear"],
        query_ids=[str(i) for i in range(N)],
        prompts=["q" * 20] * N,
        tasks=["A" if kind else "B" for kind in KIND_A],
        quality=TRUTH,
        cost=np.tile([1e-5, 1e-4], (N, 1)),
        signals={"confidence_logprob": confidence},
    )


def profile_for(informative: bool, **target: float) -> dict:
    data = replay(informative)
    estimator = fit_quality_estimator(data)
    calibration = CalibrationData(data, np.ones(N, dtype=bool), data.cost)
    return build_profile(StrategySpec(), estimator, calibration, **target)


@pytest.mark.parametrize(
    ("informative", "target"),
    [
        (True, {"budget_usd": 7e-5}),
        (False, {"budget_usd": 5.5e-5}),
        (True, {"target_quality": 0.89}),  # the planned first step never reaches it
        (False, {"target_quality": 0.77}),
    ],
)
def test_calibrate_keeps_the_first_step_that_pays(informative, target):
    section = profile_for(informative, **target)["budget"]
    assert section["strategy"]["draft"] is informative
    assert section["expected_cost_usd"] <= section["target_cost_usd"] * (1 + 1e-6)
    # a target's budget is read off the curve's chords, so its fit lands near the target
    assert section["expected_quality"] >= target.get("target_quality", 0) - 0.01


def test_without_a_budget_calibrate_plans_the_first_step():
    section = profile_for(True)["budget"]
    assert section["strategy"]["draft"] is False and section["lambda"] is None


def strategies_in(strategy: Strategy) -> list[Strategy]:
    if isinstance(strategy, MixedStrategy):
        return strategies_in(strategy.cheap) + strategies_in(strategy.expensive)
    return [strategy]


@pytest.mark.parametrize("budget", [{}, {"target_cost_usd": 7e-5}])
def test_the_engine_drafts_as_the_profile_was_fitted(tmp_path, budget):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile_for(True, budget_usd=7e-5)))
    models = [{"model": "openai/cheap"}, {"model": "openai/dear"}]
    config = RouterConfig.from_dict({"models": models, "profile": str(path), "budget": budget})
    assert all(s.draft for s in strategies_in(configured_strategy(config)))
    fixed = RouterConfig.from_dict({**config.model_dump(mode="json"), "budget": {"lambda": 1.0}})
    assert not any(s.draft for s in strategies_in(configured_strategy(fixed)))  # auto: plan
    planned = {"models": models, "profile": str(path), "budget": budget}
    planned["strategy"] = {"draft": False}
    with pytest.raises(InvalidInputError, match=r"strategy\.draft"):
        configured_strategy(RouterConfig.from_dict(planned))


def test_only_cascade_routing_drafts():
    with pytest.raises(InvalidInputError, match="draft"):
        RouterConfig.from_dict(
            {"models": [{"model": "openai/m"}], "strategy": {"name": "routing", "draft": True}}
        )
