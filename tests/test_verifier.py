"""The optional verification call, against the FAKE scripted OpenAI server (real HTTP via
LiteLLM): a scripted verifier model says "Yes" or "No" with chosen first-token logprobs.

The ladder: "small" returns no logprobs (like Anthropic), "large" does. The small model
answers "Lyon" to questions marked hard, which the scripted verifier rejects.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scripted_openai_server import Rejected, Reply, ScriptedServer
from stream_drain import adrain, drain

from cascade_core.engine import CascadeEngine, ModelAnswer, RouterConfig
from cascade_core.engine.verifier import (
    VERDICT_TOKENS,
    answer_text,
    p_yes,
    question_text,
)
from cascade_core.errors import InvalidInputError

SMALL_RIGHT, SMALL_WRONG = "Paris", "Lyon"
LARGE = "Paris is the capital of France."
EASY = [{"role": "user", "content": "What is the capital of France?"}]
HARD = [{"role": "user", "content": "hard: what is the capital of France?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Current weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
LEAKED = "sk-proj-Zz98Yy76Xx54Ww32Vv10Uu98Tt76"


def _verdict(yes: bool) -> Reply:
    if yes:
        return Reply("Yes", logprob=math.log(0.95), alternatives={"No": math.log(0.03)})
    return Reply("No", logprob=math.log(0.9), alternatives={"Yes": math.log(0.05)})


def _script(model: str, body: dict[str, Any]) -> Reply:
    if model == "judge":
        prompt = body["messages"][0]["content"]
        if "fail" in prompt:
            raise Rejected(500, f"verifier down; your key {LEAKED} was rejected")
        return _verdict(SMALL_WRONG not in prompt)
    question = str(body["messages"][-1]["content"])
    if model == "small":
        if body.get("tools"):
            return Reply(tool_calls=[{"name": "weather", "arguments": '{"city": "Paris"}'}])
        return Reply(SMALL_WRONG if "hard" in question else SMALL_RIGHT)
    return Reply(LARGE, logprob=-0.05)


@pytest.fixture(scope="module")
def server():
    with ScriptedServer(_script) as running:
        yield running


def _rung(api_base: str, name: str, price: float, logprobs: bool) -> dict[str, Any]:
    return {
        "name": name,
        "model": f"openai/{name}",
        "api_base": api_base,
        "input_cost_per_token": price,
        "output_cost_per_token": price,
        "supports_logprobs": logprobs,
    }


def _config(
    api_base: str,
    verifier: dict[str, Any] | None = None,
    small_logprobs: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "models": [
            {**_rung(api_base, "small", 1e-7, small_logprobs), "prior_quality": 0.6},
            {**_rung(api_base, "large", 1e-5, True), "prior_quality": 0.8},
        ],
        "budget": {"lambda": 100.0},
        "num_retries": 0,
        "timeout_s": 10,
        **extra,
    }
    if verifier is not None:
        config["verifier"] = {"model": _rung(api_base, "judge", 1e-7, True), **verifier}
    return config


def _engine(api_base: str, verifier: dict[str, Any] | None = None, **kwargs: Any):
    return CascadeEngine(**_config(api_base, verifier, **kwargs))


def _judge_requests(server: ScriptedServer, since: int) -> list[dict[str, Any]]:
    return [r for r in server.requests[since:] if r.get("model") == "judge"]


def _verifications(result) -> list:
    return [run for run in result.trace.runs if run.verifies is not None]


# -- the cascade with a verifier ---------------------------------------------------------


def test_a_yes_keeps_the_small_answer_and_its_cost_is_counted(server) -> None:
    before = len(server.requests)
    result = _engine(server.api_base, {}).run(EASY)
    assert result.model == "small" and result.content == SMALL_RIGHT
    (verification,) = _verifications(result)
    assert verification.model == "judge" and verification.verifies == "small"
    assert verification.status == "ok" and verification.features["p_yes"] > 0.9
    small = result.trace.runs[0]
    assert small.quality_basis == "verifier P(yes)" and small.post_hoc_quality > 0.9
    assert small.features["conf_logprob"] == pytest.approx(math.log(0.95 / 0.98))
    # the verdict is paid, in the result's cost and usage, and was estimated in advance
    assert verification.cost_usd > 0 and verification.prompt_tokens > 0
    assert result.cost_usd == pytest.approx(small.cost_usd + verification.cost_usd)
    assert result.usage.prompt_tokens == small.prompt_tokens + verification.prompt_tokens
    assert any(d.startswith("verification expected: small +") for d in result.trace.decisions)
    assert result.trace.models_run == ["small"]  # a verification is not an escalation
    (request,) = _judge_requests(server, before)
    assert not request.get("stream") and request["logprobs"] is True
    assert request["max_tokens"] <= VERDICT_TOKENS and 5 <= request["top_logprobs"] <= 20
    assert request["temperature"] == 0
    assert EASY[0]["content"] in request["messages"][0]["content"]
    assert SMALL_RIGHT in request["messages"][0]["content"]


def test_a_no_escalates_and_the_final_answer_is_never_verified(server) -> None:
    before = len(server.requests)
    result = _engine(server.api_base, {}).run(HARD)
    assert result.model == "large" and result.content == LARGE
    assert result.trace.models_run == ["small", "large"]
    (verification,) = _verifications(result)
    assert verification.verifies == "small" and verification.features["p_yes"] < 0.1
    assert result.trace.runs[0].post_hoc_quality < 0.1
    assert len(_judge_requests(server, before)) == 1  # large was final: not verified
    assert json.dumps(result.trace.as_dict())  # the trace stays JSON


def test_without_a_verifier_no_verification_call_is_made(server) -> None:
    before = len(server.requests)
    for messages in (EASY, HARD):
        result = _engine(server.api_base).run(messages)
        assert not _verifications(result)
        assert not any("verif" in d for d in result.trace.decisions)
    assert not _judge_requests(server, before)


def test_answers_with_logprobs_are_verified_only_when_always(server) -> None:
    before = len(server.requests)
    result = _engine(server.api_base, {}, small_logprobs=True).run(EASY)
    assert not _verifications(result) and not _judge_requests(server, before)
    result = _engine(server.api_base, {"verify": "always"}, small_logprobs=True).run(EASY)
    assert [run.verifies for run in _verifications(result)] == ["small"]
    assert result.trace.runs[0].quality_basis == "verifier P(yes)"


def test_verifier_models_limits_who_is_verified(server) -> None:
    before = len(server.requests)
    result = _engine(server.api_base, {"models": ["large"]}).run(HARD)
    assert not _verifications(result) and not _judge_requests(server, before)


def test_tool_call_answers_are_verified_with_their_arguments(server) -> None:
    before = len(server.requests)
    result = _engine(server.api_base, {}, small_logprobs=True).run(EASY, tools=TOOLS)
    assert result.model == "small" and result.answer.tool_calls
    (verification,) = _verifications(result)
    assert verification.verifies == "small"
    (request,) = _judge_requests(server, before)
    prompt = request["messages"][0]["content"]
    assert '"name": "weather"' in prompt and '"arguments": {"city": "Paris"}' in prompt
    assert "- weather: Current weather of a city." in prompt
    assert result.trace.runs[0].quality_basis == "verifier P(yes)"


def test_a_failing_verifier_loses_no_request_and_leaks_no_key(server, monkeypatch) -> None:
    monkeypatch.setenv("CASCADE_JUDGE_KEY", LEAKED)
    config = _config(server.api_base, {})
    config["verifier"]["model"]["api_key_env"] = "CASCADE_JUDGE_KEY"
    engine = CascadeEngine(**config)
    messages = [{"role": "user", "content": "please fail: the capital of France?"}]
    result = engine.run(messages)
    assert result.content in (SMALL_RIGHT, LARGE)
    (verification,) = _verifications(result)
    assert verification.status == "failed" and verification.cost_usd == 0
    assert "verifier down" in (verification.error or "")
    assert "small's own judgement stays" in verification.reason
    small = result.trace.runs[0]
    assert small.quality_basis == "no logprobs: ex-ante estimate kept"
    streamed = list(engine.stream(messages))
    for text in (json.dumps(result.trace.as_dict()), repr(result), str(streamed)):
        assert LEAKED not in text


# -- streams -------------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["stream", "astream"])
def test_streams_never_show_a_draft_the_verifier_rejected(server, driver: str) -> None:
    engine = _engine(server.api_base, {})
    before = len(server.requests)
    if driver == "stream":
        text, result = drain(engine.stream(HARD))
    else:
        text, result = asyncio.run(adrain(engine.astream(HARD)))
    assert text == LARGE == result.content and SMALL_WRONG not in text
    assert [run.verifies for run in _verifications(result)] == ["small"]
    (request,) = _judge_requests(server, before)
    assert not request.get("stream")
    assert drain(engine.stream(EASY))[0] == SMALL_RIGHT  # a verified draft is sent once accepted


# -- the cost cap, with verification --------------------------------------------------


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    cap=st.floats(min_value=-6.0, max_value=-2.0).map(lambda e: 10.0**e),
    words=st.integers(min_value=1, max_value=100),
    hard=st.booleans(),
    max_tokens=st.one_of(st.none(), st.integers(min_value=1, max_value=300)),
)
def test_the_cost_cap_holds_with_verification(server, cap, words, hard, max_tokens) -> None:
    engine = _engine(server.api_base, {}, budget={"lambda": 100.0, "max_cost_usd": cap})
    question = ("hard: " if hard else "") + "capital of France? " * words
    params = {} if max_tokens is None else {"max_tokens": max_tokens}
    try:
        result = engine.run([{"role": "user", "content": question}], **params)
    except Exception as error:  # nothing affordable: every model skipped by the cap
        assert "cost cap" in str(error)
        return
    runs = [r for r in result.trace.runs if r.status != "skipped"]
    flagged = [i for i, r in enumerate(runs) if r.cap_overrun]
    if result.cost_usd > cap * (1 + 1e-9):
        assert flagged and flagged[0] == len(runs) - 1  # flagged, and nothing ran after it
    verified = _verifications(result)
    event(f"verified: {bool(verified)}, escalated: {len(result.trace.models_run) > 1}")
    for run in verified:
        assert run.completion_tokens <= VERDICT_TOKENS


def test_an_unaffordable_verification_is_skipped_with_a_note(server) -> None:
    """The cap affords the small model, not its verification (a dearer verifier here)."""
    config = _config(server.api_base, {}, budget={"lambda": 100.0, "max_cost_usd": 1e-5})
    config["verifier"]["model"].update(input_cost_per_token=1e-6, output_cost_per_token=1e-6)
    before = len(server.requests)
    result = CascadeEngine(**config).run(EASY, max_tokens=5)
    assert result.model == "small" and not _verifications(result)
    assert not _judge_requests(server, before)
    note = "verification of small skipped: cost cap: 1e-05 USD per request leaves no room"
    assert any(d.startswith(note) for d in result.trace.decisions)
    assert result.cost_usd <= 1e-5


# -- P(yes) --------------------------------------------------------------------------


def _answer(first: list[tuple[str, float]], lead: list[str] = ()) -> ModelAnswer:
    """An answer whose first non-blank token has the top alternatives ``first`` (the first
    of them is the token), after blank tokens ``lead``."""
    entries = [{"token": t, "logprob": -0.1, "top_logprobs": []} for t in lead]
    token, logprob = first[0]
    tops = [{"token": t, "logprob": lp} for t, lp in first]
    entries.append({"token": token, "logprob": logprob, "top_logprobs": tops})
    return ModelAnswer(content="".join(lead) + token, logprobs=entries)


def test_p_yes_reads_the_first_non_blank_token() -> None:
    yes = _answer([(" Yes", math.log(0.6)), ("No", math.log(0.3))], lead=[" ", "\n"])
    assert p_yes(yes) == pytest.approx(0.6 / 0.9)
    spelled = _answer([("**Correct", math.log(0.5)), ("incorrect.", math.log(0.5))])
    assert p_yes(spelled) == pytest.approx(0.5)
    lone_yes = _answer([("yes", math.log(0.9)), ("maybe", math.log(0.04))])
    assert p_yes(lone_yes) == pytest.approx(0.9 / (0.9 + 0.04))  # "no" bounded by "maybe"
    assert p_yes(_answer([("Maybe", -0.1), ("Perhaps", -2.0)])) is None
    assert p_yes(ModelAnswer(content="Yes")) is None  # no logprobs


_TOKENS = st.sampled_from(["Yes", " yes", "No", " NO", "True", "false", "maybe", "Paris", "I"])


@st.composite
def _tops(draw) -> list[tuple[str, float]]:
    tokens = draw(st.lists(_TOKENS, min_size=1, max_size=6, unique=True))
    weights = draw(st.lists(st.floats(1e-6, 1.0), min_size=len(tokens), max_size=len(tokens)))
    mass = draw(st.floats(1e-3, 1.0))
    total = sum(weights)
    return [(t, math.log(mass * w / total)) for t, w in zip(tokens, weights, strict=True)]


def _is_yes_or_no(token: str) -> bool:
    return token.strip().lower() in {"yes", "no", "true", "false"}


@given(_tops())
def test_p_yes_is_a_probability_or_none_without_a_verdict_word(tops) -> None:
    value = p_yes(_answer(tops))
    if any(_is_yes_or_no(t) for t, _ in tops):
        assert value is not None and 0.0 <= value <= 1.0
    else:
        assert value is None


@given(_tops(), st.floats(-8.0, 0.0), st.floats(0.0, 3.0))
def test_p_yes_grows_with_the_yes_logprob(tops, base, step) -> None:
    others = [(t, lp) for t, lp in tops if t.strip().lower() not in {"yes", "true"}]
    scale = 0.5 / max(1e-12, sum(math.exp(lp) for _, lp in others) or 1.0)
    others = [(t, lp + math.log(min(1.0, scale))) for t, lp in others]  # room for "yes"
    low = min(base, math.log(0.5))
    high = min(low + step, math.log(0.5))
    p_low = p_yes(_answer([("Yes", low), *others]))
    p_high = p_yes(_answer([("Yes", high), *others]))
    assert p_low is not None and p_high is not None
    assert p_high >= p_low - 1e-12


def test_answer_and_question_text() -> None:
    call = {"function": {"name": "f", "arguments": "{not json"}}
    assert answer_text(ModelAnswer(content="ok", tool_calls=[call])) == (
        'ok\nTool calls: [{"name": "f", "arguments": "{not json"}]'
    )
    conversation = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url"}]},
        ]
    }
    assert question_text(conversation) == "system: Be brief.\n\nuser: Hi"
    assert question_text({"messages": EASY}) == EASY[0]["content"]


# -- configuration -------------------------------------------------------------------


def _config_error(verifier: Any, **model: Any) -> str:
    document = _config("http://127.0.0.1:9/v1")
    document["verifier"] = verifier
    if model:
        document["models"][0].update(model)
    with pytest.raises(InvalidInputError) as caught:
        CascadeEngine(**document)
    message = str(caught.value)
    assert "\n" not in message
    return message


JUDGE = _rung("http://127.0.0.1:9/v1", "judge", 1e-7, True)


@pytest.mark.parametrize(
    ("verifier", "expected"),
    [
        ({"model": JUDGE, "prompt": "Is {answer} right?"}, "verifier.prompt: must contain"),
        ({"model": JUDGE, "prompt": "{question} {answer} {x}"}, "verifier.prompt: unknown"),
        ({"model": JUDGE, "prompt": "{question} {answer"}, "verifier.prompt: unbalanced"),
        ({"model": JUDGE, "prompt": "{question!r} {answer}"}, "verifier.prompt: write the"),
        ({"model": JUDGE, "verify": "sometimes"}, "verifier.verify"),
        ({"model": JUDGE, "models": ["medium"]}, "verifier.models: ['medium'] not in"),
        ({"model": JUDGE, "models": ["small", "small"]}, "verifier.models: repeated"),
        ({"model": JUDGE, "max_answer_chars": 0}, "verifier.max_answer_chars"),
        ({"model": JUDGE, "cost": 1}, "verifier.cost: unknown key"),
        ({"model": {**JUDGE, "supports_logprobs": False}}, "verifier.model (judge): 'openai"),
        ({"model": {"model": "openai/unpriced-judge"}}, "verifier.model (openai/unpriced"),
        ({}, "verifier.model: required"),
        ({"model": {**JUDGE, "name": "large"}}, "verifier.model: 'large' is also a ladder"),
    ],
)
def test_bad_verifier_configs_are_one_line_naming_the_field(verifier, expected) -> None:
    assert expected in _config_error(verifier)


def test_a_key_pasted_into_the_verifier_is_not_echoed() -> None:
    message = _config_error({"model": {**JUDGE, "api_key_env": LEAKED}})
    assert "verifier.model.api_key_env" in message and LEAKED not in message
    message = _config_error({"model": JUDGE, "prompt": "{question} {answer} {" + LEAKED + "}"})
    assert "verifier.prompt" in message and LEAKED not in message
    message = _config_error({"model": JUDGE, "models": [LEAKED]})
    assert "verifier.models" in message and LEAKED not in message


def test_the_default_verifier_config_round_trips() -> None:
    config = RouterConfig.from_dict(_config("http://127.0.0.1:9/v1", {}))
    assert config.verifier is not None and config.verifier.verify == "no_logprobs"
    assert RouterConfig.from_dict(config.model_dump(by_alias=True)) == config


# -- calibrate fits the verifier's signal, the live profile reads it ---------------------


def _dev_grader(answer: str, reference: object, row: dict) -> bool:
    """The small model is wrong on UNSURE prompts; the large one is always right."""
    return not (answer.startswith("small:") and "UNSURE" in answer)


def _calibration_script(model: str, body: dict[str, Any]) -> Reply:
    prompt = str(body["messages"][-1]["content"])
    if model == "judge":  # right most of the time: it doubts the small model's UNSURE answers
        return _verdict("small: " not in prompt or "UNSURE" not in prompt)
    if model == "small":
        return Reply(f"small: {prompt}")
    return Reply(f"large: {prompt}", logprob=-0.05)


def _write_dev_set(path, n: int) -> None:
    with path.open("w") as handle:
        for i in range(n):
            prompt = f"task {i:02d}" + (" UNSURE" if i % 4 == 0 else " SUREOK")
            row = {"id": f"d{i}", "prompt": prompt, "params": {"max_tokens": 16}}
            row |= {"reference": "-", "grader": "tests.test_verifier:_dev_grader"}
            handle.write(json.dumps(row) + "\n")


def test_calibrate_fits_the_verdict_and_the_live_profile_uses_it(tmp_path) -> None:
    from cascade_core.calibrate import run_calibration
    from cascade_core.estimators import load_profile
    from cascade_core.fitting import staged_estimates
    from cascade_core.fitting.features import spec_for_dataset
    from cascade_core.replay import load_replay

    dev, profile, saved = tmp_path / "dev.jsonl", tmp_path / "p.json", tmp_path / "saved.jsonl"
    _write_dev_set(dev, 40)
    with ScriptedServer(_calibration_script) as scripted:
        config = RouterConfig.from_dict(_config(scripted.api_base, {}))
        report = run_calibration(config, profile, data=dev, save_replay=saved, progress=False)
        judged = _judge_requests(scripted, 0)
        # every small answer (no logprobs) was verified, no large one (it has logprobs)
        assert len(judged) == 40 and report.new_calls == 120
        fitted = json.loads(profile.read_text())
        assert fitted["features"]["posthoc_source"] == "logprobs+confidence"
        small_cost = fitted["calibration"]["model_cost_usd"]["small"]
        assert report.new_cost_usd > 0 and small_cost > 1e-7 * 20  # the verdict is in it

        # the saved replay holds the verdicts and refits the same profile without a call
        replay = load_replay(saved)
        conf = replay.signals["confidence_logprob"]
        small = replay.model_names.index("small")
        unsure = np.array(["UNSURE" in p for p in replay.prompts])
        np.testing.assert_allclose(conf[unsure, small], math.log(0.05 / 0.95))
        np.testing.assert_allclose(conf[~unsure, small], math.log(0.95 / 0.98))
        assert spec_for_dataset(replay).posthoc_source == "logprobs+confidence"
        calls = len(scripted.requests)
        run_calibration(config, tmp_path / "again.json", replay=saved, progress=False)
        assert len(scripted.requests) == calls
        again = json.loads((tmp_path / "again.json").read_text())
        assert again["states"] == fitted["states"]

        # live: the profile reads the verdict, and escalates exactly where the judge doubts
        live = {**_config(scripted.api_base, {}), "profile": str(profile)}
        live["budget"] = {"lambda": 2000.0}  # the large model is worth its price when needed
        engine = CascadeEngine(RouterConfig.from_dict(live))
        sure = engine.run([{"role": "user", "content": "task 61 SUREOK"}], max_tokens=16)
        doubt = engine.run([{"role": "user", "content": "task 60 UNSURE"}], max_tokens=16)
        # training equals serving: on the dev prompts, the live estimate of the verified
        # small answer is the replay's estimate in the state where only small ran
        replayed = staged_estimates(load_profile(profile), replay)
        expected, _ = replayed.state(frozenset({small}))
        for row in range(8):
            result = engine.run([{"role": "user", "content": replay.prompts[row]}], max_tokens=16)
            live_quality = result.trace.runs[0].post_hoc_quality
            assert live_quality == pytest.approx(expected[row, small], abs=1e-9)
    assert sure.model == "small" and doubt.model == "large"
    for result in (sure, doubt):
        run = result.trace.runs[0]
        assert run.quality_basis == "fitted profile, verifier P(yes)"
    assert sure.trace.runs[0].post_hoc_quality > doubt.trace.runs[0].post_hoc_quality + 0.5

    # bench evaluates the saved answers with the verdict as a signal like any other
    from typer.testing import CliRunner

    from cascade_core.cli.app import app

    ran = CliRunner().invoke(app, ["bench", str(saved), "--json", "--bootstrap", "50"])
    assert ran.exit_code == 0, ran.output
    (dataset,) = json.loads(ran.stdout)["datasets"]
    assert dataset["estimator"].startswith("logistic on logprobs+confidence signals")
    metrics = dataset["strategies"]
    # only the post-hoc strategies read the verdict, and it tells when small fails
    assert metrics["cascade_routing"]["auc"] > metrics["routing"]["auc"] + 5


def _logprob_profile(names: list[str]) -> dict[str, Any]:
    """A profile fitted on token logprobs only (no confidence of its own)."""
    from cascade_core.estimators import profile_to_dict
    from cascade_core.fitting import fit_quality_estimator
    from cascade_core.replay import ReplayDataset

    rng = np.random.default_rng(0)
    n, k = 40, len(names)
    sure = rng.random((n, k)) < 0.7
    logprobs = np.empty((n, k), dtype=object)
    for i, j in np.ndindex(n, k):
        logprobs[i, j] = np.full(4, -0.02 if sure[i, j] else -2.0)
    data = ReplayDataset(
        name="lp",
        model_names=names,
        query_ids=[str(i) for i in range(n)],
        prompts=["q"] * n,
        tasks=[""] * n,
        quality=sure.astype(float),
        cost=np.tile([1e-6, 1e-5], (n, 1)),
        logprobs=logprobs,
    )
    return profile_to_dict(fit_quality_estimator(data))


def test_profiles_and_verifiers_must_agree(tmp_path) -> None:
    """A profile without the verdict, with a verifier (its cost would buy nothing), and a
    profile of the verdict without a verifier are refused in one line; a profile of the
    verdict with a verifier is served."""
    from fitted_profile import fitted_profile

    api_base = "http://127.0.0.1:9/v1"
    confidence, logprobs = tmp_path / "confidence.json", tmp_path / "logprobs.json"
    confidence.write_text(json.dumps(fitted_profile(2)))
    logprobs.write_text(json.dumps(_logprob_profile(["small", "large"])))

    def build(profile, verifier, names=("small", "large")) -> CascadeEngine:
        config = _config(api_base, verifier, profile=str(profile))
        for rung, name in zip(config["models"], names, strict=True):
            rung["name"] = name
        return CascadeEngine(**config)

    with pytest.raises(InvalidInputError) as caught:
        build(logprobs, {})
    assert "without the verifier's P(yes)" in str(caught.value)
    with pytest.raises(InvalidInputError) as caught:
        build(confidence, None, names=("m0", "m1"))
    assert "configure the verifier it was calibrated with" in str(caught.value)
    for error in (caught,):
        assert "\n" not in str(error.value)
    assert build(confidence, {}, names=("m0", "m1")).parts.verifier is not None
    assert build(logprobs, None).parts.verifier is None


# -- hedged async streams: the hedge keeps streaming while the draft is verified ---------


def _arithmetic_judge(model: str, body: dict[str, Any]) -> Reply:
    """Says yes exactly when the proposed answer starts with the sum asked for."""
    import re

    prompt = body["messages"][0]["content"]
    a, b = (int(x) for x in re.search(r"What is (\d+) \+ (\d+)\?", prompt).groups())
    proposed = prompt.split("Proposed answer:\n", 1)[1].strip()
    return _verdict(proposed.startswith(str(a + b)))


@pytest.mark.parametrize("small_right", [True, False])
def test_a_hedge_streams_on_while_the_draft_is_verified(small_right: bool) -> None:
    from fake_latency_provider import FakeLatencyProvider, LatencyProfile, ladder_models, question

    fast = LatencyProfile(ttft_s=0.02, tokens_per_s=400.0, accuracy=1.0 if small_right else 0.0)
    slow = LatencyProfile(ttft_s=0.02, tokens_per_s=20.0, accuracy=1.0, repeat=3)
    weights = {"ttft_usd_per_s": 1e-3, "total_usd_per_s": 1e-3}

    async def astream(engine: CascadeEngine, prompt: str, **params: Any):
        return await adrain(
            engine.astream([{"role": "user", "content": prompt}], max_tokens=60, **params)
        )

    with (
        FakeLatencyProvider({"small": fast, "big": slow}) as provider,
        ScriptedServer(_arithmetic_judge) as judge,
    ):
        engine = CascadeEngine(
            models=ladder_models(provider, {"small": (1e-7, 1e-7), "big": (1e-6, 1e-4)}),
            strategy={"name": "threshold_cascade", "threshold": 0.7},
            verifier={"model": _rung(judge.api_base, "judge", 1e-7, True), "verify": "always"},
            latency_weights=weights,
            num_retries=0,
        )
        # both models observed once (zero weights: no hedge), so latency is expected next
        provider.profiles["small"] = LatencyProfile(ttft_s=0.02, tokens_per_s=400.0, accuracy=0)
        asyncio.run(astream(engine, question(90)[0], latency_weights={}))
        provider.profiles["small"] = fast
        prompt, answer = question(5)
        text, result = asyncio.run(astream(engine, prompt))
    assert any(d.startswith("hedge: start big alongside small") for d in result.trace.decisions)
    (verification,) = _verifications(result)
    assert verification.verifies == "small" and not verification.streamed
    hedged = [(r.model, r.status) for r in result.trace.runs if r.hedged]
    if small_right:
        assert result.model == "small" and hedged == [("big", "cancelled")]
    else:  # the hedge was not cancelled by the verification: it became the answer
        assert result.model == "big" and hedged == [("big", "ok")]
    assert text == result.content and text.split(".")[0].strip() == str(answer)


def test_a_yes_to_a_tool_call_that_would_not_execute_still_escalates() -> None:
    """The verdict is weighed by the answer's evidence: broken arguments score 0."""

    def script(model: str, body: dict[str, Any]) -> Reply:
        if model == "judge":
            return _verdict(True)  # a verifier fooled by the call
        if model == "small":
            return Reply(tool_calls=[{"name": "weather", "arguments": '{"city": '}])
        return Reply(tool_calls=[{"name": "weather", "arguments": '{"city": "Paris"}'}])

    with ScriptedServer(script) as scripted:
        result = _engine(scripted.api_base, {}, small_logprobs=True).run(EASY, tools=TOOLS)
    small = result.trace.runs[0]
    assert small.quality_basis == "verifier P(yes)" and small.post_hoc_quality == 0.0
    assert [r.verifies for r in _verifications(result)] == ["small"]
    assert result.model == "large"


def test_a_session_budget_holds_and_settles_the_verification(server) -> None:
    engine = _engine(server.api_base, {}, budget={"lambda": 100.0, "max_cost_usd_per_session": 1.0})
    results = [engine.run(messages, session_id="verified-run") for messages in (EASY, HARD)]
    assert all(_verifications(r) for r in results)
    session = results[-1].trace.session
    assert session is not None
    assert session.spend_after_usd == pytest.approx(sum(r.cost_usd for r in results))
