"""Estimators on small synthetic data: known signals are recovered, profiles round-trip."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cascade_core.estimators import (
    PROFILE_VERSION,
    ProfileVersionError,
    QueryObservation,
    fit_logistic,
    load_profile,
    posthoc_from_confidence,
    profile_from_dict,
    profile_to_dict,
    save_profile,
)
from cascade_core.fitting import (
    NOISE_LEVELS,
    fit_noisy_oracle,
    fit_quality_estimator,
    staged_estimates,
)
from cascade_core.replay import ReplayDataset


def synthetic_replay(n: int = 400, seed: int = 0, k: int = 3) -> ReplayDataset:
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
        tasks=["t"] * n,
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


def test_live_prediction_matches_the_batch_path():
    fit, holdout = synthetic_replay().split(0.5, seed=0)
    estimator = fit_quality_estimator(fit, holdout)
    test = synthetic_replay(n=20, seed=3)
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


def test_profile_round_trip_is_exact(tmp_path):
    fit, holdout = synthetic_replay().split(0.5, seed=0)
    estimator = fit_quality_estimator(fit, holdout)
    path = tmp_path / "profile.json"
    save_profile(path, estimator)
    loaded = load_profile(path)
    test = synthetic_replay(n=50, seed=9)
    for state in [frozenset(), frozenset({1}), frozenset({0, 2})]:
        a, ua = staged_estimates(estimator, test).state(state)
        b, ub = staged_estimates(loaded, test).state(state)
        assert np.array_equal(a, b)
        assert np.array_equal(ua.covariance, ub.covariance)


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
