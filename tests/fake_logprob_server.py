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

The tokens are the text split before each space, as `ScriptedServer` streams it, so the
wire format is `ScriptedServer`'s and only the logprobs are this module's.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.scripted_openai_server import Reply, ScriptedServer

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


class FakeLogprobServer(ScriptedServer):
    """`ScriptedServer`'s wire format (whole responses, SSE streams, usage) with these answers
    and their own token logprobs and alternatives."""

    def __init__(self, *, twins: bool = False) -> None:
        self.twins = twins
        super().__init__(lambda model, body: Reply(content=self._answer(body).text))

    def _answer(self, body: dict[str, Any]) -> FakeAnswer:
        model, prompt = str(body.get("model", "")), str(body["messages"][-1]["content"])
        return fake_answer(model, prompt, twins=self.twins)

    def _entries(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        answer = self._answer(body)
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

    def _whole(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        response = super()._whole(body, reply)
        choice = response["choices"][0]
        if "logprobs" in choice:
            choice["logprobs"] = {"content": self._entries(body)}
        return response

    def _chunks(self, body: dict[str, Any], reply: Reply) -> Iterator[dict[str, Any]]:
        entries = iter(self._entries(body))  # one per token, in the order tokens stream
        for chunk in super()._chunks(body, reply):
            choices = chunk.get("choices") or []
            if choices and "logprobs" in choices[0]:
                choices[0]["logprobs"] = {"content": [next(entries)]}
            yield chunk

    # -- test helpers --------------------------------------------------------------------

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
