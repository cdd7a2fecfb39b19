"""The live demo: short questions with known answers through the cascade, against always
asking the biggest model. Runs on the local ladder by default (``cascade-router local start``).

The summary must not flatter the cascade: it states both accuracies and both costs, says which
was cheaper, and says plainly when the cascade cost more. On the embedded ladder that is common:
its two models differ only about twofold in price, so every escalated question pays for both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_core.engine import CascadeEngine, RouterConfig
from cascade_core.errors import CascadeError

DEFAULT_CONFIG = Path("examples/local-ladder.yaml")
MAX_TOKENS = 24
# Gemma-3-270M is a base model answering in the alpaca format, often as "### Answer: Blue":
# without a stop it goes on to invent the next "### ..." block. The stop is that next block's
# line break, so the first block (its answer) is kept.
STOP = ["\n###"]


@dataclass(frozen=True)
class Question:
    text: str
    accepted: tuple[str, ...]  # any of these (as a whole word) makes the answer correct


QUESTIONS: tuple[Question, ...] = (
    Question("What is the capital of France?", ("paris",)),
    Question("What is 2 + 2?", ("4", "four")),
    Question("What color is the sky on a clear day?", ("blue",)),
    Question("How many days are in a week?", ("7", "seven")),
    Question("What is the opposite of hot?", ("cold",)),
    Question("What is frozen water called?", ("ice",)),
    Question("Which animal says 'woof'?", ("dog", "dogs", "puppy")),
    Question("What is the largest planet in our solar system?", ("jupiter",)),
    Question("How many legs does a spider have?", ("8", "eight")),
    Question("What gas do plants absorb from the air?", ("carbon dioxide", "co2")),
)


def is_correct(answer: str, question: Question) -> bool:
    text = answer.lower()
    return any(re.search(rf"\b{re.escape(word)}\b", text) for word in question.accepted)


def messages_for(question: Question) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{question.text} Answer in a few words."}]


def run_demo(config_path: Path) -> dict[str, Any]:
    """Every question through the cascade, then through the biggest model alone."""
    config = RouterConfig.from_file(config_path)
    engine = CascadeEngine(config)
    ladder = engine.ladder
    biggest = max(ladder, key=lambda m: m.input_cost_per_token + m.output_cost_per_token)
    cheapest = min(ladder, key=lambda m: m.input_cost_per_token + m.output_cost_per_token)
    alone = CascadeEngine(config.model_copy(update={"models": [biggest.spec]}))
    ask = {"max_tokens": MAX_TOKENS, "temperature": 0.0, "stop": STOP}
    rows = []
    for question in QUESTIONS:
        try:
            result = engine.run(messages_for(question), **ask)
            baseline = alone.run(messages_for(question), **ask)
        except CascadeError as error:
            raise CascadeError(
                f"demo: {error}. If {config_path} is the local ladder, start it first: "
                f"cascade-router local start --config {config_path}"
            ) from error
        runs = [r for r in result.trace.runs if r.status != "skipped"]
        rows.append(
            {
                "question": question.text,
                "models_run": [r.model for r in runs],
                "features": {
                    r.model: {
                        "lp_mean": r.features.get("lp_mean"),
                        "lp_min": r.features.get("lp_min"),
                        "post_hoc_quality": r.post_hoc_quality,
                    }
                    for r in runs
                },
                "decision": result.trace.stop_reason,
                "answered_by": result.model,
                "answer": result.content.strip(),
                "correct": is_correct(result.content, question),
                "cost_usd": result.cost_usd,
                "biggest_answer": baseline.content.strip(),
                "biggest_correct": is_correct(baseline.content, question),
                "biggest_cost_usd": baseline.cost_usd,
            }
        )
    big_price = biggest.input_cost_per_token + biggest.output_cost_per_token
    small_price = cheapest.input_cost_per_token + cheapest.output_cost_per_token
    price_ratio = big_price / small_price if small_price > 0 else math.inf
    return {"rows": rows, **summarize(rows, biggest.label, cheapest.label, price_ratio)}


def summarize(
    rows: Sequence[dict[str, Any]], biggest: str, cheapest: str, price_ratio: float
) -> dict[str, Any]:
    """Totals of the demo rows and which way the comparison went.

    `cheaper` is "cascade", "always_biggest" or "equal"; `escalations` counts questions that
    ran more than one model; `price_ratio` is the biggest model's per-token price over the
    cheapest's, which bounds what a cascade can save.
    """
    total = sum(r["cost_usd"] for r in rows)
    always = sum(r["biggest_cost_usd"] for r in rows)
    cheaper = "equal" if total == always else "cascade" if total < always else "always_biggest"
    return {
        "accuracy": sum(r["correct"] for r in rows) / len(rows),
        "biggest_accuracy": sum(r["biggest_correct"] for r in rows) / len(rows),
        "total_cost": total,
        "always_biggest_cost": always,
        "cheaper": cheaper,
        "escalations": sum(len(r["models_run"]) > 1 for r in rows),
        "questions": len(rows),
        "biggest_model": biggest,
        "cheapest_model": cheapest,
        "price_ratio": price_ratio,
    }


def verdict(report: dict[str, Any]) -> str:
    """One plain paragraph on cost and accuracy; a cascade that cost more says so first."""
    total, always, big = (
        report["total_cost"],
        report["always_biggest_cost"],
        report["biggest_model"],
    )
    escalated = f"{report['escalations']} of {report['questions']} questions escalated"
    if report["cheaper"] == "always_biggest":
        change = f" (+{total / always - 1:.0%})" if always > 0 else ""
        cost = f"The cascade cost MORE than always asking {big} alone{change}: {escalated}"
        if report["escalations"]:
            cost += (
                f" and paid for both models, and {big} costs only {report['price_ratio']:.1f}x "
                f"{report['cheapest_model']} per token, so the questions the cheaper model "
                "answered alone saved less than the escalations added."
            )
        else:
            cost += "."
    elif report["cheaper"] == "cascade":
        cost = (
            f"The cascade was cheaper than always asking {big} ({1 - total / always:.0%} less): "
            f"{escalated}."
        )
    else:
        cost = f"The cascade cost the same as always asking {big}: {escalated}."
    gap = round(100 * (report["accuracy"] - report["biggest_accuracy"]))
    if gap == 0:
        accuracy = f"Accuracy was the same ({report['accuracy']:.0%})."
    else:
        accuracy = (
            f"Its accuracy was {abs(gap)} points {'higher' if gap > 0 else 'lower'} "
            f"({report['accuracy']:.0%} against {report['biggest_accuracy']:.0%})."
        )
    return f"{cost} {accuracy}"


def format_table(report: dict[str, Any]) -> str:
    header = f"{'question':<46} {'models run':<28} {'lp_mean':>8} {'answer':<30} {'ok':<3}"
    lines = [f"{header} {'cost USD':>10}"]
    for row in report["rows"]:
        first = row["features"][row["models_run"][0]]["lp_mean"]
        lp = f"{first:.2f}" if first is not None else "n/a"
        answer = row["answer"].replace("\n", " ")[:30]
        lines.append(
            f"{row['question'][:46]:<46} {' > '.join(row['models_run'])[:28]:<28} {lp:>8} "
            f"{answer:<30} {'yes' if row['correct'] else 'no':<3} {row['cost_usd']:>10.3g}"
        )
    lines.append("")
    lines.append(
        f"cascade: accuracy {report['accuracy']:.0%}, cost {report['total_cost']:.3g} USD, "
        f"{report['escalations']} of {report['questions']} questions escalated"
    )
    lines.append(
        f"always {report['biggest_model']}: accuracy {report['biggest_accuracy']:.0%}, "
        f"cost {report['always_biggest_cost']:.3g} USD"
    )
    lines.append(verdict(report))
    return "\n".join(lines)
