"""Metrics of the offline evaluation against hand-computed values (DESIGN.md, Evaluation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core import BatchContext, MixedStrategy, Routing, StagedEstimates, run_batch
from cascade_core.replay import (
    ReplayDataset,
    apgr,
    auc,
    auc_range,
    bootstrap_ci,
    cpt,
    dataset_auc,
    linear_hull,
    load_cascade_logs,
    oracle_point,
    single_model_points,
)
from tests.conftest import DATA, needs_data


def _toy() -> ReplayDataset:
    # 3 queries, 3 models (cheap, mid, dear)
    quality = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 0]], dtype=float)
    cost = np.array([[1, 2, 10], [1, 3, 10], [2, 2, 10]], dtype=float)
    return ReplayDataset(
        name="toy",
        model_names=["cheap", "mid", "dear"],
        query_ids=["a", "b", "c"],
        prompts=["", "", ""],
        tasks=["t", "t", "t"],
        quality=quality,
        cost=cost,
    )


# ---------------------------------------------------------------------------- AUC
class TestAuc:
    def test_hand_computed_with_floor_and_flat_tail(self) -> None:
        # [0,2] floor 0.2 -> 0.4; [2,6] trapezoid -> 2.4; [6,10] flat 0.8 -> 3.2; total 6 / 10
        assert auc([2, 6], [0.4, 0.8], 0, 10, 0.2) == pytest.approx(60.0)

    def test_order_of_points_does_not_matter(self) -> None:
        assert auc([6, 2], [0.8, 0.4], 0, 10, 0.2) == pytest.approx(60.0)

    def test_single_point_is_a_step_from_the_floor(self) -> None:
        assert auc([5], [0.6], 0, 10, 0.4) == pytest.approx(50.0)

    def test_point_left_of_range_shapes_the_segment_into_it(self) -> None:
        # segment (-2, 0) -> (2, 0.4) is 0.2 at cost 0: [0,2] -> 0.6, then flat 0.4 -> 3.2
        assert auc([-2, 2], [0.0, 0.4], 0, 10, 0.9) == pytest.approx(38.0)

    def test_point_right_of_range_is_cut_at_the_range_end(self) -> None:
        # [0,5] floor 0; [5,10] from 0.5 to 0.75 -> 3.125
        assert auc([5, 15], [0.5, 1.0], 0, 10, 0.0) == pytest.approx(31.25)

    def test_points_all_outside_the_range(self) -> None:
        assert auc([20, 30], [0.9, 1.0], 0, 10, 0.3) == pytest.approx(30.0)
        assert auc([-5, -1], [0.2, 0.7], 0, 10, 0.0) == pytest.approx(70.0)

    def test_non_monotone_curve_is_taken_as_is(self) -> None:
        # [0,2] 0; [2,4] 1.2; [4,6] 1.2; [6,8] 1.6 -> 4 / 8
        assert auc([2, 4, 6], [0.8, 0.4, 0.8], 0, 8, 0.0) == pytest.approx(50.0)

    def test_tied_costs_form_a_vertical_step(self) -> None:
        assert auc([2, 2, 4], [0.6, 0.2, 0.6], 0, 4, 0.0) == pytest.approx(30.0)

    @pytest.mark.parametrize(
        ("costs", "quals", "lo", "hi"),
        [([1], [0.5], 1, 1), ([1, 2], [0.5], 0, 3), ([], [], 0, 1), ([np.nan], [0.5], 0, 1)],
    )
    def test_bad_input_is_rejected(self, costs, quals, lo, hi) -> None:
        with pytest.raises(ValueError):
            auc(costs, quals, lo, hi, 0.0)

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.tuples(st.floats(-1, 11), st.floats(0, 1)), min_size=1, max_size=12),
        st.floats(0, 1),
    )
    def test_bounded_by_the_extreme_qualities(self, pts, floor) -> None:
        costs, quals = zip(*pts, strict=True)
        value = auc(costs, quals, 0, 10, floor)
        lo = min(min(quals), floor) * 100
        hi = max(max(quals), floor) * 100
        assert lo - 1e-9 <= value <= hi + 1e-9

    def test_constant_curve_at_the_floor(self) -> None:
        assert auc([1, 3, 9], [0.4, 0.4, 0.4], 1, 9, 0.4) == pytest.approx(40.0)


# ---------------------------------------------------------------------------- points and hull
def test_single_model_points_and_range() -> None:
    ds = _toy()
    costs, quals = single_model_points(ds)
    np.testing.assert_allclose(costs, [4 / 3, 7 / 3, 10])
    np.testing.assert_allclose(quals, [1 / 3, 2 / 3, 2 / 3])
    assert auc_range(ds) == pytest.approx((4 / 3, 10, 1 / 3))
    assert dataset_auc(ds, costs, quals) == pytest.approx(auc(costs, quals, 4 / 3, 10, 1 / 3))


def test_oracle_is_cheapest_best_model_per_query() -> None:
    # a: cheap (1, correct); b: mid (3, correct); c: none correct -> cheapest there (2, tie
    # cheap/mid -> first)
    point = oracle_point(_toy())
    assert point.cost == pytest.approx((1 + 3 + 2) / 3)
    assert point.quality == pytest.approx(2 / 3)


def test_oracle_uses_the_best_graded_score() -> None:
    ds = ReplayDataset(
        name="graded",
        model_names=["a", "b"],
        query_ids=["1"],
        prompts=[""],
        tasks=[""],
        quality=[[0.4, 0.9]],
        cost=[[1.0, 5.0]],
    )
    assert oracle_point(ds) == (5.0, 0.9)


def test_linear_hull_drops_points_under_the_chord_and_past_the_best() -> None:
    hx, hy = linear_hull([1, 2, 3, 4], [0.5, 0.55, 0.8, 0.7])
    np.testing.assert_allclose(hx, [1, 3])
    np.testing.assert_allclose(hy, [0.5, 0.8])


def test_linear_hull_keeps_concave_points_and_drops_collinear_ones() -> None:
    hx, hy = linear_hull([0, 1, 2, 3], [0.0, 0.6, 0.8, 0.9])
    np.testing.assert_allclose(hx, [0, 1, 2, 3])
    hx, hy = linear_hull([0, 1, 2], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(hx, [0, 2])
    np.testing.assert_allclose(hy, [0, 1])


def test_linear_hull_tied_costs_keep_the_best() -> None:
    hx, hy = linear_hull([1, 1, 2], [0.3, 0.5, 0.9])
    np.testing.assert_allclose(hx, [1, 2])
    np.testing.assert_allclose(hy, [0.5, 0.9])


def test_hull_auc_dominates_single_models() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        c = rng.uniform(0, 10, 6)
        q = rng.uniform(0, 1, 6)
        hx, hy = linear_hull(c, q)
        floor = q.min()
        assert auc(hx, hy, c.min(), c.max(), floor) >= auc(c, q, c.min(), c.max(), floor) - 1e-9


# ---------------------------------------------------------------------------- RouteLLM
def _routellm_apgr(shares, accs, weak, strong) -> float:
    """RouteLLM's evaluate.py formula, written out for comparison."""
    x = np.asarray(shares, float)
    y = np.asarray(accs, float)
    area = np.trapezoid(y, x)
    weak_area = np.trapezoid(np.full_like(y, weak), x)
    strong_area = np.trapezoid(np.full_like(y, strong), x)
    return (area - weak_area) / (strong_area - weak_area)


def test_apgr_hand_computed_and_equal_to_routellm() -> None:
    shares, accs = [0, 0.5, 1], [0.6, 0.75, 0.8]
    # PGR 0, 0.75, 1 -> 0.5 * 0.375 + 0.5 * 0.875
    assert apgr(shares, accs, 0.6, 0.8) == pytest.approx(0.625)
    assert apgr(shares, accs, 0.6, 0.8) == pytest.approx(_routellm_apgr(shares, accs, 0.6, 0.8))


def test_random_router_replayed_query_by_query_has_apgr_one_half() -> None:
    """A router sending each query to the strong model with probability p, replayed with
    per-query draws: shares and qualities are measured on the replay, so APGR is 0.5 only
    up to the noise of the draws, and only if the draws are per query, independent of the
    query and honour p (the realised share must match it too)."""
    rng = np.random.default_rng(0)
    n = 4000
    difficulty = rng.normal(size=n)
    truth = np.stack(
        [rng.random(n) < 1 / (1 + np.exp(difficulty - s)) for s in (0.2, 1.6)], axis=1
    ).astype(float)
    estimate = np.tile([0.5, 0.8], (n, 1))
    cost = np.tile([1.0, 10.0], (n, 1))
    context = BatchContext(StagedEstimates.from_arrays(estimate, estimate, cost))
    weak, strong = Routing(lam=1e9), Routing(lam=0.0)
    shares, accs = [], []
    for i, p in enumerate(np.linspace(0, 1, 11)):
        outcome = run_batch(MixedStrategy(cheap=weak, expensive=strong, gamma=p, seed=i), context)
        shares.append(outcome.ran[:, 1].mean())
        accs.append(outcome.quality(truth).mean())
        assert abs(shares[-1] - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-12
    q_weak, q_strong = truth.mean(axis=0)
    gap = q_strong - q_weak
    # Sampling sd of one point's gain over the line, at its worst (p = 1/2), over the gap;
    # APGR averages nine such independent interior points.
    point_sd = np.sqrt(0.25 * ((truth[:, 1] - truth[:, 0]) ** 2).mean() / n) / gap
    assert apgr(shares, accs, q_weak, q_strong) == pytest.approx(0.5, abs=4 * point_sd / 3)


def test_apgr_extends_like_the_auc_and_accepts_costs() -> None:
    # no point at share 0: weak quality held until 0.5, then flat at strong -> 0.5
    assert apgr([0.5], [0.8], 0.6, 0.8) == pytest.approx(0.5)
    # same curve on a cost axis from 2 (weak) to 12 (strong)
    assert apgr([2, 7, 12], [0.6, 0.75, 0.8], 0.6, 0.8, x_lo=2, x_hi=12) == pytest.approx(0.625)
    with pytest.raises(ValueError, match="gap"):
        apgr([0, 1], [0.5, 0.5], 0.5, 0.5)


def test_cpt_hand_computed() -> None:
    shares, accs = [0, 0.5, 1], [0.6, 0.75, 0.8]
    assert cpt(shares, accs, 0.6, 0.8, 0.5) == pytest.approx(1 / 3)
    assert cpt(shares, accs, 0.6, 0.8, 0.8) == pytest.approx(0.6)
    # RouteLLM's np.interp agrees on monotone curves
    assert cpt(shares, accs, 0.6, 0.8, 0.8) == pytest.approx(np.interp(0.76, accs, shares))
    assert cpt(shares, accs, 0.6, 0.8, 0.0) == 0.0


def test_cpt_takes_the_first_crossing_and_nan_when_never_reached() -> None:
    shares, accs = [0, 0.2, 0.4, 1], [0.6, 0.8, 0.6, 0.8]
    assert cpt(shares, accs, 0.6, 0.8, 0.5) == pytest.approx(0.1)
    assert math.isnan(cpt([0, 1], [0.6, 0.7], 0.6, 0.8, 0.8))
    # first point already good enough: reached at that point
    assert cpt([0.3, 1], [0.79, 0.8], 0.6, 0.8, 0.5) == pytest.approx(0.3)


# ---------------------------------------------------------------------------- bootstrap
def test_bootstrap_is_deterministic_with_a_seed() -> None:
    values = np.random.default_rng(0).integers(0, 2, 200).astype(float)

    def mean(idx: np.ndarray) -> float:
        return float(values[idx].mean())

    a = bootstrap_ci(mean, values.size, n_boot=300, seed=7)
    b = bootstrap_ci(mean, values.size, n_boot=300, seed=7)
    c = bootstrap_ci(mean, values.size, n_boot=300, seed=8)
    assert a == b
    assert a != c
    assert a.low < values.mean() < a.high


def test_bootstrap_width_matches_the_normal_approximation() -> None:
    values = np.tile([0.0, 1.0], 200)  # p = 0.5, n = 400, se = 0.025
    ci = bootstrap_ci(lambda idx: values[idx].mean(), values.size, n_boot=2000, seed=1)
    assert ci.high - ci.low == pytest.approx(2 * 1.96 * 0.025, rel=0.15)


def test_bootstrap_vector_statistic_is_paired() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=300)
    b = a + 0.1  # always exactly 0.1 better: the paired difference has no spread

    def stats(idx: np.ndarray) -> np.ndarray:
        return np.array([a[idx].mean(), b[idx].mean(), (b[idx] - a[idx]).mean()])

    ci = bootstrap_ci(stats, a.size, n_boot=200, seed=0)
    assert ci.low.shape == (3,)
    assert ci.low[2] == pytest.approx(0.1) and ci.high[2] == pytest.approx(0.1)
    assert ci.high[0] - ci.low[0] > 0.05


def test_bootstrap_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        bootstrap_ci(lambda idx: 0.0, 0)
    with pytest.raises(ValueError):
        bootstrap_ci(lambda idx: 0.0, 5, level=1.0)


# ---------------------------------------------------------------------------- real data
@needs_data
def test_real_mmlu_single_models_oracle_and_hull() -> None:
    assert DATA is not None
    per_task, _ = load_cascade_logs(DATA / "cascade_logs", "test")
    ds = per_task["mmlu"]
    costs, quals = single_model_points(ds)
    lo, hi, floor = auc_range(ds)
    assert (lo, hi) == (costs.min(), costs.max())
    assert floor == pytest.approx(0.425, abs=5e-4)
    singles = dataset_auc(ds, costs, quals)
    hull = dataset_auc(ds, *linear_hull(costs, quals))
    oracle = oracle_point(ds)
    assert 100 * floor < singles <= hull < 100 * quals.max()
    assert oracle.quality > quals.max() and oracle.cost < costs.max()
    assert dataset_auc(ds, [oracle.cost], [oracle.quality]) > hull
