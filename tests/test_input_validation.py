"""Bad input is refused with a message that names the problem."""

from __future__ import annotations

import numpy as np
import pytest

from cascade_core import CascadeRouting, QueryEstimates, StagedEstimates, make_strategy
from cascade_core.errors import InvalidInputError


@pytest.mark.parametrize(
    ("quality", "cost", "message"),
    [
        ([0.5, 0.6], [1.0], "shapes"),
        ([0.5, np.nan], [1.0, 2.0], "NaN"),
        ([0.5, 1.2], [1.0, 2.0], r"\[0, 1\]"),
        ([0.5, -0.1], [1.0, 2.0], r"\[0, 1\]"),
        ([0.5, 0.6], [1.0, -2.0], ">= 0"),
        ([0.5, 0.6], [1.0, np.nan], "NaN"),
        ([], [], "empty"),
    ],
)
def test_query_estimates_refuse_bad_values(quality, cost, message):
    with pytest.raises(InvalidInputError, match=message):
        QueryEstimates.create(quality, cost)


def test_staged_estimates_refuse_disagreeing_shapes():
    with pytest.raises(InvalidInputError, match="shapes disagree"):
        StagedEstimates.from_arrays(np.zeros((3, 2)), np.zeros((3, 3)), np.ones((3, 2)))


def test_unknown_strategy_and_variant_are_named():
    with pytest.raises(InvalidInputError, match=r"unknown strategy 'cascade'.*cascade_routing"):
        make_strategy("cascade")
    with pytest.raises(InvalidInputError, match="variant"):
        make_strategy("cascade_routing", variant="fast")
    with pytest.raises(InvalidInputError, match="unexpected keyword"):
        make_strategy("routing", lamda=1.0)


def test_negative_or_nan_lambda_is_refused():
    with pytest.raises(InvalidInputError, match="lam"):
        CascadeRouting(lam=-1.0)
    with pytest.raises(InvalidInputError, match="lam"):
        CascadeRouting(lam=float("nan"))


def test_ran_indices_out_of_range_are_refused():
    estimates = QueryEstimates.create([0.5, 0.6], [1.0, 2.0])
    with pytest.raises(InvalidInputError, match="outside"):
        CascadeRouting().decide(estimates, [5])
