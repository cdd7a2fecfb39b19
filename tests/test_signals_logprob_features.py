"""Tests for cascade_core.signals.logprob_features: the one feature builder, checked against
hand-computed values and an independent numpy/scipy reference, and the one response parser
(`ModelAnswer`, whole and streamed) feeding it exactly what a replay stores."""

from __future__ import annotations

import itertools
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax
from scipy.stats import entropy

from cascade_core.engine.answers import DraftAssembler, ModelAnswer
from cascade_core.signals import (
    FEATURE_NAMES,
    LOGPROB_FLOOR,
    LogprobAccumulator,
    LogprobFeatures,
    TokenLogprobs,
    answer_features,
    answer_parsed,
    features_from_logprobs,
)

# A small hand-checked example: 4 tokens, varied top-k alternatives.
LPS = [-1.0, -0.5, -3.0, 0.0]
TOPS = [
    [math.log(0.5), math.log(0.25)],  # renormalized (2/3, 1/3)
    [math.log(0.2)] * 4,  # uniform over 4
    [-3.0],  # a single alternative: entropy 0, no margin
    [],  # no alternatives
]
TOKENS = ["Par", "is", " is", "."]


def same(a: LogprobFeatures | None, b: LogprobFeatures | None) -> bool:
    """Bit-identical feature vectors (NaN equal to NaN)."""
    assert a is not None and b is not None
    return (
        np.array_equal(a.as_array(), b.as_array(), equal_nan=True)
        and a.n_tokens == b.n_tokens
        and a.n_with_top == b.n_with_top
    )


def openai_response_dict(lps, tops, tokens=None, content="Paris is."):
    tokens = tokens or [f"t{i}" for i in range(len(lps))]
    items = [
        {
            "token": tok,
            "logprob": lp,
            "bytes": None,
            "top_logprobs": [
                {"token": f"{tok}_{j}", "logprob": t, "bytes": None} for j, t in enumerate(top)
            ],
        }
        for tok, lp, top in zip(tokens, lps, tops, strict=True)
    ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
                "logprobs": {"content": items},
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": len(lps), "total_tokens": 5 + len(lps)},
    }


def to_namespace(obj):
    """Deep-convert dicts to attribute objects (the SDK-object shape)."""
    if isinstance(obj, dict):
        return SimpleNamespace(**{k: to_namespace(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return [to_namespace(v) for v in obj]
    return obj


# ---------------------------------------------------------------- hand-computed values


def test_feature_names_order_and_fields():
    assert FEATURE_NAMES == (
        "lp_sum",
        "lp_mean",
        "lp_min",
        "lp_median",
        "lp_p10",
        "lp_p25",
        "log_n_tokens",
        "mean_entropy",
        "mean_margin",
        "answer_parsed",
    )
    f = features_from_logprobs(LPS, TOPS, answer_parsed=True)
    assert list(f.as_dict()) == list(FEATURE_NAMES)
    assert f.as_array().shape == (len(FEATURE_NAMES),)
    assert f.as_array().dtype == np.float64


def test_hand_computed_values():
    f = features_from_logprobs(LPS, TOPS, answer_parsed=True)
    # sorted: [-3, -1, -0.5, 0]
    assert f.lp_sum == pytest.approx(-4.5)
    assert f.lp_mean == pytest.approx(-1.125)
    assert f.lp_min == -3.0
    assert f.lp_median == pytest.approx(-0.75)  # pos 1.5 -> -1 + 0.5 * 0.5
    assert f.lp_p10 == pytest.approx(-2.4)  # pos 0.3 -> -3 + 0.3 * 2
    assert f.lp_p25 == pytest.approx(-1.5)  # pos 0.75 -> -3 + 0.75 * 2
    assert f.log_n_tokens == pytest.approx(math.log(4))
    h1 = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert f.mean_entropy == pytest.approx((h1 + math.log(4) + 0.0) / 3)
    assert f.mean_margin == pytest.approx((math.log(2) + 0.0) / 2)
    assert f.answer_parsed == 1.0
    assert (f.n_tokens, f.n_with_top) == (4, 3)
    assert features_from_logprobs(LPS, TOPS, answer_parsed=False).answer_parsed == 0.0


def test_quantiles_match_numpy_default():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 7, 50):
        lps = (-rng.exponential(1.0, size=n)).tolist()
        f = features_from_logprobs(lps, answer_parsed=True)
        for name, q in (("lp_median", 50), ("lp_p10", 10), ("lp_p25", 25)):
            assert getattr(f, name) == pytest.approx(np.percentile(lps, q), abs=1e-12)
        assert f.lp_sum == pytest.approx(np.sum(lps))


def test_single_token_and_no_top_logprobs():
    f = features_from_logprobs([-0.7], answer_parsed=True)
    assert f.lp_sum == f.lp_mean == f.lp_min == f.lp_median == f.lp_p10 == f.lp_p25 == -0.7
    assert f.log_n_tokens == 0.0
    # Undefined, not invented: no alternatives were given.
    assert math.isnan(f.mean_entropy) and math.isnan(f.mean_margin)


def test_empty_token_list_is_explicit():
    f = features_from_logprobs([], [], answer_parsed=False)
    assert f.lp_sum == 0.0
    assert f.n_tokens == 0
    for name in FEATURE_NAMES[1:9]:
        assert math.isnan(getattr(f, name)), name
    assert f.answer_parsed == 0.0


def test_entropy_is_a_lower_bound_of_true_entropy():
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = rng.dirichlet(np.full(20, 0.3))
        k = int(rng.integers(1, 6))
        top = np.sort(p)[::-1][:k]
        true_h = -np.sum(p[p > 0] * np.log(p[p > 0]))
        f = features_from_logprobs(
            [float(np.log(top[0]))], [np.log(top).tolist()], answer_parsed=True
        )
        assert f.mean_entropy <= true_h + 1e-9


def test_clamping_and_errors():
    f = features_from_logprobs([-math.inf, 1e-9], [[-math.inf, -0.1], []], answer_parsed=True)
    assert f.lp_min == LOGPROB_FLOOR
    assert f.lp_sum == LOGPROB_FLOOR  # tiny positive noise clamped to 0
    assert math.isfinite(f.mean_entropy) and math.isfinite(f.mean_margin)
    with pytest.raises(ValueError, match="NaN"):
        features_from_logprobs([-0.1, math.nan], answer_parsed=True)
    with pytest.raises(ValueError, match="> 0"):
        features_from_logprobs([0.5], answer_parsed=True)
    with pytest.raises(ValueError, match="one entry"):
        features_from_logprobs([-0.1, -0.2], [[-0.1]], answer_parsed=True)
    with pytest.raises(ValueError, match="token 1"):
        features_from_logprobs([-0.1, None], answer_parsed=True)


def test_numpy_arrays_are_accepted_and_mappings_are_not():
    floats = features_from_logprobs(LPS, TOPS, answer_parsed=True)
    as_np = [np.array(top, dtype=np.float64) for top in TOPS]
    assert same(features_from_logprobs(np.array(LPS), as_np, answer_parsed=True), floats)
    with pytest.raises(ValueError, match="top_logprobs of token 0"):
        features_from_logprobs([-0.1], [{"a": -0.1}], answer_parsed=True)


def test_answer_parsed_means_text_to_grade():
    assert answer_parsed("B") and answer_parsed(None)
    assert not answer_parsed("") and not answer_parsed(" \n\t")
    assert answer_features(None, "text") is None  # logprobs are never invented
    empty = answer_features(TokenLogprobs((), ()), "")
    assert empty is not None and empty.n_tokens == 0 and empty.answer_parsed == 0.0
    f = answer_features(TokenLogprobs(LPS, TOPS), "Paris is.")
    assert same(f, features_from_logprobs(LPS, TOPS, answer_parsed=True))
    no_tops = answer_features(TokenLogprobs(LPS, None), "Paris is.")
    assert no_tops is not None and math.isnan(no_tops.mean_entropy)


# ---------------------------------------------------------------- against a reference


def reference(lps, tops, parsed):
    """The features computed independently with numpy/scipy (no code of ours)."""
    x = np.clip(np.array(lps, dtype=float), LOGPROB_FLOOR, 0.0)
    alts = [np.clip(np.array(t, dtype=float), LOGPROB_FLOOR, 0.0) for t in tops]
    entropies = [entropy(softmax(a)) for a in alts if len(a) >= 1]
    margins = [np.diff(np.sort(a)[-2:])[0] for a in alts if len(a) >= 2]
    n = len(x)
    nan = math.nan
    return {
        "lp_sum": math.fsum(x.tolist()),
        "lp_mean": math.fsum(x.tolist()) / n if n else nan,
        "lp_min": x.min() if n else nan,
        "lp_median": np.percentile(x, 50) if n else nan,
        "lp_p10": np.percentile(x, 10) if n else nan,
        "lp_p25": np.percentile(x, 25) if n else nan,
        "log_n_tokens": math.log(n) if n else nan,
        "mean_entropy": float(np.mean(entropies)) if entropies and n else nan,
        "mean_margin": float(np.mean(margins)) if margins and n else nan,
        "answer_parsed": float(parsed),
    }


def assert_matches_reference(features, lps, tops, parsed):
    expected = reference(lps, tops, parsed)
    got = features.as_dict()
    assert got["lp_sum"] == expected["lp_sum"]  # exactly rounded, like math.fsum
    for name in FEATURE_NAMES[1:]:
        if math.isnan(expected[name]):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-9), name
    assert features.n_tokens == len(lps)
    assert features.n_with_top == sum(1 for t in tops if len(t) >= 1)


logprob_values = st.one_of(
    st.floats(min_value=-40.0, max_value=0.0, allow_nan=False),
    st.sampled_from([0.0, -1e-300, -0.1, -0.1, -math.inf, -12345.0]),
)
token_lists = st.lists(st.tuples(logprob_values, st.lists(logprob_values, max_size=5)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(tokens=token_lists, cuts=st.lists(st.integers(0, 60), max_size=8), parsed=st.booleans())
def test_features_match_an_independent_reference_at_every_prefix(tokens, cuts, parsed):
    """What a stream's draft reads midway (early abort) and what the answer gets at the end
    both equal the reference on the tokens so far."""
    lps = [lp for lp, _ in tokens]
    tops = [top for _, top in tokens]
    assert_matches_reference(
        features_from_logprobs(lps, tops, answer_parsed=parsed), lps, tops, parsed
    )
    accumulator = LogprobAccumulator()
    accumulator.extend([])
    for lo, hi in itertools.pairwise(
        sorted({0, len(tokens), *(c for c in cuts if c <= len(tokens))})
    ):
        for lp, top in tokens[lo:hi]:
            accumulator.add(lp, top)
        midway = accumulator.features(answer_parsed=parsed)
        assert_matches_reference(midway, lps[:hi], tops[:hi], parsed)


def test_accumulator_without_logprobs_is_none():
    accumulator = LogprobAccumulator()
    assert accumulator.features(answer_parsed=True) is None
    assert not accumulator.has_logprobs
    accumulator.extend([])
    assert accumulator.has_logprobs
    assert same(
        accumulator.features(answer_parsed=True), features_from_logprobs([], answer_parsed=True)
    )


# ---------------------------------------------------------------- the one parser


def test_whole_responses_give_the_features_a_replay_gets():
    """Dict, SDK-object and LiteLLM responses parse to the storage form a replay keeps, and
    their features are the builder's on that form."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = pytest.importorskip("litellm")
    resp = openai_response_dict(LPS, TOPS, TOKENS)
    replay = answer_features(TokenLogprobs(LPS, TOPS), "Paris is.")
    for shape in (resp, to_namespace(resp), litellm.ModelResponse(**resp)):
        answer = ModelAnswer.from_response(shape)
        assert answer.tokens is not None
        assert list(answer.tokens.logprobs) == LPS
        assert [list(t) for t in answer.tokens.top_logprobs] == [list(t) for t in TOPS]
        assert same(answer.features, replay)
        assert [e["token"] for e in answer.logprobs] == TOKENS  # kept for the caller


def test_missing_logprobs_give_no_features():
    resp = openai_response_dict(LPS, TOPS)
    resp["choices"][0]["logprobs"] = None
    assert ModelAnswer.from_response(resp).features is None
    assert ModelAnswer.from_response(to_namespace(resp)).tokens is None
    del resp["choices"][0]["logprobs"]
    assert ModelAnswer.from_response(resp).features is None
    resp["choices"][0]["logprobs"] = {"content": None}  # e.g. a tool-call-only answer
    assert ModelAnswer.from_response(resp).features is None


def test_empty_content_with_logprobs_has_empty_features():
    answer = ModelAnswer.from_response(openai_response_dict([], [], content=""))
    assert answer.features is not None and answer.features.n_tokens == 0
    assert answer.features.answer_parsed == 0.0


def test_a_malformed_logprob_fails_where_the_response_is_parsed():
    resp = openai_response_dict([-0.1, math.nan], [[], []])
    with pytest.raises(ValueError, match="token 1: logprob is NaN"):
        ModelAnswer.from_response(resp)
    resp = openai_response_dict([-0.1], [[0.5]])
    with pytest.raises(ValueError, match="top_logprobs of token 0"):
        ModelAnswer.from_response(resp)


def test_streamed_answers_give_the_features_of_the_whole_response():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = pytest.importorskip("litellm")
    items = openai_response_dict(LPS, TOPS, TOKENS)["choices"][0]["logprobs"]["content"]
    assembler = DraftAssembler()
    role = litellm.ModelResponseStream(
        id="c", created=1, model="m", choices=[{"index": 0, "delta": {"role": "assistant"}}]
    )
    assert assembler.add(role) == ("", [])
    for n, item in enumerate(items, start=1):
        chunk = litellm.ModelResponseStream(
            id="c",
            created=1,
            model="m",
            choices=[
                {"index": 0, "delta": {"content": item["token"]}, "logprobs": {"content": [item]}}
            ],
        )
        text, entries = assembler.add(chunk)
        assert text == item["token"] and len(entries) == 1
        midway = assembler.accumulator.features(answer_parsed=True)
        assert_matches_reference(midway, LPS[:n], TOPS[:n], True)
    streamed = assembler.answer()
    whole = ModelAnswer.from_response(
        openai_response_dict(LPS, TOPS, TOKENS, content="".join(TOKENS))
    )
    assert streamed.content == whole.content
    assert streamed.tokens == whole.tokens
    assert same(streamed.features, whole.features)


def test_a_stream_without_logprobs_has_no_features():
    assembler = DraftAssembler()
    assembler.add({"choices": [{"index": 0, "delta": {"content": "hi"}}]})
    assembler.add({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 1}})
    answer = assembler.answer()
    assert answer.content == "hi" and answer.features is None and answer.logprobs is None
    assert (answer.prompt_tokens, answer.completion_tokens) == (2, 1)
