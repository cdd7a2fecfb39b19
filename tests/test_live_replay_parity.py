"""Training equals serving: what `calibrate` fits and `bench` replays is what the engine does.

A profile is fitted by `run_calibration` on a FAKE server (`fake_logprob_server`) whose answers
carry varied top-logprob alternatives, with ``--save-replay``. The live engine then answers the
same prompts from the same fake answers, and every number it acted on must equal the replay's
(`staged_estimates` and `run_batch`): the features of every answer (entropy and margin
included, which need the saved alternatives), the post-hoc quality of every run, the estimates
the strategy saw in every state, which models ran and which answer was returned. Also: a
profile scores an invalid tool call 0 (and a valid one not), and an exact quality tie goes to
the cheaper model live and in replay alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cascade_core.calibrate import run_calibration
from cascade_core.engine import CascadeEngine, RouterConfig
from cascade_core.estimates import QueryEstimates
from cascade_core.estimators import (
    LogisticQualityEstimator,
    QueryObservation,
    load_profile,
    save_profile,
)
from cascade_core.fitting import fit_quality_estimator, staged_estimates, table_from_dataset
from cascade_core.replay import ReplayDataset, load_replay
from cascade_core.replay.simulate import BatchContext, BatchOutcome, run_batch
from cascade_core.signals import FEATURE_NAMES
from cascade_core.strategies.base import Decision, StateGroup, Strategy
from tests.fake_logprob_server import FakeLogprobServer, fake_answer
from tests.fake_openai_server import FakeModel, FakeOpenAIServer
from tests.stream_drain import drain
from tests.test_engine_unit import TOOLS

GRADER = "tests.fake_logprob_server:grade"
N_PROMPTS = 60
# With these prices (about 2e-6 USD a call for small, 2e-5 for big) this lambda escalates
# some of the small model's answers and keeps others: decisions that can differ.
LAMBDA = 5000.0


class RecordingStrategy(Strategy):
    """Passes every decision to the real strategy and keeps what it was shown."""

    name = "recording"

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.seen: list[tuple[frozenset[int], QueryEstimates]] = []

    def decide(self, estimates: QueryEstimates, ran: Sequence[int] | Any = ()) -> Decision:
        self.seen.append((frozenset(int(m) for m in ran), estimates))
        return self.inner.decide(estimates, ran)

    def decide_batch(self, group: StateGroup) -> np.ndarray:
        return self.inner.decide_batch(group)


def write_dev_set(path: Path, prompts: list[str]) -> None:
    rows = [
        {
            "id": f"d{i}",
            "prompt": p,
            "params": {"max_tokens": 16},
            "reference": "-",
            "grader": GRADER,
        }
        for i, p in enumerate(prompts)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@dataclass
class Calibrated:
    server: FakeLogprobServer
    config: dict[str, Any]
    profile: Path
    replay: ReplayDataset
    prompts: list[str]

    def engine(self) -> tuple[CascadeEngine, RecordingStrategy]:
        engine = CascadeEngine(
            RouterConfig.from_dict({**self.config, "profile": str(self.profile)})
        )
        recorder = RecordingStrategy(engine.parts.strategy)
        engine.parts = replace(engine.parts, strategy=recorder)
        return engine, recorder


def calibrate(
    tmp: Path, server: FakeLogprobServer, config: dict[str, Any], prompts: list[str]
) -> Calibrated:
    dev, profile, saved = tmp / "dev.jsonl", tmp / "profile.json", tmp / "replay.jsonl"
    write_dev_set(dev, prompts)
    run_calibration(
        RouterConfig.from_dict(config),
        profile,
        data=dev,
        cache_path=tmp / "cache.sqlite",
        save_replay=saved,
        concurrency=4,
        progress=False,
    )
    labels = [m["name"] for m in config["models"]]
    replay = load_replay(saved).select_models(labels)
    return Calibrated(server, config, profile, replay, prompts)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Calibrated]:
    prompts = [f"question {i}: what is {i} + {2 * i}?" for i in range(N_PROMPTS)]
    with FakeLogprobServer() as server:
        yield calibrate(tmp_path_factory.mktemp("parity"), server, server.config(LAMBDA), prompts)


@dataclass
class LiveRequest:
    result: Any
    seen: list[tuple[frozenset[int], QueryEstimates]]


def run_live(calibrated: Calibrated, *, stream: bool = False) -> list[LiveRequest]:
    engine, recorder = calibrated.engine()
    out = []
    for prompt in calibrated.prompts:
        start = len(recorder.seen)
        messages = [{"role": "user", "content": prompt}]
        if stream:
            _, result = drain(engine.stream(messages, max_tokens=16))
        else:
            result = engine.run(messages, max_tokens=16)
        out.append(LiveRequest(result, recorder.seen[start:]))
    return out


def replay_of(
    calibrated: Calibrated, live: list[LiveRequest]
) -> tuple[LogisticQualityEstimator, Any, BatchOutcome, Strategy]:
    """The saved replay, staged with the costs the live strategy traded, and run_batch."""
    fitted = load_profile(calibrated.profile)
    cost = np.stack([request.seen[0][1].cost for request in live])
    staged = staged_estimates(fitted, calibrated.replay, cost=cost)
    engine, _ = calibrated.engine()
    strategy = engine.parts.strategy.inner  # the strategy the config and profile give
    return fitted, staged, run_batch(strategy, BatchContext(staged)), strategy


def test_live_features_estimates_and_decisions_equal_the_replay(calibrated: Calibrated) -> None:
    data = calibrated.replay
    assert data.top_logprobs is not None  # --save-replay kept the alternatives
    live = run_live(calibrated)
    fitted, staged, outcome, _ = replay_of(calibrated, live)
    table = table_from_dataset(fitted.spec, data)
    names = list(FEATURE_NAMES)
    for i, request in enumerate(live):
        trace = request.result.trace
        ran = frozenset(run.index for run in trace.runs)
        for run in trace.runs:
            assert run.status == "ok"
            # Features: bit for bit what the replay computes from the saved answer.
            live_features = np.array([run.features[n] for n in names])
            np.testing.assert_array_equal(live_features, table.posthoc[i, run.index])
            assert math.isfinite(run.features["mean_entropy"])
            assert math.isfinite(run.features["mean_margin"])
            # Post-hoc quality: the replay's estimate in the state where only it ran.
            quality, _ = staged.state(frozenset({run.index}))
            assert run.post_hoc_quality == pytest.approx(quality[i, run.index], rel=1e-12)
        # Every estimate the strategy saw is the replay's in that state.
        assert request.seen[0][0] == frozenset()
        for state, estimates in request.seen:
            quality, uncertainty = staged.state(state)
            np.testing.assert_allclose(estimates.quality, quality[i], rtol=1e-12, atol=1e-15)
            np.testing.assert_array_equal(estimates.cost, staged.cost[i])
            np.testing.assert_allclose(
                estimates.uncertainty.covariance, uncertainty.covariance, rtol=1e-12, atol=1e-15
            )
        # Decisions: the same models ran, the same answer was returned.
        assert ran == frozenset(np.flatnonzero(outcome.ran[i]).tolist()), f"query {i}"
        assert request.result.model_index == outcome.answer[i], f"query {i}"
    # The comparison covered decisions that matter: some escalations, some stops, and an
    # answer taken from either model.
    escalated = outcome.ran.sum(axis=1) > 1
    assert 0 < escalated.sum() < len(live)
    assert set(outcome.answer.tolist()) == {0, 1}


def test_entropy_and_margin_are_fitted_from_the_saved_alternatives(calibrated: Calibrated) -> None:
    """The features exist in the data the profile was fitted on, so their coefficients are
    learnt (they were 0.0 when calibration dropped the alternatives)."""
    fitted = load_profile(calibrated.profile)
    columns = fitted.spec.state_names((0,))
    model = fitted.models[(0,)][0]
    for feature in ("mean_entropy", "mean_margin"):
        column = columns.index(f"small:{feature}")
        assert model.coef[column] != 0.0, feature
    table = table_from_dataset(fitted.spec, calibrated.replay)
    margin = table.posthoc[:, :, FEATURE_NAMES.index("mean_margin")]
    assert np.isfinite(margin).all() and margin.std() > 0


def test_streamed_answers_give_the_same_features_and_decisions(calibrated: Calibrated) -> None:
    """Streams are parsed chunk by chunk, yet feed the builder the same values."""
    whole = run_live(calibrated)
    streamed = run_live(calibrated, stream=True)
    for a, b in zip(whole, streamed, strict=True):
        assert [r.index for r in a.result.trace.runs] == [r.index for r in b.result.trace.runs]
        for ra, rb in zip(a.result.trace.runs, b.result.trace.runs, strict=True):
            assert ra.features == rb.features
            assert ra.post_hoc_quality == rb.post_hoc_quality
        kept = [d for d in b.result.trace.decisions if "already streamed" in d]
        if kept:  # the final model's text streamed live before the cascade could compare
            assert b.result.model_index == b.result.trace.runs[-1].index
        else:
            assert a.result.model_index == b.result.model_index
            assert a.result.answer.content == b.result.answer.content


def test_the_fake_answers_match_the_saved_replay(calibrated: Calibrated) -> None:
    """The replay holds what the server sent, not something rebuilt: token logprobs and all
    five alternatives per token."""
    data = calibrated.replay
    assert data.logprobs is not None and data.top_logprobs is not None and data.answers is not None
    for i, prompt in enumerate(calibrated.prompts):
        for j, model in enumerate(data.model_names):
            sent = fake_answer(model, prompt)
            assert data.answers[i, j] == sent.text
            assert tuple(data.logprobs[i, j]) == sent.logprobs
            assert data.top_logprobs[i, j] == sent.top_logprobs


# -- ties ----------------------------------------------------------------------------------


def test_an_exact_tie_goes_to_the_cheaper_model_live_and_in_replay(tmp_path: Path) -> None:
    """Twin models answer alike, so the fitted profile estimates them exactly alike. The ladder
    lists the dearer one first, so "cheaper" and "first" differ; a threshold no estimate
    reaches makes every request run both."""
    prompts = [f"twin question {i}" for i in range(24)]
    with FakeLogprobServer(twins=True) as server:
        strategy = {"name": "threshold_cascade", "threshold": 1.0}
        config = server.config(order=("big", "small"), strategy=strategy)
        calibrated = calibrate(tmp_path, server, config, prompts)
        live = run_live(calibrated)
    _, staged, outcome, _ = replay_of(calibrated, live)
    final, _ = staged.state(frozenset({0, 1}))
    assert np.array_equal(final[:, 0], final[:, 1])  # the tie is exact
    assert outcome.ran.all()
    np.testing.assert_array_equal(outcome.answer, 1)  # "small", the cheaper
    for request in live:
        assert request.result.model == "small"
        assert len(request.result.trace.runs) == 2


# -- tool calls with a profile -------------------------------------------------------------

QUESTION = [{"role": "user", "content": "Weather in Paris?"}]


def logprob_profile(path: Path, names: list[str]) -> Path:
    """A profile fitted on logprob features (with alternatives) where the first model is
    right 80% of the time, so its base rate clears the test's 0.5 threshold."""
    rng = np.random.default_rng(3)
    n = 200
    quality = (rng.random((n, 2)) < [0.8, 0.9]).astype(float)
    logprobs = np.empty((n, 2), dtype=object)
    tops = np.empty((n, 2), dtype=object)
    for i in range(n):
        for m in range(2):
            center = -0.1 if quality[i, m] else -1.5
            lps = np.minimum(rng.normal(center, 0.3, 5), 0.0)
            logprobs[i, m] = lps
            tops[i, m] = tuple((float(lp), float(lp) - 2.0) for lp in lps)
    data = ReplayDataset(
        name="synthetic",
        model_names=names,
        query_ids=[f"q{i}" for i in range(n)],
        prompts=["Weather in Paris?"] * n,
        tasks=[""] * n,
        quality=quality,
        cost=np.tile([1e-7, 1e-5], (n, 1)),
        logprobs=logprobs,
        top_logprobs=tops,
    )
    save_profile(path, fit_quality_estimator(data.subset(range(150)), data.subset(range(150, n))))
    return path


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def tool_engine(fake: FakeOpenAIServer, tmp_path: Path, first_arguments: str) -> CascadeEngine:
    fake.models["first"] = FakeModel(tool_arguments=first_arguments)
    fake.models["second"] = FakeModel(tool_arguments='{"city": "Paris"}')
    models = [
        {
            "name": name,
            "model": f"openai/{name}",
            "api_base": fake.base_url,
            "input_cost_per_token": price,
            "output_cost_per_token": price,
            "supports_logprobs": True,
        }
        for name, price in (("first", 1e-7), ("second", 1e-5))
    ]
    profile = logprob_profile(tmp_path / "profile.json", ["first", "second"])
    return CascadeEngine(
        models=models,
        strategy={"name": "threshold_cascade", "threshold": 0.5},
        profile=str(profile),
        num_retries=0,
    )


def profile_estimate_without_logprobs(path: Path, model: int) -> float:
    """What the profile alone says of a model that answered with no logprobs (a tool call)."""
    fitted = load_profile(path)
    observation = QueryObservation(
        prompt=QUESTION[0]["content"], posthoc={model: {}}, answers={model: ""}
    )
    quality, _ = fitted.predict_one(observation, (model,))
    return float(quality[model])


def test_a_profile_scores_an_invalid_tool_call_zero_and_escalates(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    engine = tool_engine(fake, tmp_path, '{"city": 7}')
    result = engine.run(QUESTION, tools=TOOLS)
    first = result.trace.runs[0]
    assert (first.model, first.post_hoc_quality) == ("first", 0.0)
    assert first.quality_basis == "fitted profile, tool calls"
    assert first.features["tool_call_score"] == 0.0
    assert result.model == "second"  # the cascade escalated past the broken call


@pytest.mark.parametrize("tool_choice", [None, "required"])
def test_a_profile_keeps_its_estimate_for_a_valid_tool_call(
    fake: FakeOpenAIServer, tmp_path: Path, tool_choice: str | None
) -> None:
    engine = tool_engine(fake, tmp_path, '{"city": "Paris"}')
    result = engine.run(QUESTION, tools=TOOLS, tool_choice=tool_choice)
    first = result.trace.runs[0]
    expected = profile_estimate_without_logprobs(tmp_path / "profile.json", 0)
    assert expected > 0.5
    assert first.post_hoc_quality == pytest.approx(expected, rel=1e-12)
    assert first.features["tool_call_score"] == 1.0
    assert result.model == "first" and len(result.trace.runs) == 1


def test_a_profile_scores_a_violated_tool_choice_zero(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    engine = tool_engine(fake, tmp_path, '{"city": "Paris"}')
    choice = {"type": "function", "function": {"name": "other_tool"}}
    tools = [*TOOLS, {"type": "function", "function": {"name": "other_tool"}}]
    result = engine.run(QUESTION, tools=tools, tool_choice=choice)
    assert result.trace.runs[0].post_hoc_quality == 0.0
