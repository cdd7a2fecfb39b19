"""Tests for cascade_core.signals.agreement."""

from __future__ import annotations

import math

import pytest

from cascade_core.signals import (
    agreement_fractions,
    answers_agree,
    extract_choice_letter,
    normalize_answer,
)


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("The answer is (B)", "B"),
        ("the answer is (b).", "B"),
        ("Answer: C", "C"),
        ("The correct answer is: **D**", "D"),
        ("I think it's A, but the answer is (C)", "C"),
        ("B", "B"),
        ("(b)", "B"),
        ("  D.  ", "D"),
        ("(A) Paris", "A"),
        ("B) Berlin", "B"),
        ("Option C", "C"),
        ("The answer is a dog", None),
        ("The answer is Berlin", None),
        ("A. Lincoln", None),  # ambiguous unless the task is known multiple choice
        ("Paris", None),
        ("", None),
        (None, None),
        ("The answer is (Z)", None),  # not a valid letter by default
    ],
)
def test_extract_choice_letter(text, letter):
    assert extract_choice_letter(text) == letter


def test_multiple_choice_mode_and_letters():
    assert extract_choice_letter("A. Lincoln", multiple_choice=True) == "A"
    assert extract_choice_letter("The answer is (E)", letters="ABCD") is None
    assert extract_choice_letter("The answer is (Z)", letters="XYZ") == "Z"


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("  Paris. ", "paris"),
        ("PARIS!!", "paris"),
        ("New   York\tCity", "new york city"),
        ("The answer is (B)", "B"),
        ("3.5", "3.5"),
        ("1,000", "1000"),
        ("rock-and-roll", "rock and roll"),
        ("Ünïcode — text", "ünïcode text"),
        ("...", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalize_answer(text, norm):
    assert normalize_answer(text) == norm


def test_answers_agree():
    assert answers_agree("The answer is (B)", "B")
    assert answers_agree("Paris.", " paris")
    assert not answers_agree("3.5", "35")
    assert not answers_agree("Paris", "London")
    assert not answers_agree(None, None)  # two missing answers are not agreement
    assert not answers_agree("", "")


def test_agreement_fractions_dict():
    got = agreement_fractions(
        {"small": "The answer is (B)", "medium": "b", "large": "C", "failed": None}
    )
    assert got == {"small": 1 / 3, "medium": 1 / 3, "large": 0.0, "failed": 0.0}
    assert list(got) == ["small", "medium", "large", "failed"]


def test_agreement_fractions_list_and_all_agree():
    assert agreement_fractions(["Paris", "paris.", "PARIS"]) == [1.0, 1.0, 1.0]
    assert agreement_fractions(["Paris", "Rome"]) == [0.0, 0.0]


def test_agreement_single_model_is_nan():
    (only,) = agreement_fractions({"m": "B"}).values()
    assert math.isnan(only)
    assert agreement_fractions([]) == []
