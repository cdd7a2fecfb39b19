"""A scripted OpenAI-compatible chat server for tests that need exact model behaviour.

Why: the tiny local models cannot produce reliable tool calls or chosen logprobs, but tests of
tool calling and of what a stream may show need them. This server speaks the real wire format
(whole responses and SSE streams, tool-call deltas, token logprobs, usage), so requests go
through the real engine, LiteLLM and the OpenAI client over HTTP; only the model is scripted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What a scripted model answers: text and/or tool calls, and each token's logprob."""

    content: str = ""
    # {"name", "arguments"} and optionally "id" (default: call_<position>)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    logprob: float = -0.05  # the same logprob for every token: sets the post-hoc quality
    finish_reason: str | None = None
    # The first token's other top alternatives (token -> logprob), e.g. a verifier's "No"
    # next to its "Yes"; None: one made-up alternative per token
    alternatives: dict[str, float] | None = None
    # One logprob per token instead of ``logprob`` for all (a draft that starts sure and
    # turns unsure)
    token_logprobs: list[float] | None = None
    # Streams only: after ``hold_after`` tokens, wait until ``hold`` is set (at most 30 s),
    # so a test can observe what the caller saw while the answer was still unfinished
    hold: threading.Event | None = None
    hold_after: int = 0

    def tokens(self) -> list[str]:
        """Whitespace-preserving pieces, so joined tokens equal the content."""
        pieces: list[str] = []
        for i, word in enumerate(self.content.split(" ")):
            pieces.append(word if i == 0 else " " + word)
        return [p for p in pieces if p]

    def logprobs(self) -> list[float]:
        """Each token's logprob."""
        tokens = self.tokens()
        if self.token_logprobs is None:
            return [self.logprob] * len(tokens)
        if len(self.token_logprobs) != len(tokens):
            raise ValueError(f"{len(self.token_logprobs)} logprobs for {len(tokens)} tokens")
        return list(self.token_logprobs)


Script = Callable[[str, dict[str, Any]], Reply]


class Rejected(Exception):
    """Raised by a script to answer with an HTTP error, as a provider refusing a request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _logprob_entry(
    token: str, logprob: float, alternatives: dict[str, float] | None = None
) -> dict[str, Any]:
    others = {"<alt>": logprob - 3.0} if alternatives is None else alternatives
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": token, "logprob": logprob, "bytes": list(token.encode())},
            *({"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in others.items()),
        ],
    }


def _entries(reply: Reply) -> list[dict[str, Any]]:
    """The reply's token logprob entries (the first with the reply's alternatives)."""
    return [
        _logprob_entry(t, lp, reply.alternatives if i == 0 else None)
        for i, (t, lp) in enumerate(zip(reply.tokens(), reply.logprobs(), strict=True))
    ]


class ScriptedServer:
    """Serves ``script(model, request_body)`` on 127.0.0.1; records every request body."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        # The model of every stream written to its end, in the order they ended
        self.streams_finished: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                self._json({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(body)
                try:
                    reply = server.script(body.get("model", ""), body)
                except Rejected as rejected:
                    error = {"message": rejected.message, "type": "invalid_request_error"}
                    self._json({"error": error}, rejected.status)
                    return
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for chunk in server._chunks(body, reply):
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                    server.streams_finished.append(str(body.get("model", "")))
                else:
                    self._json(server._whole(body, reply))

            def _json(self, payload: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- wire format ---------------------------------------------------------------------

    @staticmethod
    def _finish(reply: Reply) -> str:
        return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")

    @staticmethod
    def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
        prompt = sum(len(str(m.get("content") or "")) // 4 + 4 for m in body.get("messages", []))
        completion = len(reply.tokens()) + 8 * len(reply.tool_calls)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _whole(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.get("id") or f"call_{i}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for i, c in enumerate(reply.tool_calls)
            ]
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "finish_reason": self._finish(reply),
        }
        if body.get("logprobs") and reply.content:
            choice["logprobs"] = {"content": _entries(reply)}
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [choice],
            "usage": self._usage(body, reply),
        }

    def _chunks(self, body: dict[str, Any], reply: Reply) -> Iterator[dict[str, Any]]:
        base = {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", ""),
        }

        def chunk(delta: dict[str, Any], **extra: Any) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, **extra}]}

        yield chunk({"role": "assistant", "content": ""})
        for i, (token, entry) in enumerate(zip(reply.tokens(), _entries(reply), strict=True)):
            if reply.hold is not None and i == reply.hold_after:
                reply.hold.wait(timeout=30)
            extra: dict[str, Any] = {"finish_reason": None}
            if body.get("logprobs"):
                extra["logprobs"] = {"content": [entry]}
            yield chunk({"content": token}, **extra)
        for i, call in enumerate(reply.tool_calls):
            head = {"index": i, "id": call.get("id") or f"call_{i}", "type": "function"}
            yield chunk({"tool_calls": [{**head, "function": {"name": call["name"]}}]})
            arguments = call["arguments"]
            middle = len(arguments) // 2
            for piece in (arguments[:middle], arguments[middle:]):
                yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
        yield chunk({}, finish_reason=self._finish(reply))
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {**base, "choices": [], "usage": self._usage(body, reply)}
