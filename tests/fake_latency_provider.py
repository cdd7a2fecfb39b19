"""A FAKE, latency-faithful provider pair: two OpenAI-compatible models that answer short
arithmetic questions with the time to first token and the output speed of a typical small
and a typical large API model (not models: the answers are scripted).

Why: on two shared CPU cores two local models slow each other down and their speeds are not
those of APIs, so a latency benchmark of the cascade needs a pair that streams like real
providers, repeatably and without network or keys.

The figures (`SMALL`, `LARGE`) are round numbers of the order of the medians that public
API leaderboards (Artificial Analysis, artificialanalysis.ai, 2024-2025) report for a
GPT-4o-mini-class and a GPT-4o-class model: about 0.35 s / 90 tokens per second and 0.6 s /
45 tokens per second. They are approximate, not measured here; change them to match yours.

Each question has a known answer. Whether a model answers it right is fixed per question (a
hash of its text), at the model's accuracy; a right answer is confident (high token
logprobs), a wrong one unsure, as calibrated models tend to be, so the cascade's post-hoc
judgement has something to go by.

    with FakeLatencyProvider() as provider:
        litellm.completion(model="openai/fake-small", api_base=provider.base_url, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from fake_openai_server import FakeOpenAIServer

FILLER = (" I", " added", " the", " two", " numbers", " step", " by", " step", " and")
FILLER += (" checked", " the", " sum", " twice", " to", " be", " sure", " it", " is")
FILLER += (" right", ".")


@dataclass(frozen=True)
class LatencyProfile:
    """How one fake model streams and how often it is right."""

    ttft_s: float  # request received -> first content token sent
    tokens_per_s: float  # output speed after the first token
    accuracy: float  # share of questions it answers right
    sure_logprob: float = -0.03  # per-token logprob of a right answer
    unsure_logprob: float = -1.2  # per-token logprob of a wrong one
    repeat: int = 1  # how many times the filler after the number is said (answer length)


SMALL = LatencyProfile(ttft_s=0.35, tokens_per_s=90.0, accuracy=0.6)
LARGE = LatencyProfile(ttft_s=0.6, tokens_per_s=45.0, accuracy=0.9)
PAIR = {"fake-small": SMALL, "fake-large": LARGE}


def question(i: int) -> tuple[str, int]:
    """The i-th benchmark question and its answer."""
    a, b = 17 + 7 * i, 29 + 11 * i
    return f"What is {a} + {b}? Answer with the number first.", a + b


def answers_right(model: str, prompt: str, accuracy: float) -> bool:
    """Fixed per (model, question), so repeated runs and retries agree, and independent
    across models. A cryptographic digest, not CRC-32: CRC is affine in its input, so the
    draws of two equally long model names differ by a constant XOR and their errors nest."""
    digest = hashlib.blake2b(f"{model}\0{prompt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < accuracy


def _expected(prompt: str) -> int:
    a, b = (int(x) for x in re.findall(r"\d+", prompt)[:2])
    return a + b


@dataclass
class Served:
    """What the fake sent for one streamed request: a closed connection (the client cancelled
    the stream) shows as ``completed`` False with fewer ``tokens_sent`` than ``tokens_total``."""

    model: str
    tokens_total: int
    tokens_sent: int = 0
    completed: bool = False


class FakeLatencyProvider(FakeOpenAIServer):
    """The FAKE pair on a free port (``base_url``), in a daemon thread like its parent.

    ``served`` lists every streamed request in arrival order with how many content tokens
    were written to the connection before it ended (`Served`).
    """

    def __init__(self, models: dict[str, LatencyProfile] | None = None) -> None:
        super().__init__({})
        self.profiles = dict(models or PAIR)
        self.served: list[Served] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        body = await request.json()
        name = str(body.get("model", "")).removeprefix("openai/")
        profile = self.profiles.get(name)
        if profile is None:
            return web.json_response({"error": {"message": f"no model {name}"}}, status=404)
        messages = body.get("messages") or []
        prompt = str(messages[-1].get("content", "")) if messages else ""
        right = answers_right(name, prompt, profile.accuracy)
        number = _expected(prompt) if re.search(r"\d", prompt) else 0
        tokens = (f" {number if right else number + 1}.", *(FILLER * profile.repeat))
        limit = body.get("max_tokens")
        if limit is not None:
            tokens = tokens[: max(int(limit), 1)]
        logprob = profile.sure_logprob if right else profile.unsure_logprob
        usage = {
            "prompt_tokens": 20,
            "completion_tokens": len(tokens),
            "total_tokens": 20 + len(tokens),
        }
        base = {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "created": int(time.time()),
            "model": name,
        }
        if not body.get("stream"):
            delay = profile.ttft_s + (len(tokens) - 1) / profile.tokens_per_s
            await asyncio.sleep(max(delay - (time.monotonic() - started), 0.0))
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(tokens)},
                "finish_reason": "stop",
                "logprobs": {"content": [_item(t, logprob) for t in tokens]},
            }
            return web.json_response(
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            data = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
            await response.write(f"data: {json.dumps(data)}\n\n".encode())

        served = Served(model=name, tokens_total=len(tokens))
        self.served.append(served)
        with contextlib.suppress(ConnectionError):
            await response.prepare(request)
            await send([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
            for i, token in enumerate(tokens):
                due = started + profile.ttft_s + i / profile.tokens_per_s
                await asyncio.sleep(max(due - time.monotonic(), 0.0))
                if request.transport is None or request.transport.is_closing():
                    return response  # the client closed the stream: nothing more is sent
                delta = {"index": 0, "delta": {"content": token}}
                await send([{**delta, "logprobs": {"content": [_item(token, logprob)]}}])
                served.tokens_sent += 1
            await send([{"index": 0, "delta": {}, "finish_reason": "stop"}])
            if (body.get("stream_options") or {}).get("include_usage"):
                await send([], usage=usage)
            await response.write(b"data: [DONE]\n\n")
            served.completed = True
        return response


def ladder_models(
    provider: FakeLatencyProvider, prices: dict[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    """Ladder entries for the FAKE models named in ``prices`` (input, output USD per token),
    in that order, served by ``provider``."""
    return [
        {
            "name": name,
            "model": f"openai/{name}",
            "api_base": provider.base_url,
            "input_cost_per_token": input_price,
            "output_cost_per_token": output_price,
            "supports_logprobs": True,
        }
        for name, (input_price, output_price) in prices.items()
    ]


def _item(token: str, logprob: float) -> dict[str, Any]:
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [{"token": token, "logprob": logprob, "bytes": list(token.encode())}],
    }
