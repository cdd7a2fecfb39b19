"""What one request did, kept for callers, logs and framework metadata.

Everything here is plain data (``as_dict`` is JSON-ready) and holds no secrets: error texts
are redacted before they are stored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cascade_core.engine.answers import ModelAnswer

RunStatus = Literal["ok", "unusable", "failed", "skipped", "aborted", "cancelled"]


@dataclass(frozen=True)
class TokenUsage:
    """Tokens billed: of one model run, or summed over every run of a request (drafts are
    paid for, so a request's usage counts them)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of the prompt tokens, those billed at the cache-read price

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_openai(self) -> dict[str, int]:
        """OpenAI's ``usage`` object (what token counters and OpenAI clients read)."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass
class ModelRun:
    """One model of the ladder in one request: answered, answered unusably (empty, refused,
    filtered), failed, skipped, aborted early, or cancelled (a hedge whose draft won).

    Times are seconds on the monotonic clock, measured by the driver around the provider call.
    ``ttft_s`` is when the first token reached the engine: for a streamed call the first
    chunk carrying text or a tool call, for a whole call the whole answer (its first token is
    not visible earlier), None when no token arrived. ``total_s`` is the whole call, failed
    ones included. ``expected_ttft_s`` / ``expected_total_s`` are what the engine's
    `LatencyModel` predicted for the call before it ran (None until the model was observed).

    A verification call (`cascade_core.engine.verifier`) is a run of the verifier model with
    ``verifies`` naming the model whose answer it judged, its P(yes) in ``features``; it has
    no quality of its own (``ex_ante_quality`` None) and is not a model the cascade ran.
    """

    model: str
    index: int
    status: RunStatus
    reason: str
    ex_ante_quality: float | None
    post_hoc_quality: float | None = None
    quality_basis: str = ""
    features: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    estimated_cost_usd: float = 0.0
    ttft_s: float | None = None
    total_s: float = 0.0
    streamed: bool = False
    expected_ttft_s: float | None = None
    expected_total_s: float | None = None
    error: str | None = None
    cap_overrun: str | None = None  # set when this call broke the cost cap's assumptions
    cached_tokens: int = 0  # prompt tokens the provider billed at its cache-read price
    cache_write_tokens: int = 0  # prompt tokens it billed at its cache-write price
    expected_cached_tokens: int = 0  # what the cost estimate assumed the cache would hold
    # Started alongside a draft (a hedged escalation); a hedge that lost is "cancelled"
    hedged: bool = False
    verifies: str | None = None  # a verification: the label of the model it judged

    @property
    def usage(self) -> TokenUsage:
        return TokenUsage(self.prompt_tokens, self.completion_tokens, self.cached_tokens)

    @property
    def latency_ms(self) -> float:
        """The whole call in milliseconds (``total_s``), as logs and telemetry report it."""
        return self.total_s * 1000


@dataclass
class SessionTrace:
    """The session a request belonged to: its policy, what the session imposed on the
    request and why, and its spend (settled plus reserved by other requests in flight)
    before the request and after its last call."""

    session_id: str
    policy: str
    tool_loop: str
    new: bool = True
    notes: list[str] = field(default_factory=list)
    cap_usd: float | None = None
    spend_before_usd: float = 0.0
    spend_after_usd: float | None = None


@dataclass
class CascadeTrace:
    """The runs in order, the decisions between them, and why the request stopped."""

    runs: list[ModelRun] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    stop_reason: str = ""
    strategy: str = ""
    session: SessionTrace | None = None
    # A draft committed early (streamed before it was judged whole): whether the strategy,
    # judging the whole draft, would have escalated it; None when nothing was committed
    would_have_escalated: bool | None = None

    @property
    def cost_usd(self) -> float:
        return sum(run.cost_usd for run in self.runs)

    @property
    def usage(self) -> TokenUsage:
        """Tokens summed over every run of the request."""
        return TokenUsage(
            prompt_tokens=sum(run.prompt_tokens for run in self.runs),
            completion_tokens=sum(run.completion_tokens for run in self.runs),
            cached_tokens=sum(run.cached_tokens for run in self.runs),
        )

    @property
    def prompt_tokens(self) -> int:
        return self.usage.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.usage.completion_tokens

    @property
    def cached_tokens(self) -> int:
        return self.usage.cached_tokens

    @property
    def models_run(self) -> list[str]:
        """The ladder models that were called (verification calls are not among them)."""
        return [run.model for run in self.runs if run.status != "skipped" and run.verifies is None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "runs": [{**asdict(run), "latency_ms": run.latency_ms} for run in self.runs],
            "decisions": list(self.decisions),
            "stop_reason": self.stop_reason,
            "cost_usd": self.cost_usd,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "session": asdict(self.session) if self.session is not None else None,
            "would_have_escalated": self.would_have_escalated,
        }


@dataclass
class CascadeResult:
    """The accepted answer, which model gave it, and the trace."""

    answer: ModelAnswer
    model: str
    model_index: int
    trace: CascadeTrace

    @property
    def content(self) -> str:
        return self.answer.content

    @property
    def cost_usd(self) -> float:
        return self.trace.cost_usd

    @property
    def usage(self) -> TokenUsage:
        """Tokens of every model the request ran, drafts included (they were billed)."""
        return self.trace.usage
