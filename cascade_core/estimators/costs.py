"""Cost estimates: what a call will cost before it is made.

Before a call only the prompt is known, so the estimate is
``tokens_in * input_price + expected_tokens_out * output_price`` with per-token prices from
LiteLLM's model cost map (or the user's own, e.g. for self-hosted models) and the expected
output length measured per model on logged data. (In a replay the logged cost is used as is:
it is what was really paid, including anything the token counts miss, such as the cascade
logs' self-verification call.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def litellm_prices(model: str) -> tuple[float, float]:
    """(input, output) USD per token from LiteLLM's bundled cost map."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    entry = litellm.model_cost.get(model)
    if entry is None or "input_cost_per_token" not in entry:
        raise KeyError(
            f"no price for {model!r} in LiteLLM's cost map; give prices per model "
            "(USD per input and output token)"
        )
    return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token", 0.0))


@dataclass(frozen=True)
class TokenCostModel:
    """Per-model token prices and expected output length."""

    model_names: tuple[str, ...]
    input_price: np.ndarray
    output_price: np.ndarray
    expected_tokens_out: np.ndarray

    @classmethod
    def create(
        cls,
        model_names: Sequence[str],
        expected_tokens_out: Sequence[float],
        prices: Mapping[str, tuple[float, float]] | None = None,
    ) -> TokenCostModel:
        """Prices from ``prices`` where given, else from LiteLLM's cost map."""
        given = dict(prices or {})
        pairs = [given[m] if m in given else litellm_prices(m) for m in model_names]
        expected = np.asarray(expected_tokens_out, dtype=float)
        if (
            expected.shape != (len(model_names),)
            or np.isnan(expected).any()
            or (expected < 0).any()
        ):
            raise ValueError("expected_tokens_out: give one non-negative number per model")
        return cls(
            model_names=tuple(model_names),
            input_price=np.array([p[0] for p in pairs], dtype=float),
            output_price=np.array([p[1] for p in pairs], dtype=float),
            expected_tokens_out=expected,
        )

    def estimate(self, tokens_in: float | np.ndarray) -> np.ndarray:
        """USD per model: (k,) for one prompt length, (n, k) for an array of n lengths."""
        tokens = np.asarray(tokens_in, dtype=float)
        return tokens[..., None] * self.input_price + self.expected_tokens_out * self.output_price

    def to_dict(self) -> dict[str, object]:
        return {
            "model_names": list(self.model_names),
            "input_price": self.input_price.tolist(),
            "output_price": self.output_price.tolist(),
            "expected_tokens_out": self.expected_tokens_out.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TokenCostModel:
        return cls(
            model_names=tuple(data["model_names"]),  # type: ignore[arg-type]
            input_price=np.asarray(data["input_price"], dtype=float),
            output_price=np.asarray(data["output_price"], dtype=float),
            expected_tokens_out=np.asarray(data["expected_tokens_out"], dtype=float),
        )
