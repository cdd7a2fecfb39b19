"""A streamed final answer is committed: a better-scored draft is never appended to it.

Scripted models make the case exact: the draft scores higher than the final model, which
already streamed its text live.
"""

from __future__ import annotations

from scripted_openai_server import Reply, ScriptedServer
from stream_drain import adrain, drain

from cascade_core.engine import CascadeEngine

DRAFT, FINAL = "Draft answer here.", "Final answer is worse."


def _script(model: str, body: dict) -> Reply:
    if model == "draft":
        return Reply(DRAFT, logprob=-0.05)
    return Reply(FINAL, logprob=-2.0)


def _engine(api_base: str) -> CascadeEngine:
    def rung(name: str, price: float) -> dict:
        return {
            "name": name,
            "model": f"openai/{name}",
            "api_base": api_base,
            "input_cost_per_token": price,
            "output_cost_per_token": price,
            "supports_logprobs": True,
        }

    # lambda 0: cost is free, so the cascade always runs the second model too
    return CascadeEngine(models=[rung("draft", 1e-8), rung("final", 2e-8)], budget={"lambda": 0})


def test_stream_commits_to_the_live_streamed_final_answer() -> None:
    with ScriptedServer(_script) as server:
        streamed, result = drain(
            _engine(server.api_base).stream([{"role": "user", "content": "hi"}])
        )
    assert streamed == FINAL == result.content
    assert result.model == "final"
    assert "already streamed" in result.trace.decisions[-1]


async def test_astream_commits_too_and_run_still_picks_the_best() -> None:
    messages = [{"role": "user", "content": "hi"}]
    with ScriptedServer(_script) as server:
        engine = _engine(server.api_base)
        streamed, _ = await adrain(engine.astream(messages))
        whole = engine.run(messages)
    assert streamed == FINAL
    assert whole.content == DRAFT  # nothing was sent early, so the best answer wins
