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


def test_prices_are_not_counted_as_prompt_tokens() -> None:
    """The price arguments travel with the request but are not content the provider bills."""
    models = {"house-model-not-in-any-price-map": FakeModel(tokens=(" ok",))}
    with FakeOpenAIServer(models) as server:
        engine = _engine(server)
        run = engine.start([{"role": "user", "content": "hi"}], max_tokens=4)
        params = run.base_params[0]
        assert params["input_cost_per_token"] == 3e-6
        bare = {k: v for k, v in params.items() if not k.endswith("_cost_per_token")}
        model = engine.parts.ladder[0]
        assert model.count_input_tokens(params) == model.count_input_tokens(bare)


def test_a_new_price_keeps_the_calibration_cache() -> None:
    """Prices change what a call is accounted at, not what it answers."""
    from cascade_core.calibrate.cache import request_key

    asked = {"model": "openai/m", "messages": [{"role": "user", "content": "hi"}]}
    priced = {**asked, "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    repriced = {**asked, "input_cost_per_token": 5e-6, "output_cost_per_token": 9e-6}
    assert request_key("m", asked) == request_key("m", priced) == request_key("m", repriced)
    assert request_key("m", asked) != request_key("m", {**asked, "max_tokens": 3})
