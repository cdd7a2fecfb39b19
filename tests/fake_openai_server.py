"""A FAKE OpenAI-compatible chat-completions server for tests and benchmarks (not a model).

Why a fake: the engine's failure handling, streaming buffer, early abort and cost cap can only
be trusted once they have met the responses real providers send on bad days (500, 429,
stalled bodies, broken JSON, answers without logprobs, empty or truncated answers). A fake
makes those responses on demand, repeatably (seeded), in-process and without network or keys.

It speaks just enough of ``POST /v1/chat/completions`` for LiteLLM's OpenAI path: whole and
SSE-streamed answers with ``logprobs.content`` (token, logprob, top_logprobs), ``usage``
(also as the last stream chunk when ``stream_options.include_usage`` is set), ``max_tokens``
truncation, and tool calls. Each model name (what LiteLLM sends after ``openai/``) maps to a
``FakeModel`` describing its scripted answer.

Use it in-process (a background thread with its own event loop)::

    with FakeOpenAIServer({"small": FakeModel(...)}, faults=FaultPlan(rate=0.3)) as server:
        litellm.completion(model="openai/small", api_base=server.base_url, ...)

or as its own process, as the overhead benchmark does so that the fake's CPU time is not
charged to the client (prints the base URL on its first line)::

    python tests/fake_openai_server.py --fast
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import random
import re
import threading
import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

# The fault kinds the fake can inject. ``midstream_stall`` only differs from ``timeout`` on
# streams (it stalls after the first content token, so a streamed final answer breaks after
# part of it was sent); it is opt-in because its documented outcome is a different error.
FAULTS: tuple[str, ...] = (
    "http_500",
    "http_429",
    "timeout",
    "malformed_json",
    "missing_logprobs",
    "empty_content",
    "truncated",
    "html_page",
)
STREAM_ONLY_FAULTS: tuple[str, ...] = ("midstream_stall",)


@dataclass(frozen=True)
class FakeModel:
    """The scripted behaviour of one fake model name."""

    tokens: tuple[str, ...] = ("The", " answer", " is", " 42", ".")
    logprob: float = -0.05  # every token's logprob (how confident the fake sounds)
    logprobs: bool = True  # False: behave like a provider that never returns logprobs
    tool_arguments: str | None = None  # when set and the request has tools: a tool call
    prompt_tokens: int = 12  # usage.prompt_tokens reported back
    chunk_delay_s: float = 0.0  # pause between streamed chunks (lets aborts save time)
    fault: str | None = None  # always inject this fault for this model (unit tests)
    # Spread of the logprob level across prompts, fixed per prompt (a hash of its text), so
    # the cascade sees confident and unsure answers while retries of one prompt agree.
    logprob_jitter: float = 0.0
    # Bill the prompt like a real provider, from everything it was sent (messages, tools,
    # response_format schema, images), with its own tokenizer (`billed_prompt_tokens`)
    # instead of the fixed ``prompt_tokens``.
    bill_whole_request: bool = False
    # Ignore max_tokens and always answer with every scripted token, as some providers and
    # self-hosted servers do.
    ignore_max_tokens: bool = False
    # False: a stream never carries a usage chunk, even with stream_options.include_usage,
    # as llama.cpp's server does.
    stream_usage: bool = True


@dataclass(frozen=True)
class FaultPlan:
    """Random faults: each request draws from one seeded generator, in arrival order."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULTS
    seed: int = 0
    stall_s: float = 2.0  # how long a "timeout" stalls; set it beyond the client's timeout
    # Echo the request's Authorization header in error bodies, as careless proxies do: the
    # worst case for keeping keys out of exceptions and logs.
    echo_key_in_errors: bool = False


@dataclass
class ServerStats:
    """What the fake did, so tests can show the faults really happened."""

    requests: int = 0
    streams: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    by_model: Counter[str] = field(default_factory=Counter)
    # Last Authorization headers seen: proves a configured key reached the wire.
    authorizations: deque[str] = field(default_factory=lambda: deque(maxlen=64))
    max_tokens_seen: deque[int | None] = field(default_factory=lambda: deque(maxlen=4096))


def _top_logprobs(token: str, logprob: float, n: int) -> list[dict[str, Any]]:
    """The token itself plus ``n - 1`` less likely alternatives (a valid distribution)."""
    entries = [{"token": token, "logprob": logprob, "bytes": None}]
    rest = math.log1p(-math.exp(logprob)) if logprob < 0 else -20.0
    for i in range(1, n):
        alt = min(logprob, rest) - math.log(n) - 0.5 * i
        entries.append({"token": f"<alt{i}>", "logprob": alt, "bytes": None})
    return entries


# The fake's own tokenizer: words, numbers and every punctuation mark are one token each,
# which bills JSON schemas more heavily than tiktoken does. Images: OpenAI's price for a
# 512x512 image at high detail (765) or low detail (85).
_FAKE_TOKEN = re.compile(r"\w+|[^\w\s]")
FAKE_IMAGE_TOKENS = {"low": 85, "high": 765, "auto": 765}


def billed_prompt_tokens(body: dict[str, Any]) -> int:
    """Input tokens the fake bills for a request: every message part, tool and schema."""
    tokens = 0
    for message in body.get("messages") or []:
        tokens += 4  # role and separators
        content = message.get("content")
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url")
                detail = image.get("detail", "auto") if isinstance(image, dict) else "auto"
                tokens += FAKE_IMAGE_TOKENS.get(detail, 765)
            elif isinstance(part, dict):
                tokens += len(_FAKE_TOKEN.findall(str(part.get("text", ""))))
            elif part is not None:
                tokens += len(_FAKE_TOKEN.findall(str(part)))
        for call in message.get("tool_calls") or []:
            tokens += len(_FAKE_TOKEN.findall(json.dumps(call)))
    for field_name in ("tools", "tool_choice", "response_format"):
        if body.get(field_name) is not None:
            tokens += len(_FAKE_TOKEN.findall(json.dumps(body[field_name])))
    return tokens


def _jittered(model: FakeModel, body: dict[str, Any]) -> FakeModel:
    if not model.logprob_jitter:
        return model
    text = json.dumps(body.get("messages"), sort_keys=True)
    unit = (zlib.crc32(text.encode()) % 10_000) / 10_000  # in [0, 1), fixed per prompt
    level = min(-1e-3, model.logprob + model.logprob_jitter * (2 * unit - 1))
    return replace(model, logprob=level)


def _logprob_item(token: str, logprob: float, top: int) -> dict[str, Any]:
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": _top_logprobs(token, logprob, top) if top else [],
    }


class FakeOpenAIServer:
    """The fake server; a context manager that runs it in a daemon thread on a free port."""

    def __init__(
        self,
        models: dict[str, FakeModel] | None = None,
        faults: FaultPlan | None = None,
        *,
        fast: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.models = dict(models or {})
        self.faults = faults or FaultPlan()
        self.fast = fast
        self.host = host
        self.port = port
        self.stats = ServerStats()
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._fast_body = json.dumps(self._completion("fast", FakeModel(("ok",), -0.01), 2, 2))

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/chat/completions", self._handle)
        app.router.add_get("/health", self._health)
        return app

    async def serve(self) -> None:
        """Start listening on the current event loop (``port`` is set once this returns)."""
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> FakeOpenAIServer:
        """Run in a daemon thread; returns once the port is bound."""

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.serve())
            except BaseException as error:  # surfaced to the starting thread
                self._error = error
                self._ready.set()
                return
            self._ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=main, name="fake-openai-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError(f"fake server failed to start: {self._error}")
        return self

    def stop(self) -> None:
        """Close the listener, cancel stalled handlers, then end the thread's loop."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests ----------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "fake": True})

    def _draw_fault(self, model: FakeModel, stream: bool) -> str | None:
        if model.fault is not None:
            return model.fault
        plan = self.faults
        if plan.rate <= 0:
            return None
        kinds = [k for k in plan.kinds if stream or k not in STREAM_ONLY_FAULTS]
        with self._lock:
            if self._rng.random() >= plan.rate or not kinds:
                return None
            return self._rng.choice(kinds)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.fast:  # the benchmark: no parsing, one prebuilt body
            await request.read()
            return web.Response(body=self._fast_body, content_type="application/json")
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": {"message": "fake: bad request JSON"}}, status=400)
        name = str(body.get("model", ""))
        model = _jittered(self.models.get(name, FakeModel()), body)
        if model.bill_whole_request:
            model = replace(model, prompt_tokens=billed_prompt_tokens(body))
        stream = bool(body.get("stream"))
        fault = self._draw_fault(model, stream)
        with self._lock:
            self.stats.requests += 1
            self.stats.streams += stream
            self.stats.by_model[name] += 1
            self.stats.max_tokens_seen.append(body.get("max_tokens"))
            self.stats.authorizations.append(request.headers.get("Authorization", ""))
            if fault:
                self.stats.faults[fault] += 1
        echo = ""
        if self.faults.echo_key_in_errors:
            echo = f" (request had Authorization: {request.headers.get('Authorization', '')})"
        if fault == "http_500":
            return web.json_response(
                {"error": {"message": "fake internal error" + echo, "type": "server_error"}},
                status=500,
            )
        if fault == "http_429":
            return web.json_response(
                {"error": {"message": "fake rate limit" + echo, "type": "rate_limit_exceeded"}},
                status=429,
                headers={"retry-after-ms": "10"},
            )
        if fault == "html_page":  # a captive portal or misrouted proxy answering 200
            return web.Response(
                text="<!doctype html><html><body><h1>Sign in</h1></body></html>",
                content_type="text/html",
            )
        n_tokens, top = self._sizes(body, model)
        if fault == "truncated":
            n_tokens = max(1, n_tokens // 2)
        if stream:
            return await self._stream(request, body, name, model, n_tokens, top, fault)
        if fault == "timeout":
            return await self._stall(request, b'{"id": "chatcmpl-fake", "choices": [')
        if fault == "malformed_json":
            return web.Response(
                body=b'{"id": "chatcmpl-fake", "choices": [{"message": {"content": "oops"',
                content_type="application/json",
            )
        payload = self._completion(name, model, n_tokens, top, body.get("tools"), fault)
        return web.json_response(payload)

    def _sizes(self, body: dict[str, Any], model: FakeModel) -> tuple[int, int]:
        n_tokens = len(model.tokens)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(max_tokens, int) and not model.ignore_max_tokens:
            n_tokens = min(n_tokens, max_tokens)
        top = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
        return n_tokens, top

    async def _stall(self, request: web.Request, first: bytes) -> web.StreamResponse:
        """Send the headers and the start of a body, then go quiet past the client's timeout."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        with contextlib.suppress(ConnectionError):
            await response.prepare(request)
            await response.write(first)
            await asyncio.sleep(self.faults.stall_s)
        return response

    def _completion(
        self,
        name: str,
        model: FakeModel,
        n_tokens: int,
        top: int,
        tools: list[dict[str, Any]] | None = None,
        fault: str | None = None,
    ) -> dict[str, Any]:
        tokens = list(model.tokens[:n_tokens])
        finish = "length" if n_tokens < len(model.tokens) or fault == "truncated" else "stop"
        if fault == "empty_content":
            tokens, finish = [], "stop"
        message: dict[str, Any] = {"role": "assistant", "content": "".join(tokens)}
        logprobs: dict[str, Any] | None = None
        if model.logprobs and fault != "missing_logprobs":
            logprobs = {"content": [_logprob_item(t, model.logprob, top) for t in tokens]}
        if tools and model.tool_arguments is not None and fault != "empty_content":
            calls = [self._tool(tools, model)]
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            logprobs, finish = None, "tool_calls"
            tokens = [model.tool_arguments]
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
        if logprobs is not None:
            choice["logprobs"] = logprobs
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": [choice],
            "usage": {
                "prompt_tokens": model.prompt_tokens,
                "completion_tokens": len(tokens),
                "total_tokens": model.prompt_tokens + len(tokens),
            },
        }

    def _tool(self, tools: list[dict[str, Any]], model: FakeModel) -> dict[str, Any]:
        """A call of the request's first tool with the model's scripted arguments."""
        function = tools[0].get("function", {})
        return {
            "id": f"call_fake_{next(self._ids)}",
            "type": "function",
            "function": {
                "name": function.get("name", "unknown"),
                "arguments": model.tool_arguments or "{}",
            },
        }

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        name: str,
        model: FakeModel,
        n_tokens: int,
        top: int,
        fault: str | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        base = {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": name,
        }

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            data = json.dumps({**base, "choices": choices, **extra})
            await response.write(f"data: {data}\n\n".encode())
            if model.chunk_delay_s:
                await asyncio.sleep(model.chunk_delay_s)

        with contextlib.suppress(ConnectionError):
            await response.prepare(request)
            await send([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
            if fault == "timeout":  # nothing usable sent yet
                await asyncio.sleep(self.faults.stall_s)
                return response
            if fault == "malformed_json":
                await response.write(b'data: {"id": "chatcmpl-fake", "choices": [{"delta"\n\n')
                await response.write(b"data: [DONE]\n\n")
                return response
            tokens = list(model.tokens[:n_tokens])
            finish = "length" if n_tokens < len(model.tokens) or fault == "truncated" else "stop"
            if fault == "empty_content":
                tokens, finish = [], "stop"
            send_logprobs = model.logprobs and fault != "missing_logprobs" and body.get("logprobs")
            tools = body.get("tools")
            if tools and model.tool_arguments is not None and fault != "empty_content":
                call = self._tool(tools, model)
                arguments = call["function"]["arguments"]
                call["function"]["arguments"] = ""
                await send([{"index": 0, "delta": {"tool_calls": [{"index": 0, **call}]}}])
                for i in range(0, len(arguments), 8):
                    piece = arguments[i : i + 8]
                    delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                    await send([{"index": 0, "delta": delta}])
                tokens, finish = [arguments], "tool_calls"
            else:
                for i, token in enumerate(tokens):
                    choice: dict[str, Any] = {"index": 0, "delta": {"content": token}}
                    if send_logprobs:
                        choice["logprobs"] = {"content": [_logprob_item(token, model.logprob, top)]}
                    await send([choice])
                    if fault == "midstream_stall" and i == 0:
                        await asyncio.sleep(self.faults.stall_s)
                        return response
            await send([{"index": 0, "delta": {}, "finish_reason": finish}])
            if model.stream_usage and (body.get("stream_options") or {}).get("include_usage"):
                usage = {
                    "prompt_tokens": model.prompt_tokens,
                    "completion_tokens": len(tokens),
                    "total_tokens": model.prompt_tokens + len(tokens),
                }
                await send([], usage=usage)
            await response.write(b"data: [DONE]\n\n")
        return response


def main() -> None:
    """Run the fake as its own process until interrupted; first stdout line: the base URL."""
    parser = argparse.ArgumentParser(description="FAKE OpenAI-compatible server (tests only)")
    parser.add_argument("--fast", action="store_true", help="one fixed tiny answer, no parsing")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fake = FakeOpenAIServer(
        faults=FaultPlan(rate=args.fault_rate, seed=args.seed), fast=args.fast, port=args.port
    )

    async def run() -> None:
        await fake.serve()
        print(fake.base_url, flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
