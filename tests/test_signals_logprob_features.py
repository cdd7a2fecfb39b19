"""Tests for cascade_core.signals.logprob_features."""

from __future__ import annotations

import itertools
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core.signals import (
    FEATURE_NAMES,
    LOGPROB_FLOOR,
    LogprobAccumulator,
    LogprobFeatures,
    features_from_logprobs,
    features_from_response,
    token_logprobs_from_response,
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


def test_top_logprob_layouts_agree():
    floats = features_from_logprobs(LPS, TOPS, answer_parsed=True)
    as_items = [[{"token": str(j), "logprob": t} for j, t in enumerate(top)] for top in TOPS]
    as_maps = [{str(j): t for j, t in enumerate(top)} for top in TOPS]
    as_np = [np.array(top, dtype=np.float64) for top in TOPS]
    for layout in (as_items, as_maps, as_np):
        assert same(features_from_logprobs(LPS, layout, answer_parsed=True), floats)
    assert same(features_from_logprobs(np.array(LPS), TOPS, answer_parsed=True), floats)


# ---------------------------------------------------------------- response paths


def test_dict_object_and_stored_paths_agree():
    resp = openai_response_dict(LPS, TOPS, TOKENS)
    stored = features_from_logprobs(LPS, TOPS, answer_parsed=True)
    from_dict = features_from_response(resp, answer_parsed=True)
    from_obj = features_from_response(to_namespace(resp), answer_parsed=True)
    assert same(from_dict, stored) and same(from_obj, stored)
    tl = token_logprobs_from_response(resp)
    assert tl is not None and list(tl.logprobs) == LPS
    assert [list(t) for t in tl.top_logprobs] == [list(t) for t in TOPS]


def test_none_logprobs_give_none():
    resp = openai_response_dict(LPS, TOPS)
    resp["choices"][0]["logprobs"] = None
    assert features_from_response(resp, answer_parsed=True) is None
    assert features_from_response(to_namespace(resp), answer_parsed=True) is None
    del resp["choices"][0]["logprobs"]
    assert features_from_response(resp, answer_parsed=True) is None
    resp["choices"][0]["logprobs"] = {"content": None}  # e.g. a tool-call-only answer
    assert features_from_response(resp, answer_parsed=True) is None
    assert features_from_response({"choices": []}, answer_parsed=True) is None
    assert features_from_response(resp, answer_parsed=True, choice=3) is None


def test_empty_content_with_logprobs_is_not_none():
    resp = openai_response_dict([], [], content="")
    f = features_from_response(resp, answer_parsed=False)
    assert f is not None and f.n_tokens == 0


def test_real_litellm_model_response():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = pytest.importorskip("litellm")
    resp = litellm.ModelResponse(**openai_response_dict(LPS, TOPS, TOKENS))
    assert type(resp).__name__ == "ModelResponse"
    assert resp.choices[0].logprobs is not None  # litellm kept the logprobs
    f = features_from_response(resp, answer_parsed=True)
    assert same(f, features_from_logprobs(LPS, TOPS, answer_parsed=True))

    no_lp = openai_response_dict(LPS, TOPS)
    del no_lp["choices"][0]["logprobs"]
    assert features_from_response(litellm.ModelResponse(**no_lp), answer_parsed=True) is None


def test_real_litellm_stream_chunks():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = pytest.importorskip("litellm")
    items = openai_response_dict(LPS, TOPS, TOKENS)["choices"][0]["logprobs"]["content"]
    acc = LogprobAccumulator()
    role_chunk = litellm.ModelResponseStream(
        id="c", created=1, model="m", choices=[{"index": 0, "delta": {"role": "assistant"}}]
    )
    assert acc.add_chunk(role_chunk) == 0
    for item in items:
        chunk = litellm.ModelResponseStream(
            id="c",
            created=1,
            model="m",
            choices=[
                {
                    "index": 0,
                    "delta": {"content": item["token"]},
                    "logprobs": {"content": [item]},
                }
            ],
        )
        assert acc.add_chunk(chunk) == 1
    assert same(
        acc.features(answer_parsed=True), features_from_logprobs(LPS, TOPS, answer_parsed=True)
    )


# ---------------------------------------------------------------- streaming


def test_accumulator_without_logprobs_is_none():
    acc = LogprobAccumulator()
    assert acc.features(answer_parsed=True) is None
    acc.add_chunk({"choices": [{"index": 0, "delta": {"content": "hi"}}]})
    acc.add_chunk({"choices": [], "usage": {"total_tokens": 3}})
    assert acc.features(answer_parsed=True) is None
    assert not acc.has_logprobs


def test_accumulator_empty_logprob_chunk_matches_empty_batch():
    acc = LogprobAccumulator()
    acc.add_chunk({"choices": [{"index": 0, "logprobs": {"content": []}}]})
    assert same(acc.features(answer_parsed=True), features_from_logprobs([], answer_parsed=True))


logprob_values = st.one_of(
    st.floats(min_value=-40.0, max_value=0.0, allow_nan=False),
    st.sampled_from([0.0, -1e-300, -0.1, -0.1, -math.inf, -12345.0]),
)
token_lists = st.lists(st.tuples(logprob_values, st.lists(logprob_values, max_size=5)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(tokens=token_lists, cuts=st.lists(st.integers(0, 60), max_size=8), parsed=st.booleans())
def test_streaming_equals_batch(tokens, cuts, parsed):
    lps = [lp for lp, _ in tokens]
    tops = [top for _, top in tokens]
    batch = features_from_logprobs(lps, tops, answer_parsed=parsed)

    # Feed the same tokens as dict chunks split at random points, reading features midway.
    bounds = sorted({0, len(tokens), *(c for c in cuts if c <= len(tokens))})
    acc = LogprobAccumulator()
    for lo, hi in itertools.pairwise(bounds):
        items = [
            {"logprob": lp, "top_logprobs": [{"token": "x", "logprob": t} for t in top]}
            for lp, top in tokens[lo:hi]
        ]
        assert acc.add_chunk({"choices": [{"index": 0, "logprobs": {"content": items}}]}) == len(
            items
        )
        midway = acc.features(answer_parsed=parsed)
        assert same(midway, features_from_logprobs(lps[:hi], tops[:hi], answer_parsed=parsed))
    if len(bounds) == 1:  # no tokens at all: feed one empty chunk
        acc.add_chunk({"choices": [{"index": 0, "logprobs": {"content": []}}]})
    assert same(acc.features(answer_parsed=parsed), batch)

    # Token by token through add(), and all at once through extend().
    one = LogprobAccumulator()
    for lp, top in tokens:
        one.add(lp, top)
    if not tokens:
        one.extend([])
    assert same(one.features(answer_parsed=parsed), batch)
    many = LogprobAccumulator()
    many.extend(lps, tops)
    assert same(many.features(answer_parsed=parsed), batch)
