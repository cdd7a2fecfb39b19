"""The live demo: short questions with known answers through the cascade, against always
asking the biggest model. Runs on the local ladder by default (``cascade-router local start``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_core.engine import CascadeEngine, RouterConfig

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
    biggest = max(
        engine.parts.ladder, key=lambda m: m.input_cost_per_token + m.output_cost_per_token
    )
    alone = CascadeEngine(config.model_copy(update={"models": [biggest.spec]}))
    rows = []
    for question in QUESTIONS:
        result = engine.run(
            messages_for(question), max_tokens=MAX_TOKENS, temperature=0.0, stop=STOP
        )
        baseline = alone.run(
            messages_for(question), max_tokens=MAX_TOKENS, temperature=0.0, stop=STOP
        )
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
    return {
        "rows": rows,
        "accuracy": sum(r["correct"] for r in rows) / len(rows),
        "biggest_accuracy": sum(r["biggest_correct"] for r in rows) / len(rows),
        "total_cost": sum(r["cost_usd"] for r in rows),
        "always_biggest_cost": sum(r["biggest_cost_usd"] for r in rows),
        "escalations": sum(len(r["models_run"]) > 1 for r in rows),
        "biggest_model": biggest.label,
    }


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
        f"{report['escalations']} escalation(s)"
    )
    lines.append(
        f"always {report['biggest_model']}: accuracy {report['biggest_accuracy']:.0%}, "
        f"cost {report['always_biggest_cost']:.3g} USD"
    )
    return "\n".join(lines)
