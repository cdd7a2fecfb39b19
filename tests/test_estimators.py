"""Estimators on small synthetic data: known signals are recovered, profiles round-trip."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core.estimators import (
    PROFILE_VERSION,
    FeatureSpec,
    ProfileVersionError,
    QueryObservation,
    fit_logistic,
    load_profile,
    posthoc_from_confidence,
    profile_from_dict,
    profile_to_dict,
    save_profile,
    table_from_observation,
)
from cascade_core.fitting import (
    NOISE_LEVELS,
    fit_noisy_oracle,
    fit_quality_estimator,
    staged_estimates,
)
from cascade_core.fitting.features import spec_for_dataset
from cascade_core.fitting.quality import log_loss
from cascade_core.replay import ReplayDataset


def synthetic_replay(
    n: int = 400, seed: int = 0, k: int = 3, tasks: tuple[str, ...] = ("t",)
) -> ReplayDataset:
    """Each model's logged confidence is its true P(correct) plus a little noise."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, (n, k))
    correct = (rng.random((n, k)) < p).astype(float)
    confidence = np.log(np.clip(p + rng.normal(0, 0.02, p.shape), 1e-3, 1.0))
    answers = np.where(correct == 1, "right", rng.choice(["a", "b", "c"], (n, k))).astype(object)
    return ReplayDataset(
        name="synthetic",
        model_names=[f"m{j}" for j in range(k)],
        query_ids=[str(i) for i in range(n)],
        prompts=["x" * int(v) for v in rng.integers(5, 50, n)],
        tasks=[tasks[i % len(tasks)] for i in range(n)],
        quality=correct,
        cost=np.tile(np.geomspace(1e-5, 1e-3, k), (n, 1)),
        signals={"confidence_logprob": confidence},
        answers=answers,
    )


def test_logistic_recovers_a_known_coefficient():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 2))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(1.5 * x[:, 0] - 0.5)))).astype(float)
    model = fit_logistic(x, y)
    # Coefficients are per standardised feature; x is already ~standard normal.
    assert model.coef[0] == pytest.approx(1.5, abs=0.15)
    assert abs(model.coef[1]) < 0.1
    assert model.intercept == pytest.approx(-0.5, abs=0.1)


def test_logistic_treats_nan_as_the_mean():
    model = fit_logistic(np.array([[0.0], [1.0], [2.0], [np.nan]]), np.array([0, 0, 1, 1.0]))
    assert model.predict(np.array([np.nan])) == pytest.approx(model.predict(np.array([1.0])))


def test_posthoc_estimate_tracks_the_logged_confidence():
    fit, holdout = synthetic_replay(seed=0).split(0.5, seed=0)
    estimator = fit_quality_estimator(fit, holdout)
    test = synthetic_replay(seed=5)
    staged = staged_estimates(estimator, test)
    quality, _ = staged.state(frozenset({0}))
    truth_p = np.exp(test.signals["confidence_logprob"][:, 0])
    assert np.corrcoef(quality[:, 0], truth_p)[0, 1] > 0.9
    # Before any run nothing is known about model 0 beyond its base rate.
    ante, uncertainty = staged.state(frozenset())
    assert ante[:, 0].std() < quality[:, 0].std()
    assert uncertainty.covariance[0, 0] > 0
    # Once every model ran the estimate is final: no uncertainty left.
    _, final = staged.state(frozenset({0, 1, 2}))
    assert np.allclose(final.covariance, 0)


@pytest.mark.parametrize("tasks", [("t",), ("mc", "open", "math")])
def test_live_prediction_matches_the_batch_path(tasks):
    fit, holdout = synthetic_replay(tasks=tasks).split(0.5, seed=0)
    estimator = fit_quality_estimator(fit, holdout)
    assert set(estimator.spec.slope_tasks) == (set(tasks) if len(tasks) > 1 else set())
    test = synthetic_replay(n=20, seed=3, tasks=tasks)
    batch, _ = staged_estimates(estimator, test).state(frozenset({0, 1}))
    for i in range(test.n_queries):
        observation = QueryObservation(
            prompt=test.prompts[i],
            task=test.tasks[i],
            posthoc={
                m: posthoc_from_confidence(test.signals["confidence_logprob"][i, m]) for m in (0, 1)
            },
            answers={m: test.answers[i, m] for m in (0, 1)},
        )
        live, _ = estimator.predict_one(observation, frozenset({0, 1}))
        np.testing.assert_allclose(live, batch[i], rtol=1e-12)


@pytest.mark.parametrize("tasks", [("t",), ("mc", "open")])
def test_profile_round_trip_is_exact(tmp_path, tasks):
    fit, holdout = synthetic_replay(tasks=tasks).split(0.5, seed=0)
    estimator = fit_quality_estimator(fit, holdout)
    path = tmp_path / "profile.json"
    save_profile(path, estimator)
    loaded = load_profile(path)
    assert loaded.spec == estimator.spec
    test = synthetic_replay(n=50, seed=9, tasks=tasks)
    for state in [frozenset(), frozenset({1}), frozenset({0, 2})]:
        a, ua = staged_estimates(estimator, test).state(state)
        b, ub = staged_estimates(loaded, test).state(state)
        assert np.array_equal(a, b)
        assert np.array_equal(ua.covariance, ub.covariance)


def two_meaning_replay(n: int, seed: int) -> ReplayDataset:
    """One model whose logged signal means opposite things in two tasks: in "mc" it is the
    log-probability of being right, in "open" the log-probability of being wrong (as a
    signal can invert between an answer token's logprob and a verifier's P(True))."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n)
    correct = (rng.random(n) < p).astype(float)
    tasks = np.array(["mc", "open"])[np.arange(n) % 2]
    signal = np.where(tasks == "mc", np.log(p), np.log1p(-p))
    return ReplayDataset(
        name="two-meanings",
        model_names=["m0"],
        query_ids=[str(i) for i in range(n)],
        prompts=["question"] * n,
        tasks=list(tasks),
        quality=correct[:, None],
        cost=np.full((n, 1), 1e-5),
        signals={"confidence_logprob": signal[:, None]},
    )


def test_per_task_slopes_fit_a_signal_whose_meaning_differs_by_task():
    """A slope shared across tasks cancels out here (the floor is about the base rate); CV
    picks the per-task slopes, which predict better out of fold and on new rows."""
    estimator = fit_quality_estimator(two_meaning_replay(600, 0))
    choice = estimator.crossfit.choices[(0, (0,))]
    assert choice.features == "full_task_slopes"
    assert choice.cv_log_loss < choice.floor_cv_log_loss - 0.05
    test = two_meaning_replay(2000, 1)
    quality, _ = staged_estimates(estimator, test).state(frozenset({0}))
    shared = fit_quality_estimator(
        two_meaning_replay(600, 0), spec=replace(estimator.spec, task_slopes=False)
    )
    shared_quality, _ = staged_estimates(shared, test).state(frozenset({0}))
    target = test.quality[:, 0]
    assert log_loss(target, quality[:, 0]) < log_loss(target, shared_quality[:, 0]) - 0.05
    for task in ("mc", "open"):
        rows = np.array(test.tasks) == task
        truth = np.where(
            task == "mc",
            np.exp(test.signals["confidence_logprob"][rows, 0]),
            -np.expm1(test.signals["confidence_logprob"][rows, 0]),
        )
        assert np.corrcoef(quality[rows, 0], truth)[0, 1] > 0.9


def test_a_profile_written_before_task_slopes_loads_without_them():
    """Profiles from before per-task slopes have no ``task_slopes`` field: they load with
    none and estimate what they estimated."""
    fit, holdout = synthetic_replay(n=60, tasks=("a", "b")).split(0.5, seed=0)
    spec = replace(spec_for_dataset(fit), task_slopes=False)
    estimator = fit_quality_estimator(fit, holdout, spec=spec)
    data = json.loads(json.dumps(profile_to_dict(estimator)))
    del data["features"]["task_slopes"]
    loaded = profile_from_dict(data)
    assert loaded.spec == spec
    test = synthetic_replay(n=30, seed=4, tasks=("a", "b"))
    for state in [frozenset(), frozenset({0, 1})]:
        assert np.array_equal(
            staged_estimates(loaded, test).state(state)[0],
            staged_estimates(estimator, test).state(state)[0],
        )


@pytest.mark.parametrize("version", [0, PROFILE_VERSION + 1, "1"])
def test_profile_of_another_version_is_refused(version):
    fit, holdout = synthetic_replay(n=60).split(0.5, seed=0)
    data = json.loads(json.dumps(profile_to_dict(fit_quality_estimator(fit, holdout))))
    data["version"] = version
    with pytest.raises(ProfileVersionError, match="version"):
        profile_from_dict(data)


def test_noise_levels_are_the_papers():
    assert {k: (v.before, v.after) for k, v in NOISE_LEVELS.items()} == {
        "low": (0.6, 0.3),
        "medium": (1.6, 0.8),
        "high": (2.4, 1.2),
    }


def test_more_noise_gives_worse_estimates():
    data = synthetic_replay(n=3000, seed=2)
    errors = []
    for level in ("low", "medium", "high"):
        oracle = fit_noisy_oracle(data, level, seed=0)
        ante, post = oracle.estimates(data, seed=1)
        assert ((post - data.quality) ** 2).mean() < ((ante - data.quality) ** 2).mean()
        errors.append(((post - data.quality) ** 2).mean())
        staged = oracle.staged(data, seed=1)
        _, uncertainty = staged.state(frozenset({0}))
        assert uncertainty.covariance[0, 0] == 0 and uncertainty.covariance[1, 1] > 0
    assert errors[0] < errors[1] < errors[2]


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_noisy_oracle_estimates_are_the_bayes_posterior(level: str) -> None:
    """For a 0/1 truth with base rate q and x = truth + N(0, s^2), the log-odds of the truth
    given x are logit q + (x - 1/2) / s^2, and with both draws the two terms add: the fitted
    calibrations must be that posterior (a line clipped to [0, 1] is not)."""
    data = synthetic_replay(n=20000, seed=3)
    oracle = fit_noisy_oracle(data, level, seed=0)
    noise = NOISE_LEVELS[level]
    for j, base_rate in enumerate(data.quality.mean(axis=0)):
        prior = np.log(base_rate / (1 - base_rate))
        for fitted, sigmas in (
            (oracle.before[j], [noise.before]),
            (oracle.after[j], [noise.before, noise.after]),
        ):
            per_unit = fitted.coef / fitted.scale  # log-odds per unit of each noisy value
            np.testing.assert_allclose(per_unit, 1 / np.square(sigmas), rtol=0.1)
            midpoint = fitted.predict(np.full((1, len(sigmas)), 0.5))[0]
            assert abs(np.log(midpoint / (1 - midpoint)) - prior) < 0.25


@settings(max_examples=60, deadline=None)
@given(
    quality=st.integers(2, 40).flatmap(
        lambda n: st.lists(
            st.lists(st.sampled_from([0.0, 0.25, 1.0]), min_size=3, max_size=3),
            min_size=n,
            max_size=n,
        )
    ),
    level=st.sampled_from(sorted(NOISE_LEVELS)),
)
def test_noisy_oracle_is_finite_on_any_truth(quality: list[list[float]], level: str) -> None:
    """Any scores, including a model always (or never) right and graded ones, give
    probabilities in [0, 1] and a finite sigma on the fitting rows and on fresh noise."""
    truth = np.array(quality)
    n = truth.shape[0]
    data = ReplayDataset(
        name="any",
        model_names=["a", "b", "c"],
        query_ids=[str(i) for i in range(n)],
        prompts=["p"] * n,
        tasks=["t"] * n,
        quality=truth,
        cost=np.tile([1e-5, 1e-4, 1e-3], (n, 1)),
    )
    oracle = fit_noisy_oracle(data, level, seed=0)
    assert np.all(np.isfinite(oracle.sigma)) and np.all(oracle.sigma >= 0)
    for seed in (0, 1):
        for estimate in oracle.estimates(data, seed):
            assert np.all((estimate >= 0) & (estimate <= 1))


def test_live_estimators_and_budget_load_no_replay_or_fitting_code() -> None:
    """The live half (what the engine imports) runs without the offline stack: a fresh
    interpreter that loads a profile's module and the budget curve has no replay, fitting,
    bench or calibrate module (import-linter checks the static imports; this the real ones)."""
    code = (
        "import sys, cascade_core.estimators, cascade_core.budget\n"
        "offline = ('cascade_core.replay', 'cascade_core.fitting', 'cascade_core.bench',"
        " 'cascade_core.calibrate')\n"
        "print(sorted(m for m in sys.modules if m.startswith(offline)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@settings(max_examples=60)
@given(
    n_models=st.integers(1, 4),
    tasks=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=12),
    source=st.sampled_from(["confidence", "logprobs", "logprobs+confidence", "none"]),
    slopes=st.booleans(),
    ran=st.sets(st.integers(0, 3)),
    data=st.data(),
)
def test_state_columns_match_their_names_for_every_spec(n_models, tasks, source, slopes, ran, data):
    """Whatever the spec, the state matrix has one column per name, in one layout for the
    replay table and a live observation; per-task slope columns are 0 off their task."""
    known = tuple(dict.fromkeys(tasks))
    spec = FeatureSpec(
        model_names=tuple(f"m{i}" for i in range(n_models)),
        tasks=known,
        posthoc_source=source,
        task_slopes=slopes,
    )
    state = sorted(r for r in ran if r < n_models)
    posthoc = {
        m: {name: data.draw(st.floats(-20, 0)) for name in spec.posthoc_names} for m in state
    }
    task = data.draw(st.sampled_from([*known, "unseen"]))
    table = table_from_observation(spec, QueryObservation(prompt="q", task=task, posthoc=posthoc))
    x = table.state_matrix(state)
    names = spec.state_names(state)
    assert x.shape == (1, len(names))
    for column, name in zip(x[0], names, strict=True):
        if "*" in name:
            slope_task = name.split("*")[0].removeprefix("task=")
            if slope_task != task:
                assert column == 0.0
