"""Agreement between the answers of models already run.

Why: in a cascade, once two or more models have answered, whether they agree is one of the
strongest post-hoc signals of correctness (independent models rarely make the *same*
mistake), and it is free: the answers are already paid for. This works for every provider,
including those that return no logprobs.

Answers are compared after normalization, so "Paris." and " paris" agree, and a
multiple-choice answer written as "The answer is (B)" agrees with "B".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

__all__ = [
    "DEFAULT_LETTERS",
    "agreement_fractions",
    "answers_agree",
    "extract_choice_letter",
    "normalize_answer",
]

DEFAULT_LETTERS = "ABCDEFGHIJ"
"""Valid multiple-choice letters by default (MMLU uses A-D, MMLU-Pro up to J)."""

_STRIP_MARKUP = re.compile(r"[*_`]+")
# "The answer is (B)", "Answer: B", "the correct answer is: **b)**" (lowercase only in
# parentheses, so "The answer is a dog" is not read as "A").
_ANSWER_IS = re.compile(
    r"(?i:\b(?:answer|option|choice)\b(?:\s+(?:is|would\s+be|:))?)\s*[:\-]?\s*"
    r"(?:\((?P<paren>[A-Za-z])\)|(?P<bare>[A-Z])(?:\)|\.|:)?)(?![A-Za-z0-9])"
)
# The whole answer is a single letter: "B", "(b)", "B.", "b)".
_LONE = re.compile(r"^\W*(?P<letter>[A-Za-z])\W*$")
# A leading "(B) text" or "B) text": unmistakably a choice label.
_LEADING_PAREN = re.compile(r"^\s*(?:\((?P<a>[A-Za-z])\)|(?P<b>[A-Z])\))\s")
# Weaker, only with multiple_choice=True: "B. text" / "B: text".
_LEADING_DOT = re.compile(r"^\s*(?P<letter>[A-Z])[.:]\s")


def extract_choice_letter(
    text: str | None, *, letters: str = DEFAULT_LETTERS, multiple_choice: bool = False
) -> str | None:
    """The multiple-choice letter an answer states, uppercased, or None.

    Always recognized: "The answer is (B)" / "Answer: B" / "option C", a lone letter
    ("B", "(b)", "B."), and a leading "(B) ..." or "B) ...". With ``multiple_choice=True``
    (the task is known to be multiple choice) a leading "B. ..." also counts; without it
    that form is ambiguous ("A. Lincoln"). Letters outside ``letters`` are ignored.
    """
    if not text:
        return None
    valid = set(letters.upper())
    clean = _STRIP_MARKUP.sub("", text).strip()
    candidates: list[str | None] = []
    lone = _LONE.match(clean)
    if lone:
        candidates.append(lone.group("letter"))
    # The last "answer is X" wins: models often restate their final choice at the end.
    stated = [m.group("paren") or m.group("bare") for m in _ANSWER_IS.finditer(clean)]
    candidates.extend(reversed(stated))
    lead = _LEADING_PAREN.match(clean)
    if lead:
        candidates.append(lead.group("a") or lead.group("b"))
    if multiple_choice:
        dot = _LEADING_DOT.match(clean)
        if dot:
            candidates.append(dot.group("letter"))
    for letter in candidates:
        if letter and letter.upper() in valid:
            return letter.upper()
    return None


def _normalize_text(text: str) -> str:
    """Lowercase, drop punctuation/symbols, collapse whitespace (Unicode-aware).

    A decimal point between digits is kept ("3.5" must not equal "35"); thousands
    separators are dropped ("1,000" equals "1000").
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    out: list[str] = []
    for i, ch in enumerate(text):
        cat = unicodedata.category(ch)
        if cat[0] in "PS":
            between_digits = (
                0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
            )
            if between_digits and ch == ".":
                out.append(ch)
            elif between_digits and ch in ",'’":
                continue
            else:
                out.append(" ")
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def normalize_answer(
    answer: str | None, *, letters: str = DEFAULT_LETTERS, multiple_choice: bool = False
) -> str | None:
    """Canonical form of an answer for equality checks, or None if there is none.

    A stated multiple-choice letter (see :func:`extract_choice_letter`) becomes just that
    letter; otherwise the text is lowercased with punctuation and extra whitespace removed.
    None, empty and punctuation-only answers give None, which agrees with nothing.
    """
    if answer is None:
        return None
    letter = extract_choice_letter(answer, letters=letters, multiple_choice=multiple_choice)
    if letter is not None:
        return letter
    text = _normalize_text(answer)
    return text or None


def answers_agree(
    a: str | None,
    b: str | None,
    *,
    letters: str = DEFAULT_LETTERS,
    multiple_choice: bool = False,
) -> bool:
    """Whether two answers are equal after :func:`normalize_answer` (None never agrees)."""
    na = normalize_answer(a, letters=letters, multiple_choice=multiple_choice)
    nb = normalize_answer(b, letters=letters, multiple_choice=multiple_choice)
    return na is not None and na == nb


def agreement_fractions(
    answers: Mapping[str, str | None] | Sequence[str | None],
    *,
    letters: str = DEFAULT_LETTERS,
    multiple_choice: bool = False,
) -> dict[str, float] | list[float]:
    """Per model, the fraction of the *other* run models whose answer agrees with it.

    Args:
        answers: ``{model: answer}`` (or a list, one answer per model) of the models
            already run; None stands for a failed/empty answer, which agrees with nothing
            but still counts as one of the others.

    Returns:
        Same shape as the input (dict keyed by model, or list). With a single model there
        are no others and its fraction is NaN (undefined, not 0 or 1): agreement is only a
        feature for sets of two or more models run.
    """
    if isinstance(answers, Mapping):
        keys = list(answers)
        values = [answers[k] for k in keys]
    else:
        keys = None
        values = list(answers)
    norm = [normalize_answer(v, letters=letters, multiple_choice=multiple_choice) for v in values]
    n = len(norm)
    fractions: list[float] = []
    for i, ni in enumerate(norm):
        if n < 2:
            fractions.append(float("nan"))
            continue
        same = sum(1 for j, nj in enumerate(norm) if j != i and ni is not None and nj == ni)
        fractions.append(same / (n - 1))
    if keys is None:
        return fractions
    return dict(zip(keys, fractions, strict=True))
