"""The demo's summary tells the truth about cost: whatever the rows, the verdict names the
cheaper side, and a cascade that cost more than the biggest model alone says MORE."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cascade_core.cli.demo import format_table, summarize, verdict

COST = st.floats(min_value=0.0, max_value=1e-3, allow_nan=False)


@st.composite
def demo_rows(draw) -> list[dict]:
    rows = []
    for index in range(draw(st.integers(min_value=1, max_value=12))):
        runs = draw(st.sampled_from([["small"], ["big"], ["small", "big"]]))
        rows.append(
            {
                "question": f"question {index}?",
                "models_run": runs,
                "features": {m: {"lp_mean": draw(st.none() | st.floats(-9, 0))} for m in runs},
                "answer": draw(st.text(max_size=40)),
                "correct": draw(st.booleans()),
                "cost_usd": draw(COST),
                "biggest_correct": draw(st.booleans()),
                "biggest_cost_usd": draw(COST),
            }
        )
    return rows


@given(demo_rows(), st.floats(min_value=1.0, max_value=100.0))
def test_verdict_names_the_cheaper_side(rows: list[dict], ratio: float) -> None:
    report = {"rows": rows, **summarize(rows, "big", "small", ratio)}
    text = verdict(report)
    total, always = report["total_cost"], report["always_biggest_cost"]
    assert ("cost MORE than always asking big" in text) == (total > always)
    assert ("cheaper than always asking big" in text) == (total < always)
    escalations = sum(len(r["models_run"]) > 1 for r in rows)
    assert f"{escalations} of {len(rows)} questions escalated" in text
    table = format_table(report)
    assert table.endswith(text)
    assert f"{escalations} of {len(rows)} questions escalated" in table.splitlines()[-3]


def test_a_cascade_that_paid_for_both_models_says_so() -> None:
    rows = [
        {
            "question": "q?",
            "models_run": ["small", "big"],
            "features": {"small": {"lp_mean": -1}},
            "answer": "a",
            "correct": True,
            "cost_usd": 4e-6,
            "biggest_correct": True,
            "biggest_cost_usd": 2e-6,
        },
        {
            "question": "r?",
            "models_run": ["small"],
            "features": {"small": {"lp_mean": -0.1}},
            "answer": "b",
            "correct": False,
            "cost_usd": 1e-6,
            "biggest_correct": True,
            "biggest_cost_usd": 2e-6,
        },
    ]
    report = {"rows": rows, **summarize(rows, "gemma3-270m", "smollm2-135m", 2.0)}
    assert report["cheaper"] == "always_biggest"
    assert verdict(report) == (
        "The cascade cost MORE than always asking gemma3-270m alone (+25%): 1 of 2 questions "
        "escalated and paid for both models, and gemma3-270m costs only 2.0x smollm2-135m per "
        "token, so the questions the cheaper model answered alone saved less than the "
        "escalations added. Its accuracy was 50 points lower (50% against 100%)."
    )
