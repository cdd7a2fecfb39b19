"""Post-hoc quality features from token logprobs (Gupta et al. 2024 style).

Why: after a model has answered, how confident it was token by token is the cheapest
signal of whether the answer is right. "Language model cascades: token-level uncertainty
and beyond" (Gupta et al., 2024) shows that a handful of order statistics of the token
logprobs (not just their mean) predict correctness well enough to decide whether to
escalate. This module turns logprobs into a fixed, named feature vector that a calibrated
estimator maps to P(correct).

One builder serves every path, so what calibration fits on is what the engine serves:
:func:`answer_features` reads an answer in storage form (:class:`TokenLogprobs`: each token's
logprob and the logprobs of its top-k alternatives, plus the answer's text). The live engine
calls it on the answer it parsed (``cascade_core.engine.answers.ModelAnswer``), the replay on a
`ReplayDataset` cell, and calibration writes exactly what the engine parsed into the replay.
:class:`LogprobAccumulator` is the arithmetic behind it; a stream's draft also reads it while
tokens arrive (early abort), and its reading then equals the builder's on the tokens so far.
Parsing provider responses is not done here: `ModelAnswer` is the one parser.

Logprobs are never invented: an answer without logprobs has no features (``None``) and the
caller must fall back to other signals.

Conventions (documented here because the estimator must know them):

* ``-inf`` and values below :data:`LOGPROB_FLOOR` are clamped to the floor (OpenAI already
  reports ``-9999.0`` for "probability underflowed"), so every feature stays finite.
  NaN, or a positive logprob above :data:`POSITIVE_TOLERANCE`, is a data error
  (``ValueError``); tiny positive rounding noise is clamped to 0.
* A feature that is undefined is ``NaN`` (never a made-up number): ``mean_entropy`` when no
  token has top-k alternatives, ``mean_margin`` when no token has two or more, and every
  per-token statistic of an empty token list (see :func:`features_from_logprobs`).
* ``answer_parsed`` is :func:`answer_parsed` of the answer's text: the engine has no task
  parser, so "parsed" means the answer has text to grade, on every path alike.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
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
    "answer_features",
    "answer_parsed",
    "features_from_logprobs",
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
        answer_parsed: 1.0 when an answer was parsed from the text, else 0.0; given to
            :func:`features_from_logprobs`, and :func:`answer_parsed` of the text on every
            path that builds features from an answer (:func:`answer_features`).
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
    """Logprobs of one answer in storage form: what the engine parses, the replay format
    stores (``logprobs`` and ``top_logprobs``) and :func:`answer_features` reads.

    ``top_logprobs[i]`` holds the logprobs of the top-k alternatives of token ``i`` (empty
    when the provider returned none for it); ``top_logprobs`` is None when alternatives were
    not logged at all. Token strings are not needed for features.
    """

    logprobs: Sequence[float]
    top_logprobs: Sequence[Sequence[float]] | None = None


# ---------------------------------------------------------------------------- helpers


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


def _top_values(item: Sequence[float] | None, where: str) -> tuple[float, ...]:
    """The cleaned logprobs of one token's alternatives (None: the token has none)."""
    if item is None:
        return ()
    return tuple(_clean(v, where) for v in item)


def _entropy_margin(tops: Sequence[float]) -> tuple[float | None, float | None]:
    """Renormalized entropy (nats) and top-1/top-2 margin of one token's alternatives.

    Scalar ``math`` on purpose: k is small, and it keeps the arithmetic of one token
    independent of how many tokens came before it.
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


# ---------------------------------------------------------------------------- the builder


class LogprobAccumulator:
    """The feature arithmetic, fed token by token.

    Why incremental: a streamed draft is checked for early abort while its tokens arrive.
    Adding a token is O(1) for the sums (amortized; Shewchuk partials stay tiny, and
    ``math.fsum`` of them is the exactly rounded sum, independent of the order tokens came
    in) plus an O(log n) search and memmove into a sorted list for the quantiles; reading
    :meth:`features` is O(1).

    One accumulator per answer (it holds per-request state; do not share across requests).
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
        """Whether any logprobs were seen (a token, or an explicit empty list)."""
        return self._saw_logprobs

    def add(self, logprob: float, top_logprobs: Sequence[float] | None = None) -> None:
        """Add one token: its logprob and optionally the logprobs of its alternatives."""
        where = f"token {len(self._sorted)}"
        lp = _clean(logprob, where)
        tops = _top_values(top_logprobs, f"top_logprobs of {where}")
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

    def extend(
        self, logprobs: Sequence[float], top_logprobs: Sequence[Sequence[float]] | None = None
    ) -> None:
        """Add several tokens; ``top_logprobs`` (optional) has one entry per token. An empty
        ``logprobs`` still records that the provider sent logprobs (an empty answer)."""
        if top_logprobs is not None and len(top_logprobs) != len(logprobs):
            raise ValueError(
                f"top_logprobs has {len(top_logprobs)} entries for {len(logprobs)} tokens; "
                "give one entry (possibly empty) per token"
            )
        self._saw_logprobs = True
        for i, lp in enumerate(logprobs):
            self.add(lp, None if top_logprobs is None else top_logprobs[i])

    def features(self, *, answer_parsed: bool) -> LogprobFeatures | None:
        """Features of the tokens so far; None if no logprobs were ever seen.

        An empty token list gives ``lp_sum = 0.0`` (the log-probability of the empty
        sequence) and NaN for every per-token statistic and ``log_n_tokens``: there are no
        tokens to describe, and an empty answer is better caught by the empty-content signal
        than by a fake number.
        """
        if not self._saw_logprobs:
            return None
        n = len(self._sorted)
        parsed = 1.0 if answer_parsed else 0.0
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
        lp_sum = math.fsum(self._lp_partials)
        return LogprobFeatures(
            lp_sum=lp_sum,
            lp_mean=lp_sum / n,
            lp_min=float(self._sorted[0]),
            lp_median=_quantile_sorted(self._sorted, 0.5),
            lp_p10=_quantile_sorted(self._sorted, 0.1),
            lp_p25=_quantile_sorted(self._sorted, 0.25),
            log_n_tokens=math.log(n),
            mean_entropy=(
                math.fsum(self._entropy_partials) / self._n_entropy if self._n_entropy else _NAN
            ),
            mean_margin=(
                math.fsum(self._margin_partials) / self._n_margin if self._n_margin else _NAN
            ),
            answer_parsed=parsed,
            n_tokens=n,
            n_with_top=self._n_entropy,
        )


def features_from_logprobs(
    logprobs: Sequence[float],
    top_logprobs: Sequence[Sequence[float]] | None = None,
    *,
    answer_parsed: bool,
) -> LogprobFeatures:
    """Features of a whole token list (see :meth:`LogprobAccumulator.features`).

    Args:
        logprobs: the logprob of each generated token, in order.
        top_logprobs: optional, one entry per token: the logprobs of its top-k
            alternatives (empty or None for a token without). Without it, entropy and
            margin are NaN.
        answer_parsed: whether an answer was parsed from the text. Required so it is never
            guessed; :func:`answer_features` derives it from the text.

    Raises:
        ValueError: on NaN or clearly positive logprobs, or when ``top_logprobs`` does not
            have one entry per token.
    """
    accumulator = LogprobAccumulator()
    accumulator.extend(logprobs, top_logprobs)
    features = accumulator.features(answer_parsed=answer_parsed)
    assert features is not None  # extend() records logprobs even for an empty list
    return features


def answer_parsed(text: str | None) -> bool:
    """The ``answer_parsed`` flag of an answer: False only for text known to be empty.

    ``None`` (a log that kept logprobs but not the text) counts as parsed: nothing shows it
    failed.
    """
    return text is None or bool(text.strip())


def answer_features(tokens: TokenLogprobs | None, text: str | None) -> LogprobFeatures | None:
    """The post-hoc features of one answer: the one builder of live, calibration and replay.

    Args:
        tokens: the answer's token logprobs and alternatives; None when it came without
            logprobs (then there are no features: logprobs are never invented).
        text: the answer's text (None: not logged), for :func:`answer_parsed`.
    """
    if tokens is None:
        return None
    return features_from_logprobs(
        tokens.logprobs, tokens.top_logprobs, answer_parsed=answer_parsed(text)
    )
