"""Post-hoc quality features from token logprobs (Gupta et al. 2024 style).

Why: after a model has answered, how confident it was token by token is the cheapest
signal of whether the answer is right. "Language model cascades: token-level uncertainty
and beyond" (Gupta et al., 2024) shows that a handful of order statistics of the token
logprobs (not just their mean) predict correctness well enough to decide whether to
escalate. This module turns logprobs into a fixed, named feature vector that a calibrated
estimator maps to P(correct).

Three entry points give *bit-identical* features for the same tokens:

* :func:`features_from_response` reads a LiteLLM / OpenAI chat response
  (``response.choices[i].logprobs.content``), objects or plain dicts;
* :func:`features_from_logprobs` reads a stored list of floats (optionally with per-token
  top-k alternatives), as written to logs;
* :class:`LogprobAccumulator` adds tokens chunk by chunk while a response streams (LiteLLM's
  ``stream_chunk_builder`` drops streaming logprobs, so they must be gathered on the fly).

Identity across the three paths is by construction: sums use exactly rounded summation
(``math.fsum`` in batch, Shewchuk partials in the accumulator, which ``math.fsum`` then rounds
to the same double), quantiles come from the same sorted-list interpolation, and per-token
entropy/margin come from the same scalar helper.

Logprobs are never invented: when a response carries no logprobs the response entry point
returns ``None`` and the caller must fall back to other signals.

Conventions (documented here because the estimator must know them):

* ``-inf`` and values below :data:`LOGPROB_FLOOR` are clamped to the floor (OpenAI already
  reports ``-9999.0`` for "probability underflowed"), so every feature stays finite.
  NaN, or a positive logprob above :data:`POSITIVE_TOLERANCE`, is a data error
  (``ValueError``); tiny positive rounding noise is clamped to 0.
* A feature that is undefined is ``NaN`` (never a made-up number): ``mean_entropy`` when no
  token has top-k alternatives, ``mean_margin`` when no token has two or more, and every
  per-token statistic of an empty token list (see :func:`features_from_logprobs`).
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "FEATURE_NAMES",
    "LOGPROB_FLOOR",
    "POSITIVE_TOLERANCE",
    "LogprobAccumulator",
    "LogprobFeatures",
    "TokenLogprobs",
    "features_from_logprobs",
    "features_from_response",
    "token_logprobs_from_response",
]

LOGPROB_FLOOR: float = -9999.0
"""Lowest logprob kept; OpenAI's own sentinel for an underflowed probability."""

POSITIVE_TOLERANCE: float = 1e-4
"""Positive logprobs up to this are float noise (clamped to 0); larger ones are errors."""

FEATURE_NAMES: tuple[str, ...] = (
    "lp_sum",
    "lp_mean",
    "lp_min",
    "lp_median",
    "lp_p10",
    "lp_p25",
    "log_n_tokens",
    "mean_entropy",
    "mean_margin",
    "answer_parsed",
)
"""Order of :meth:`LogprobFeatures.as_array`; every name is a field of LogprobFeatures."""

_NAN = float("nan")


@dataclass(frozen=True, slots=True)
class LogprobFeatures:
    """The feature vector of one answer; fields named as in :data:`FEATURE_NAMES`.

    Attributes:
        lp_sum: sum of token logprobs = log P(answer | prompt); 0.0 for an empty answer.
        lp_mean: mean token logprob (length-normalized confidence).
        lp_min: the least confident token: one bad token often means a wrong answer.
        lp_median, lp_p10, lp_p25: quantiles (numpy's default "linear" interpolation);
            the lower ones capture "a few shaky tokens" more robustly than the minimum.
        log_n_tokens: log(#tokens); long answers accumulate low sums without being worse.
        mean_entropy: mean over tokens that have top-k alternatives of the entropy (nats)
            of those alternatives renormalized to sum to 1. When the alternatives are the
            true top-k (each omitted token no more likely than the least likely returned
            one) this is a *lower bound* of the true next-token entropy:
            H(p) >= H(q) - log(m) >= H(q), where q is the renormalized top-k and m its
            mass. It is a cheap proxy, not the entropy itself.
        mean_margin: mean over tokens with >= 2 alternatives of logprob(top-1) -
            logprob(top-2); small margins mean the model hesitated between tokens.
        answer_parsed: 1.0 when the caller could parse an answer from the text (e.g. a
            multiple-choice letter), else 0.0; supplied by the caller, not computed here.
        n_tokens: number of tokens (metadata, not a feature).
        n_with_top: number of tokens that had >= 1 top-k alternative (metadata).
    """

    lp_sum: float
    lp_mean: float
    lp_min: float
    lp_median: float
    lp_p10: float
    lp_p25: float
    log_n_tokens: float
    mean_entropy: float
    mean_margin: float
    answer_parsed: float
    n_tokens: int
    n_with_top: int

    def as_array(self) -> np.ndarray:
        """The features as a float64 vector in :data:`FEATURE_NAMES` order."""
        return np.array([getattr(self, name) for name in FEATURE_NAMES], dtype=np.float64)

    def as_dict(self) -> dict[str, float]:
        """The features as an ordered ``{name: value}`` dict (for traces and logs)."""
        return {name: getattr(self, name) for name in FEATURE_NAMES}


class TokenLogprobs(NamedTuple):
    """Logprobs of one answer in storage form: what logs keep and batch features read.

    ``top_logprobs[i]`` holds the logprobs of the top-k alternatives of token ``i`` (empty
    when the provider returned none for it); token strings are not needed for features.
    """

    logprobs: tuple[float, ...]
    top_logprobs: tuple[tuple[float, ...], ...]


# ---------------------------------------------------------------------------- helpers


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Read ``name`` from a dict or an attribute object (LiteLLM types are both-ish)."""
    if type(obj) is dict or isinstance(obj, Mapping):  # exact-type check first: hot path
        return obj.get(name, default)
    return getattr(obj, name, default)


def _clean(value: Any, where: str) -> float:
    """Validate and clamp one logprob (see module docstring for the conventions)."""
    if type(value) is float and LOGPROB_FLOOR < value <= 0.0:  # fast path; NaN fails it
        return value
    if value is None or isinstance(value, bool):
        raise ValueError(f"{where}: logprob must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: logprob must be a number, got {value!r}") from None
    if math.isnan(x):
        raise ValueError(f"{where}: logprob is NaN")
    if x > 0.0:
        if x > POSITIVE_TOLERANCE:
            raise ValueError(f"{where}: logprob {x!r} > 0 is not a log-probability")
        return 0.0
    return x if x > LOGPROB_FLOOR else LOGPROB_FLOOR


def _top_values(item: Any, where: str) -> tuple[float, ...]:
    """Logprobs of one token's alternatives from any of the accepted layouts.

    Accepted: ``None``; a sequence of floats; a sequence of ``{token, logprob}`` dicts or
    objects (OpenAI chat format); a ``{token: logprob}`` mapping (legacy completions format).
    """
    if item is None:
        return ()
    if isinstance(item, Mapping) and "logprob" not in item:
        values: Iterable[Any] = item.values()
    else:
        if isinstance(item, Mapping):  # a single {token, logprob} entry is a layout error
            raise ValueError(f"{where}: expected a list of alternatives, got one mapping")
        values = (
            alt if type(alt) is float or isinstance(alt, numbers.Real) else _get(alt, "logprob")
            for alt in item
        )
    return tuple(_clean(v, where) for v in values)


def _entropy_margin(tops: Sequence[float]) -> tuple[float | None, float | None]:
    """Renormalized entropy (nats) and top-1/top-2 margin of one token's alternatives.

    Scalar ``math`` on purpose: k is small, and batch and streaming must round identically.
    """
    k = len(tops)
    if k == 0:
        return None, None
    if k == 1:
        return 0.0, None
    m = max(tops)
    weights = [math.exp(t - m) for t in tops]
    z = math.fsum(weights)
    log_z = math.log(z)
    # H = -sum p_i log p_i with p_i = w_i / Z and log p_i = t_i - m - log Z (no log(0)).
    entropy = -math.fsum((w / z) * (t - m - log_z) for w, t in zip(weights, tops, strict=True))
    first, second = sorted(tops, reverse=True)[:2]
    return max(entropy, 0.0), first - second


def _quantile_sorted(values: Sequence[float], q: float) -> float:
    """Quantile of an ascending sequence, numpy's default "linear" method."""
    n = len(values)
    pos = q * (n - 1)
    lo = math.floor(pos)
    if lo >= n - 1:
        return float(values[n - 1])
    frac = pos - lo
    return float(values[lo] + (values[lo + 1] - values[lo]) * frac)


def _msum_add(partials: list[float], x: float) -> None:
    """Add ``x`` to Shewchuk partials (exact running sum; ``math.fsum`` rounds it)."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


def _assemble(
    sorted_lps: Sequence[float],
    lp_sum: float,
    entropy_sum: float,
    n_entropy: int,
    margin_sum: float,
    n_margin: int,
    answer_parsed: bool,
) -> LogprobFeatures:
    """Build the vector from sufficient statistics shared by batch and streaming."""
    n = len(sorted_lps)
    parsed = 1.0 if answer_parsed else 0.0
    mean_entropy = entropy_sum / n_entropy if n_entropy else _NAN
    mean_margin = margin_sum / n_margin if n_margin else _NAN
    if n == 0:
        return LogprobFeatures(
            lp_sum=0.0,
            lp_mean=_NAN,
            lp_min=_NAN,
            lp_median=_NAN,
            lp_p10=_NAN,
            lp_p25=_NAN,
            log_n_tokens=_NAN,
            mean_entropy=_NAN,
            mean_margin=_NAN,
            answer_parsed=parsed,
            n_tokens=0,
            n_with_top=0,
        )
    return LogprobFeatures(
        lp_sum=lp_sum,
        lp_mean=lp_sum / n,
        lp_min=float(sorted_lps[0]),
        lp_median=_quantile_sorted(sorted_lps, 0.5),
        lp_p10=_quantile_sorted(sorted_lps, 0.1),
        lp_p25=_quantile_sorted(sorted_lps, 0.25),
        log_n_tokens=math.log(n),
        mean_entropy=mean_entropy,
        mean_margin=mean_margin,
        answer_parsed=parsed,
        n_tokens=n,
        n_with_top=n_entropy,
    )


# ---------------------------------------------------------------------------- batch


def features_from_logprobs(
    logprobs: Sequence[float],
    top_logprobs: Sequence[Any] | None = None,
    *,
    answer_parsed: bool,
) -> LogprobFeatures:
    """Features from stored token logprobs.

    Args:
        logprobs: the logprob of each generated token, in order.
        top_logprobs: optional, one entry per token: its top-k alternatives as floats,
            ``{token, logprob}`` items, or a ``{token: logprob}`` mapping; ``None``/empty
            for a token without alternatives. Without it, entropy and margin are NaN.
        answer_parsed: whether the caller parsed an answer from the text (tasks without a
            parser pass True: there was nothing to fail). Required so it is never guessed.

    Returns:
        The features. An empty token list (an empty answer that still came with logprobs)
        gives ``lp_sum = 0.0`` (the log-probability of the empty sequence) and NaN for every
        per-token statistic and ``log_n_tokens``: there are no tokens to describe, and an
        empty answer is better caught by the empty-content signal than by a fake number.

    Raises:
        ValueError: on NaN or clearly positive logprobs, or when ``top_logprobs`` does not
            have one entry per token.
    """
    lps = [_clean(v, f"token {i}") for i, v in enumerate(logprobs)]
    if top_logprobs is not None and len(top_logprobs) != len(lps):
        raise ValueError(
            f"top_logprobs has {len(top_logprobs)} entries for {len(lps)} tokens; "
            "give one entry (possibly empty) per token"
        )
    entropies: list[float] = []
    margins: list[float] = []
    for i, item in enumerate(top_logprobs or ()):
        entropy, margin = _entropy_margin(_top_values(item, f"top_logprobs of token {i}"))
        if entropy is not None:
            entropies.append(entropy)
        if margin is not None:
            margins.append(margin)
    return _assemble(
        sorted(lps),
        math.fsum(lps),
        math.fsum(entropies),
        len(entropies),
        math.fsum(margins),
        len(margins),
        answer_parsed,
    )


def _choice_at(container: Any, choice: int) -> Any:
    """The choice whose ``index`` is ``choice`` (falls back to list position)."""
    choices = _get(container, "choices")
    if not choices:
        return None
    for pos, ch in enumerate(choices):
        if _get(ch, "index", pos) == choice:
            return ch
    return None


def _token_items(logprobs_obj: Any) -> list[Any] | None:
    """``logprobs.content`` of a choice, or None when the provider returned no logprobs."""
    if logprobs_obj is None:
        return None
    content = _get(logprobs_obj, "content")
    if content is None:
        return None
    return list(content)


def _split_items(items: Sequence[Any], offset: int = 0) -> TokenLogprobs:
    """Token logprobs and their alternatives from OpenAI-format ``content`` items."""
    lps: list[float] = []
    tops: list[tuple[float, ...]] = []
    for j, item in enumerate(items):
        where = f"token {offset + j}"
        lps.append(_clean(_get(item, "logprob"), where))
        tops.append(_top_values(_get(item, "top_logprobs"), f"top_logprobs of {where}"))
    return TokenLogprobs(tuple(lps), tuple(tops))


def token_logprobs_from_response(response: Any, choice: int = 0) -> TokenLogprobs | None:
    """Extract storable logprobs from a LiteLLM/OpenAI chat response (object or dict).

    Returns None when the choice is missing, ``logprobs`` is absent/None, or its
    ``content`` is None (e.g. a tool-call-only answer): logprobs are never invented.
    """
    ch = _choice_at(response, choice)
    if ch is None:
        return None
    items = _token_items(_get(ch, "logprobs"))
    if items is None:
        return None
    return _split_items(items)


def features_from_response(
    response: Any, *, answer_parsed: bool, choice: int = 0
) -> LogprobFeatures | None:
    """Features from a LiteLLM ``ModelResponse`` / OpenAI ChatCompletion (object or dict).

    Reads ``response.choices[choice].logprobs.content`` (each item ``.logprob`` and
    ``.top_logprobs`` = list of ``{token, logprob}``). Returns None when the response has no
    logprobs (providers like Anthropic/Bedrock, reasoning models, tool-call answers); the
    caller then falls back to other signals. Identical to :func:`features_from_logprobs`
    on :func:`token_logprobs_from_response`.
    """
    stored = token_logprobs_from_response(response, choice)
    if stored is None:
        return None
    return features_from_logprobs(stored.logprobs, stored.top_logprobs, answer_parsed=answer_parsed)


# ---------------------------------------------------------------------------- streaming


class LogprobAccumulator:
    """Incremental features for a streaming response.

    Why: LiteLLM's ``stream_chunk_builder`` drops streaming logprobs, and an engine that may
    abort a draft early wants features while tokens arrive. Adding a token is O(1) for the
    sums (amortized; Shewchuk partials stay tiny) plus an O(log n) search and memmove into a
    sorted list for the quantiles; reading :meth:`features` is O(1). At any point the result
    equals :func:`features_from_logprobs` on the tokens added so far, bit for bit.

    One accumulator per response (it holds per-request state; do not share across requests).
    """

    __slots__ = (
        "_entropy_partials",
        "_lp_partials",
        "_margin_partials",
        "_n_entropy",
        "_n_margin",
        "_saw_logprobs",
        "_sorted",
    )

    def __init__(self) -> None:
        self._sorted: list[float] = []
        self._lp_partials: list[float] = []
        self._entropy_partials: list[float] = []
        self._margin_partials: list[float] = []
        self._n_entropy = 0
        self._n_margin = 0
        self._saw_logprobs = False

    @property
    def n_tokens(self) -> int:
        """Tokens added so far."""
        return len(self._sorted)

    @property
    def has_logprobs(self) -> bool:
        """Whether any logprobs were seen (a token, or a chunk carrying ``logprobs``)."""
        return self._saw_logprobs

    def add(self, logprob: float, top_logprobs: Any = None) -> None:
        """Add one token: its logprob and optionally its alternatives (any layout that
        :func:`features_from_logprobs` accepts for one token)."""
        where = f"token {len(self._sorted)}"
        self._add_clean(_clean(logprob, where), _top_values(top_logprobs, where))

    def extend(self, logprobs: Sequence[float], top_logprobs: Sequence[Any] | None = None) -> None:
        """Add several tokens (same layout as :func:`features_from_logprobs`)."""
        if top_logprobs is not None and len(top_logprobs) != len(logprobs):
            raise ValueError(
                f"top_logprobs has {len(top_logprobs)} entries for {len(logprobs)} tokens"
            )
        self._saw_logprobs = True
        for i, lp in enumerate(logprobs):
            self.add(lp, None if top_logprobs is None else top_logprobs[i])

    def add_chunk(self, chunk: Any, choice: int = 0) -> int:
        """Add the tokens carried by one streaming chunk (object or dict).

        Reads ``chunk.choices[choice].logprobs.content``; chunks without logprobs (role-only,
        final usage chunk, providers without logprobs) add nothing. Returns tokens added.
        """
        ch = _choice_at(chunk, choice)
        if ch is None:
            return 0
        items = _token_items(_get(ch, "logprobs"))
        if items is None:
            return 0
        self._saw_logprobs = True
        stored = _split_items(items, offset=len(self._sorted))
        for lp, tops in zip(stored.logprobs, stored.top_logprobs, strict=True):
            self._add_clean(lp, tops)
        return len(items)

    def _add_clean(self, lp: float, tops: tuple[float, ...]) -> None:
        self._saw_logprobs = True
        bisect.insort(self._sorted, lp)
        _msum_add(self._lp_partials, lp)
        entropy, margin = _entropy_margin(tops)
        if entropy is not None:
            _msum_add(self._entropy_partials, entropy)
            self._n_entropy += 1
        if margin is not None:
            _msum_add(self._margin_partials, margin)
            self._n_margin += 1

    def features(self, *, answer_parsed: bool) -> LogprobFeatures | None:
        """Features of the tokens so far; None if no logprobs were ever seen."""
        if not self._saw_logprobs:
            return None
        return _assemble(
            self._sorted,
            math.fsum(self._lp_partials),
            math.fsum(self._entropy_partials),
            self._n_entropy,
            math.fsum(self._margin_partials),
            self._n_margin,
            answer_parsed,
        )
