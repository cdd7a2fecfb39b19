"""A FAKE OpenAI-compatible chat server whose answers carry varied top-logprob alternatives.

Why: the live-versus-replay parity tests need answers whose entropy and margin features vary
from prompt to prompt and predict correctness, the way real ones do, and that come back
identically to calibration and to the live engine, whole or streamed. Each (model, prompt)
gets a fixed answer drawn from a generator seeded by both:

* a "doubt" in [0, 1) decides correctness (the answer is right when doubt < the model's
  skill) and shapes every token: the more doubt, the smaller the gap between the chosen
  token and its alternatives (lower margin, higher entropy, lower logprob);
* the text is ``"<model> ok|no w1 w2 ..."``: `grade` reads the verdict from it, and the
  tokens, joined, are the text;
* the top alternatives honour the request's ``top_logprobs`` (at most 5, as OpenAI), and
  logprobs are sent only when ``logprobs`` is asked for;
* with ``twins=True`` every model gives the same answer (seeded by the prompt alone), so a
  profile fitted on them estimates every model exactly alike: an exact tie.

Requests are recorded (``requests``) so a test can check what the engine asked for.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SKILL = {"small": 0.55, "big": 0.9}
MAX_TOP = 5


@dataclass(frozen=True)
class FakeAnswer:
    """One model's fixed answer to one prompt."""

    tokens: tuple[str, ...]
    logprobs: tuple[float, ...]
    top_logprobs: tuple[tuple[float, ...], ...]  # MAX_TOP per token, best first
    correct: bool

    @property
    def text(self) -> str:
        return "".join(self.tokens)


def fake_answer(model: str, prompt: str, *, twins: bool = False) -> FakeAnswer:
    """The answer of ``model`` to ``prompt`` (deterministic; see the module docstring)."""
    name = "twin" if twins else model
    rng = random.Random(hashlib.sha256(f"{name}|{prompt}".encode()).digest())
    doubt = rng.random()
    correct = doubt < SKILL.get(name, 0.7)
    n_words = rng.randint(1, 5)
    verdict = " ok" if correct else " no"
    tokens = (name, verdict, *(f" w{rng.randint(0, 99)}" for _ in range(n_words)))
    logprobs, tops = [], []
    for _ in tokens:
        gap = (1.0 - doubt) * 4.0 + rng.uniform(0.05, 0.5)
        logits = [0.0, -gap, *(-gap - rng.uniform(0.1, 2.0) * (i + 1) for i in range(MAX_TOP - 2))]
        tail = rng.uniform(0.01, 0.3)  # probability mass outside the top alternatives
        log_z = math.log(sum(math.exp(v) for v in logits) / (1.0 - tail))
        alternatives = tuple(sorted((v - log_z for v in logits), reverse=True))
        tops.append(alternatives)
        logprobs.append(alternatives[0])  # the sampled token is the most likely one
    return FakeAnswer(tuple(tokens), tuple(logprobs), tuple(tops), correct)


def grade(answer: str, reference: object, row: dict[str, Any]) -> bool:
    """A dev-set grader (``tests.fake_logprob_server:grade``): the verdict word of the text."""
    words = answer.split()
    return len(words) >= 2 and words[1] == "ok"


class FakeLogprobServer:
    """Serves on 127.0.0.1 in a daemon thread, whole responses and SSE streams."""

    def __init__(self, *, twins: bool = False) -> None:
        self.twins = twins
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with server._lock:
                    server.requests.append(body)
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for chunk in server.chunks(body):
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                data = json.dumps(server.whole(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # -- wire format ---------------------------------------------------------------------

    def _answer(self, body: dict[str, Any]) -> FakeAnswer:
        model, prompt = str(body.get("model", "")), str(body["messages"][-1]["content"])
        return fake_answer(model, prompt, twins=self.twins)

    @staticmethod
    def _entries(body: dict[str, Any], answer: FakeAnswer) -> list[dict[str, Any]]:
        k = min(MAX_TOP, int(body.get("top_logprobs") or 0))
        return [
            {
                "token": token,
                "logprob": lp,
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": token if j == 0 else f"<alt{j}>", "logprob": alt, "bytes": None}
                    for j, alt in enumerate(tops[:k])
                ],
            }
            for token, lp, tops in zip(
                answer.tokens, answer.logprobs, answer.top_logprobs, strict=True
            )
        ]

    @staticmethod
    def _usage(answer: FakeAnswer) -> dict[str, int]:
        n = len(answer.tokens)
        return {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}

    def whole(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = self._answer(body)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": answer.text},
            "finish_reason": "stop",
        }
        if body.get("logprobs"):
            choice["logprobs"] = {"content": self._entries(body, answer)}
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [choice],
            "usage": self._usage(answer),
        }

    def chunks(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        answer = self._answer(body)
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", ""),
        }

        def chunk(delta: dict[str, Any], **extra: Any) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, **extra}]}

        yield chunk({"role": "assistant", "content": ""})
        entries = self._entries(body, answer)
        for token, entry in zip(answer.tokens, entries, strict=True):
            extra: dict[str, Any] = {"finish_reason": None}
            if body.get("logprobs"):
                extra["logprobs"] = {"content": [entry]}
            yield chunk({"content": token}, **extra)
        yield chunk({}, finish_reason="stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {**base, "choices": [], "usage": self._usage(answer)}

    # -- test helpers --------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def config(
        self,
        lam: float = 0.0,
        *,
        order: tuple[str, ...] = ("small", "big"),
        strategy: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A ladder on this server (in ``order``; small is 10x cheaper than big) with a fixed
        lambda and, optionally, another strategy."""
        prices = {"small": 1e-7, "big": 1e-6}
        config: dict[str, Any] = {
            "models": [
                {
                    "name": name,
                    "model": f"openai/{name}",
                    "api_base": self.api_base,
                    "input_cost_per_token": price,
                    "output_cost_per_token": price,
                    "supports_logprobs": True,
                    "expected_output_tokens": 8,
                }
                for name, price in ((name, prices[name]) for name in order)
            ],
            "num_retries": 0,
            "timeout_s": 10,
            "budget": {"lambda": lam},
        }
        if strategy is not None:
            config["strategy"] = strategy
        return config

    def __enter__(self) -> FakeLogprobServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
