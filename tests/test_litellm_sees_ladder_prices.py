"""LiteLLM's own accounting of the engine's provider calls uses the ladder's prices.

A self-hosted model (llama.cpp, vLLM) is absent from LiteLLM's price map, so without the
ladder's prices every LiteLLM callback (Langfuse, a proxy's spend logs, a user's
CustomLogger) would see each call as free while the engine bills it. The calls go over real
HTTP to the FAKE OpenAI-compatible server; a real LiteLLM callback reads the cost LiteLLM
computed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import litellm
import pytest
from fake_openai_server import FakeModel, FakeOpenAIServer
from litellm.integrations.custom_logger import CustomLogger

from cascade_core.engine import CascadeEngine


class _Costs(CustomLogger):
    """Every cost LiteLLM reported to its callbacks, by model."""

    def __init__(self) -> None:
        super().__init__()
        self.costs: list[tuple[str, float]] = []

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any):
        self.costs.append((kwargs.get("model"), kwargs.get("response_cost")))

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.log_success_event(kwargs, response_obj, start_time, end_time)


@pytest.fixture(scope="module")
def _spy():
    """One spy for the module: LiteLLM sorts its callbacks into its own lists on first use,
    so a callback added and removed per test would not be seen by later calls."""
    spy = _Costs()
    before = list(litellm.callbacks)
    litellm.callbacks = [*before, spy]
    try:
        yield spy
    finally:
        litellm.callbacks = before


@pytest.fixture()
def costs(_spy):
    _spy.costs.clear()
    return _spy


def _engine(server: FakeOpenAIServer) -> CascadeEngine:
    return CascadeEngine(
        models=[
            {
                "name": "house-model",
                "model": "openai/house-model-not-in-any-price-map",
                "api_base": server.base_url,
                "input_cost_per_token": 3e-6,
                "output_cost_per_token": 7e-6,
                "supports_logprobs": True,
            }
        ],
        num_retries=0,
        timeout_s=5,
    )


def _wait_for(spy: _Costs, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(spy.costs) < n and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("driver", ["run", "arun"])
def test_litellm_callbacks_see_the_cost_the_engine_bills(costs, driver) -> None:
    models = {"house-model-not-in-any-price-map": FakeModel(tokens=(" yes", " indeed"))}
    with FakeOpenAIServer(models) as server:
        engine = _engine(server)
        messages = [{"role": "user", "content": "Is the sky blue?"}]
        if driver == "run":
            result = engine.run(messages, max_tokens=8)
            _wait_for(costs, 1)
        else:

            async def call_and_wait() -> Any:
                answer = await engine.arun(messages, max_tokens=8)
                # LiteLLM logs async calls in a task of this loop: let it run.
                for _ in range(200):
                    if costs.costs:
                        break
                    await asyncio.sleep(0.05)
                return answer

            result = asyncio.run(call_and_wait())
    billed = result.trace.cost_usd
    assert billed > 0
    seen = [cost for model, cost in costs.costs if "house-model" in str(model)]
    assert seen, costs.costs
    assert seen[-1] == pytest.approx(billed, rel=1e-9)


def test_a_model_litellm_already_prices_keeps_its_price() -> None:
    """The price map is process-wide: a ladder's price never overrides a listed one."""
    listed = litellm.get_model_info("gpt-4o-mini")["input_cost_per_token"]
    CascadeEngine(
        models=[
            {
                "name": "mini",
                "model": "gpt-4o-mini",
                "input_cost_per_token": 123.0,
                "output_cost_per_token": 456.0,
            }
        ],
        num_retries=0,
    )
    assert litellm.get_model_info("gpt-4o-mini")["input_cost_per_token"] == listed


def test_a_ladder_price_is_never_inherited_by_another_ladder() -> None:
    """A model priced by one ladder is still unknown to the next ladder that gives no price,
    and a new price for it replaces the old one in LiteLLM's accounting."""
    from cascade_core.errors import InvalidInputError

    rung = {"name": "own", "model": "openai/own-model-priced-by-a-ladder", "api_base": "http://x"}
    CascadeEngine(models=[{**rung, "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}])
    with pytest.raises(InvalidInputError, match="no price"):
        CascadeEngine(models=[rung])
    CascadeEngine(models=[{**rung, "input_cost_per_token": 5e-6, "output_cost_per_token": 6e-6}])
    info = litellm.get_model_info("openai/own-model-priced-by-a-ladder")
    assert (info["input_cost_per_token"], info["output_cost_per_token"]) == (5e-6, 6e-6)
