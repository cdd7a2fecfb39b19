"""A tiny FAKE OpenAI-compatible chat server for the batch and calibration tests.

Deterministic per prompt, so a killed and resumed job can be checked row by row:

* the answer is ``"<model>: <prompt>"``;
* every token's logprob is -0.02 for a "sure" prompt and -3.0 for prompts containing
  ``UNSURE`` when the model is the small one (so the cascade escalates them);
* prompts containing ``FAIL`` get HTTP 500 from every model (a per-row error);
* each answer waits ``delay_s`` so a job lasts long enough to be killed mid-run;
* ``hold(after=n)`` answers n more requests, then keeps every later answer waiting until
  ``release()``, so a test can stop a job in the middle without guessing how long anything
  takes.

Requests are counted per model (``calls``) and per (model, prompt) (``prompt_calls``), on
arrival: what a provider would bill, whether or not the client lived to read the answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SMALL = "small"


def answer_for(model: str, prompt: str) -> str:
    return f"{model}: {prompt}"


def _logprob(model: str, prompt: str) -> float:
    return -3.0 if ("UNSURE" in prompt and model == SMALL) else -0.02


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients killed mid-request (the SIGKILL test) reset their connections


class FakeChatServer:
    """Serves on 127.0.0.1 in a daemon thread; counts requests per model."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: dict[str, int] = {}
        self.prompt_calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._free = 0  # requests still answered while held
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                model = str(body.get("model", ""))
                prompt = str(body["messages"][-1]["content"])
                with server._lock:
                    server.calls[model] = server.calls.get(model, 0) + 1
                    server.prompt_calls[model, prompt] += 1
                    passes = server._open.is_set() or server._free > 0
                    if not server._open.is_set() and server._free > 0:
                        server._free -= 1
                if not passes:
                    server._open.wait()
                time.sleep(server.delay_s)
                if "FAIL" in prompt:
                    self._send({"error": {"message": "fake failure"}}, 500)
                    return
                self._send(server.completion(model, prompt, bool(body.get("logprobs"))))

            def _send(self, payload: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @staticmethod
    def completion(model: str, prompt: str, logprobs: bool) -> dict[str, Any]:
        text = answer_for(model, prompt)
        words = text.split(" ")
        tokens = [w if i == 0 else " " + w for i, w in enumerate(words)]
        lp = _logprob(model, prompt)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        if logprobs:
            choice["logprobs"] = {
                "content": [
                    {
                        "token": t,
                        "logprob": lp,
                        "bytes": list(t.encode()),
                        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}],
                    }
                    for t in tokens
                ]
            }
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": len(tokens),
                "total_tokens": 10 + len(tokens),
            },
        }

    def hold(self, after: int = 0) -> None:
        """Answer ``after`` more requests, then keep every later answer waiting until
        `release`."""
        with self._lock:
            self._free = after
            self._open.clear()

    def release(self) -> None:
        with self._lock:
            self._free = 0
            self._open.set()

    def requests(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def config(self, **budget: Any) -> dict[str, Any]:
        """A two-model ladder on this server (small is 10x cheaper than big). With lambda 5e3
        and these priors the cascade runs small first and escalates only unsure answers."""
        return {
            "models": [
                {
                    "name": name,
                    "model": f"openai/{name}",
                    "api_base": self.api_base,
                    "input_cost_per_token": price,
                    "output_cost_per_token": price,
                    "supports_logprobs": True,
                    "expected_output_tokens": 8,
                    "prior_quality": prior,
                }
                for name, price, prior in ((SMALL, 1e-7, 0.7), ("big", 1e-6, 0.8))
            ],
            "num_retries": 0,
            "timeout_s": 10,
            "budget": budget or {"lambda": 5000.0},
        }

    def __enter__(self) -> FakeChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()  # no handler thread left waiting
        self._httpd.shutdown()
        self._httpd.server_close()
