"""Early commit: a first draft whose prefix makes acceptance likely streams before it is done.

Against the SCRIPTED OpenAI server over real HTTP (LiteLLM, the OpenAI client), with the
prefix model fitted by `run_calibration` on a scripted dev set, as a user would. The draft
model answers each prompt by its kind: GOOD (every token sure), POOR (every token unsure) or
TURN (sure for the first half, then unsure: a prefix cannot tell it from GOOD); the final
model is always right. So P(accept | a sure 8-token prefix) is high but not 1, and a TURN
draft committed at 8 tokens would have been escalated had it been judged whole.

Order of events, not timing: the server holds a draft's stream after 12 tokens until the
test has seen (or not) text reach the caller, so "before the draft finished" is a fact.
The hedge test uses the FAKE latency provider (a slow big model that is hedged).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import litellm
import numpy as np
import pytest
from fake_latency_provider import FakeLatencyProvider, LatencyProfile, ladder_models, question
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted_openai_server import Reply, ScriptedServer
from stream_drain import adrain, drain

from cascade_core.calibrate import run_calibration
from cascade_core.engine import (
    CascadeEngine,
    CascadeResult,
    RouterConfig,
    StreamEvent,
    TextDelta,
)
from cascade_core.engine.early_commit import (
    FEATURES,
    EarlyCommit,
    PrefixModel,
    prefix_vector,
)
from cascade_core.errors import InvalidInputError
from cascade_core.estimators.logistic import LogisticModel
from cascade_core.fitting.commit_model import Draft, fit_prefix_model
from cascade_core.signals import LogprobAccumulator, features_from_logprobs

WORDS = 20
SURE, UNSURE = -0.02, -3.0
GRADER = "tests.test_early_commit:grader"
# 40 calibration prompts: 30 GOOD, 2 TURN, 8 POOR (P(accept | sure prefix) about 30/32)
KINDS = ["GOOD"] * 30 + ["TURN"] * 2 + ["POOR"] * 8
COMMIT = {"enabled": True, "min_tokens": 8, "p_accept": 0.8}


def grader(answer: str, reference: object, row: dict) -> bool:
    """The final model is always right; the draft only on GOOD prompts."""
    prompt = row["messages"][-1]["content"]
    return not (answer.startswith("draft") and "GOOD" not in prompt)


def _kind(body: dict[str, Any]) -> str:
    prompt = str(body["messages"][-1]["content"])
    return next(k for k in ("GOOD", "TURN", "POOR") if k in prompt)


class Script:
    """The scripted pair; ``hold`` (when set) holds every draft stream after 12 tokens."""

    def __init__(self) -> None:
        self.hold: threading.Event | None = None

    def __call__(self, model: str, body: dict[str, Any]) -> Reply:
        kind = _kind(body)
        words = " ".join(f"w{i}" for i in range(WORDS - 2))
        if model != "draft":
            return Reply(f"final says {words}", logprob=-0.05)
        lps = {
            "GOOD": [SURE] * WORDS,
            "POOR": [UNSURE] * WORDS,
            "TURN": [SURE] * (WORDS // 2) + [UNSURE] * (WORDS // 2),
        }[kind]
        streamed = body.get("stream") and self.hold is not None
        return Reply(
            f"draft says {words}",
            token_logprobs=lps,
            hold=self.hold if streamed else None,
            hold_after=12,
        )


def _ladder(api_base: str) -> dict[str, Any]:
    def rung(name: str, price: float) -> dict[str, Any]:
        return {
            "name": name,
            "model": f"openai/{name}",
            "api_base": api_base,
            "input_cost_per_token": price,
            "output_cost_per_token": price * 10,
            "supports_logprobs": True,
        }

    return {
        "models": [rung("draft", 1e-7), rung("final", 1e-6)],
        "budget": {"lambda": 1800.0},  # the draft first; escalated when it is weak
        "num_retries": 0,
    }


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The scripted server and a profile calibrated on it (with the calibration report)."""
    folder = tmp_path_factory.mktemp("early-commit")
    dev = folder / "dev.jsonl"
    with dev.open("w") as handle:
        for i, kind in enumerate(KINDS):
            row = {"id": f"q{i}", "prompt": f"question {i:02d} {kind}", "reference": "-"}
            handle.write(json.dumps({**row, "grader": GRADER, "params": {"max_tokens": 32}}) + "\n")
    script = Script()
    with ScriptedServer(script) as server:
        config = RouterConfig.from_dict(_ladder(server.api_base))
        profile = folder / "profile.json"
        report = run_calibration(config, profile, data=dev, concurrency=4, progress=False)
        yield server, script, profile, report


def _engine(scripted: Any, **settings: Any) -> CascadeEngine:
    server, _, profile, _ = scripted
    config = {**_ladder(server.api_base), "profile": str(profile), **settings}
    return CascadeEngine(RouterConfig.from_dict(config))


def _messages(kind: str, i: int = 90) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question {i:02d} {kind}"}]


class _FirstText:
    """Passes a stream's events on; at the first text, notes whether the held draft's stream
    had already finished, then releases it."""

    def __init__(self, server: ScriptedServer, hold: threading.Event) -> None:
        self.server, self.hold = server, hold
        self.draft_finished: bool | None = None

    def see(self, event: StreamEvent) -> StreamEvent:
        if isinstance(event, TextDelta) and self.draft_finished is None:
            self.draft_finished = "draft" in self.server.streams_finished
            self.hold.set()
        return event


def _watch(
    events: Iterable[StreamEvent], server: ScriptedServer, hold: threading.Event
) -> tuple[str, CascadeResult, bool | None]:
    """Consume a sync stream; returns (text, result, draft finished before the first text)."""
    first = _FirstText(server, hold)
    text, result = drain(first.see(e) for e in events)
    return text, result, first.draft_finished


# -- calibrate --------------------------------------------------------------------------------


def test_calibrate_fits_the_prefix_model_and_reports_it(scripted: Any) -> None:
    _, _, profile, report = scripted
    draft = report.early_commit["models"]["draft"]
    assert draft["fitted"] is True
    assert draft["drafts"] == len(KINDS) and draft["accept_rate"] == pytest.approx(30 / 40)
    for name in ("log_loss", "brier", "ece"):
        assert 0 <= draft["cv"][name] < 1
    # The prefix says something: out of sample it beats the base rate, and better at 16
    # tokens (where TURN drafts show) than at 8 (where they look GOOD).
    assert draft["cv"]["log_loss"] < draft["base_rate_log_loss"]
    assert draft["by_length"]["16"]["log_loss"] < draft["by_length"]["8"]["log_loss"]
    rule = draft["commit_rule"]
    assert 0 < rule["committed_share"] < 1 and rule["mean_tokens_at_commit"] >= 8
    assert draft["kind"] == "prefix_regression"
    # Every row has a reference, and every draft the cascade escalates is wrong where the
    # final model is right: each commit that changed the answer costs one right answer.
    assert rule["quality_cost_rows"] == len(KINDS)
    assert rule["quality_cost"] == pytest.approx(
        rule["would_have_escalated_share"] * rule["committed_share"]
    )
    # Run first, the final model would draft too, and the cascade accepts all its answers:
    # no prefix can tell its outcomes apart, so its probability is the rule of succession.
    final = report.early_commit["models"]["final"]
    assert final["kind"] == "base_rate" and final["p_accept"] == pytest.approx(41 / 42)
    assert "40 of 40 drafts accepted" in final["reason"]
    assert final["commit_rule"]["quality_cost"] == 0.0
    saved = json.loads(profile.read_text())["early_commit"]
    assert saved["features"] == list(FEATURES) and set(saved["models"]) == {"draft", "final"}


# -- streams ------------------------------------------------------------------------------------


def test_a_confident_prefix_commits_before_the_draft_finishes(scripted: Any) -> None:
    server, script, _, _ = scripted
    script.hold = hold = threading.Event()
    server.streams_finished.clear()
    try:
        events = _engine(scripted, early_commit=COMMIT).stream(_messages("GOOD"), max_tokens=32)
        text, result, finished_first = _watch(events, server, hold)
    finally:
        script.hold = None
    assert finished_first is False  # text reached the caller while the draft was held
    assert result.model == "draft" and text == result.content
    assert [r.model for r in result.trace.runs] == ["draft"]
    assert result.trace.would_have_escalated is False
    assert any(d.startswith("early commit: draft after 8 tokens") for d in result.trace.decisions)
    assert result.trace.stop_reason == "committed early to draft"


async def test_astream_commits_too(scripted: Any) -> None:
    server, script, _, _ = scripted
    script.hold = hold = threading.Event()
    server.streams_finished.clear()
    engine = _engine(scripted, early_commit=COMMIT)
    first = _FirstText(server, hold)
    try:
        stream = engine.astream(_messages("GOOD", 91), max_tokens=32)
        text, result = await adrain(first.see(e) async for e in stream)
    finally:
        script.hold = None
    assert first.draft_finished is False
    assert result.model == "draft" and text == result.content
    assert result.trace.would_have_escalated is False


def test_an_unconfident_prefix_does_not_commit_and_the_draft_never_shows(scripted: Any) -> None:
    text, result = drain(
        _engine(scripted, early_commit=COMMIT).stream(_messages("POOR"), max_tokens=32)
    )
    assert result.model == "final" and text == result.content
    assert "draft says" not in text
    assert [r.model for r in result.trace.runs] == ["draft", "final"]
    assert result.trace.would_have_escalated is None
    assert not any(d.startswith("early commit") for d in result.trace.decisions)


def test_a_committed_draft_that_turns_bad_is_still_the_answer(scripted: Any) -> None:
    text, result = drain(
        _engine(scripted, early_commit=COMMIT).stream(_messages("TURN"), max_tokens=32)
    )
    assert result.model == "draft" and text == result.content  # no escalation after commit
    assert [r.model for r in result.trace.runs] == ["draft"]
    assert result.trace.would_have_escalated is True
    assert result.trace.as_dict()["would_have_escalated"] is True
    assert "the strategy would have escalated it" in result.trace.decisions[-1]
    # Judged whole, the same draft is escalated when nothing was committed.
    whole = _engine(scripted).run(_messages("TURN"), max_tokens=32)
    assert whole.model == "final"


def test_disabled_by_default(scripted: Any) -> None:
    server, script, _, _ = scripted
    assert RouterConfig.from_dict(_ladder("http://x")).early_commit.enabled is False
    script.hold = hold = threading.Event()
    server.streams_finished.clear()
    releaser = threading.Timer(0.5, hold.set)  # nothing reaches the caller until released
    releaser.start()
    try:
        text, result, finished_first = _watch(
            _engine(scripted).stream(_messages("GOOD", 92), max_tokens=32), server, hold
        )
    finally:
        releaser.cancel()
        script.hold = None
    assert finished_first is True  # the draft was judged whole before any text was sent
    assert result.model == "draft" and text == result.content
    assert result.trace.would_have_escalated is None
    assert not any(d.startswith("early commit") for d in result.trace.decisions)


def test_enabling_needs_a_fitted_prefix_model(scripted: Any, tmp_path: Path) -> None:
    server, _, profile, _ = scripted
    with pytest.raises(InvalidInputError, match=r"^early_commit.enabled: needs a profile"):
        CascadeEngine(RouterConfig.from_dict({**_ladder(server.api_base), "early_commit": COMMIT}))
    bare = tmp_path / "bare.json"
    data = json.loads(profile.read_text())
    del data["early_commit"]
    bare.write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match="no early_commit section"):
        CascadeEngine(
            RouterConfig.from_dict(
                {**_ladder(server.api_base), "profile": str(bare), "early_commit": COMMIT}
            )
        )
    with pytest.raises(InvalidInputError, match="min_tokens: 64 is past every prefix length"):
        _engine(scripted, early_commit={**COMMIT, "min_tokens": 64})
    verifier = {"model": {"name": "judge", "model": "openai/judge"}, "verify": "always"}
    with pytest.raises(InvalidInputError, match=r"does not combine with verifier\.verify"):
        RouterConfig.from_dict(
            {**_ladder("http://x"), "early_commit": COMMIT, "verifier": verifier}
        )
    with pytest.raises(InvalidInputError, match=r"early_commit\.p_accept"):
        RouterConfig.from_dict({**_ladder("http://x"), "early_commit": {"p_accept": 1.5}})
    data = json.loads(profile.read_text())
    data["early_commit"]["models"]["draft"]["coef"] = [1.0]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match=r"early_commit\.models\.draft\.coef: expected 5"):
        CascadeEngine(
            RouterConfig.from_dict(
                {**_ladder(server.api_base), "profile": str(broken), "early_commit": COMMIT}
            )
        )


# -- a hedge is cancelled on commit ------------------------------------------------------------

FAST = LatencyProfile(ttft_s=0.02, tokens_per_s=400.0, accuracy=0.7)
SLOW = LatencyProfile(ttft_s=0.02, tokens_per_s=20.0, accuracy=1.0, repeat=3)
HEDGE_PRICES = {"small": (1e-7, 1e-7), "big": (1e-6, 1e-4)}
# Waiting is dear, so the big model is worth hedging even when the small draft is likely kept.
WEIGHTS = {"ttft_usd_per_s": 1e-2, "total_usd_per_s": 1e-2}


async def _astream(engine: CascadeEngine, prompt: str) -> tuple[str, CascadeResult]:
    return await adrain(engine.astream([{"role": "user", "content": prompt}], max_tokens=60))


def test_a_hedge_is_cancelled_on_commit_and_its_tokens_are_paid(tmp_path: Path) -> None:
    dev = tmp_path / "dev.jsonl"
    with dev.open("w") as handle:
        for i in range(40):
            prompt, answer = question(200 + i)
            row = {"id": f"h{i}", "prompt": prompt, "reference": rf"\b{answer}\b"}
            handle.write(json.dumps({**row, "params": {"max_tokens": 60}}) + "\n")
    with FakeLatencyProvider({"small": FAST, "big": FAST}) as provider:
        litellm.completion(  # LiteLLM's one-off set-up, not a model's latency
            model="openai/small", api_base=provider.base_url, api_key="fake", max_tokens=1,
            messages=[{"role": "user", "content": "hi"}],
        )  # fmt: skip
        config = {
            "models": ladder_models(provider, HEDGE_PRICES),
            "strategy": {"name": "threshold_cascade", "threshold": 0.7},
            "num_retries": 0,
            "latency_weights": WEIGHTS,
        }
        profile = tmp_path / "profile.json"
        report = run_calibration(
            RouterConfig.from_dict(config), profile, data=dev, grader="regex", progress=False
        )
        assert report.early_commit["models"]["small"]["fitted"] is True
        provider.profiles["big"] = SLOW  # served: the big model is slow, so it is hedged
        engine = CascadeEngine(
            RouterConfig.from_dict(
                {**config, "profile": str(profile), "early_commit": {"enabled": True}}
            )
        )
        wrong = next(i for i in range(300, 340) if not _small_right(provider, i))
        right = next(i for i in range(300, 340) if _small_right(provider, i))
        # Both models observed once streaming (a draft that escalates), as in live traffic.
        asyncio.run(_astream(engine, question(wrong)[0]))
        provider.served.clear()
        text, result = asyncio.run(_astream(engine, question(right)[0]))
    runs = {(r.model, r.status): r for r in result.trace.runs}
    assert result.model == "small" and text == result.content
    hedge = runs[("big", "cancelled")]
    assert hedge.hedged and hedge.reason == "cancelled: small committed early"
    assert hedge.cost_usd > 0 and result.cost_usd == pytest.approx(
        runs[("small", "ok")].cost_usd + hedge.cost_usd
    )
    served = {s.model: s for s in provider.served}
    assert not served["big"].completed and served["big"].tokens_sent < served["big"].tokens_total
    assert result.trace.would_have_escalated is False


def _small_right(provider: FakeLatencyProvider, i: int) -> bool:
    from fake_latency_provider import answers_right

    return answers_right("small", question(i)[0], provider.profiles["small"].accuracy)


def test_one_outcome_gets_the_rule_of_succession() -> None:
    """No prefix tells apart drafts that were all accepted: the probability is the rule of
    succession, cautious on few drafts (10 of 10 does not commit at 0.95; 48 of 48 does)."""
    sure = features_from_logprobs([SURE] * 8, answer_parsed=True)
    for n, commits in ((10, False), (48, True)):
        drafts = [Draft(i, "m", [SURE] * 20, None, 0.7, True) for i in range(n)]
        fit = fit_prefix_model(drafts, threshold=0.95, min_tokens=8)
        entry = fit.report["models"]["m"]
        assert entry["kind"] == "base_rate" and entry["p_accept"] == pytest.approx(
            (n + 1) / (n + 2)
        )
        policy = EarlyCommit(fit.model, 8, 0.95)
        decision = policy.decide("m", sure, 0.7)
        assert decision is not None and decision.commit is commits
        assert decision.p_accept == pytest.approx((n + 1) / (n + 2))
    drafts = [Draft(i, "m", [SURE] * 3, None, 0.7, True) for i in range(5)]
    fit = fit_prefix_model(drafts, threshold=0.95, min_tokens=8)
    assert fit.report["models"]["m"] == {
        "fitted": False,
        "reason": "no draft has more than 4 tokens",
    }
    assert fit.model.models == {}


def test_the_quality_cost_counts_only_commits_that_changed_the_answer() -> None:
    """59 of 60 drafts accepted: the rule of succession (60/62) commits all of them, so the
    one escalated draft is committed too, and its gain (the judged answer was right, the
    draft wrong) is the quality lost, per drafted request; without references it is None."""
    gains = [0.0] * 59 + [1.0]
    drafts = [
        Draft(i, "m", [SURE] * 20, None, 0.7, i < 59, gain_if_judged=g) for i, g in enumerate(gains)
    ]
    rule = fit_prefix_model(drafts, threshold=0.95, min_tokens=8).report["models"]["m"]
    assert rule["kind"] == "base_rate"
    assert rule["commit_rule"]["quality_cost"] == pytest.approx(1 / 60)
    assert rule["commit_rule"]["quality_cost_rows"] == 60
    strict = fit_prefix_model(drafts, threshold=0.99, min_tokens=8).report["models"]["m"]
    assert strict["commit_rule"]["quality_cost"] == 0.0  # nothing commits at 0.99
    unlabelled = [Draft(d.row, "m", d.logprobs, None, 0.7, d.accepted) for d in drafts]
    rule = fit_prefix_model(unlabelled, threshold=0.95, min_tokens=8).report["models"]["m"]
    assert rule["commit_rule"]["quality_cost"] is None


# -- properties ---------------------------------------------------------------------------------

logprob_lists = st.lists(
    st.floats(min_value=-30.0, max_value=0.0, allow_nan=False), min_size=1, max_size=40
)
coefficients = st.lists(
    st.floats(min_value=-50.0, max_value=50.0, allow_nan=False), min_size=5, max_size=5
)


def _model(coef: list[float], intercept: float) -> PrefixModel:
    logistic = LogisticModel(
        mean=np.zeros(len(FEATURES)),
        scale=np.ones(len(FEATURES)),
        coef=np.array(coef),
        intercept=intercept,
    )
    return PrefixModel(lengths=(4, 8, 16, 32), models={"draft": logistic})


@settings(max_examples=200, deadline=None)
@given(
    logprob_lists,
    coefficients,
    st.floats(-50, 50),
    st.floats(0, 1),
)
def test_p_accept_is_a_probability(
    logprobs: list[float], coef: list[float], intercept: float, ex_ante: float
) -> None:
    features = features_from_logprobs(logprobs, answer_parsed=True)
    p = _model(coef, intercept).p_accept("draft", features, ex_ante)
    assert p is not None and 0.0 <= p <= 1.0
    assert _model(coef, intercept).p_accept("other", features, ex_ante) is None


@settings(max_examples=200, deadline=None)
@given(
    logprob_lists,
    coefficients,
    st.floats(-10, 10),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_the_commit_decision_is_monotone_in_the_threshold(
    logprobs: list[float], coef: list[float], intercept: float, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    features = features_from_logprobs(logprobs, answer_parsed=True)
    model = _model(coef, intercept)
    strict = EarlyCommit(model, 8, high).decide("draft", features, 0.5)
    loose = EarlyCommit(model, 8, low).decide("draft", features, 0.5)
    assert strict is not None and loose is not None
    assert strict.p_accept == loose.p_accept
    assert not strict.commit or loose.commit


@settings(max_examples=200, deadline=None)
@given(logprob_lists, st.integers(1, 40))
def test_live_and_calibration_prefix_features_agree(logprobs: list[float], k: int) -> None:
    """The stream's running features at k tokens are the ones calibrate fits on."""
    k = min(k, len(logprobs))
    live = LogprobAccumulator()
    for lp in logprobs[:k]:
        live.add(lp)
    features = live.features(answer_parsed=True)
    assert features is not None
    fitted = features_from_logprobs(logprobs[:k], answer_parsed=True)
    np.testing.assert_array_equal(prefix_vector(features, 0.3), prefix_vector(fitted, 0.3))
