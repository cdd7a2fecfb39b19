"""Early commit: P(accept | prefix) as the engine applies it, and the commit rule.

Why: a streamed draft is buffered until it is judged whole, so a chat UI on a cascade shows
nothing for as long as the draft takes. When the first k tokens already make it likely that
the cascade will accept the draft, its text can stream from there on. The probability must
be calibrated on the user's own traffic: `cascade-router calibrate` fits one logistic
regression per drafting model (`cascade_core.fitting.commit_model`), labelled by the
engine's own decision on each whole calibration answer, and stores it in the profile's
``early_commit`` section, which this module reads. Without that section early commit is
off: no heuristic stands in for a calibrated probability.

The features of a prefix are the live draft's running logprob features (the same
`LogprobFeatures` early abort reads) and the model's ex-ante quality estimate.

The risk is documented where it is enabled (`EarlyCommitSpec`): a committed draft is the
answer, even if judged whole it would have been escalated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cascade_core.engine.config import RouterConfig
from cascade_core.errors import InvalidInputError
from cascade_core.estimators.logistic import LogisticModel
from cascade_core.estimators.profile import read_profile_document
from cascade_core.signals import LogprobFeatures
from cascade_core.validation import StrictInt, validate_as

# The profile key the prefix model is stored under (version-1 profile readers ignore it).
SECTION = "early_commit"
# The prefix features, in the fitted regressions' order: the running logprob statistics of
# the tokens so far and the model's ex-ante quality.
FEATURES = ("lp_mean", "lp_min", "lp_p25", "log_n_tokens", "ex_ante_quality")
# Prefix lengths calibrate fits at; the engine checks a draft when it reaches each of them
# (from ``min_tokens`` on), so every look is one the probability was calibrated for.
PREFIX_LENGTHS = (4, 8, 16, 32)


def prefix_vector(features: LogprobFeatures, ex_ante_quality: float) -> np.ndarray:
    """The regression's input for a prefix (`FEATURES` order): fitting and serving both
    build it here, so what is learnt is what is served."""
    return np.array(
        [
            features.lp_mean,
            features.lp_min,
            features.lp_p25,
            features.log_n_tokens,
            ex_ante_quality,
        ],
        dtype=float,
    )


def commits(p_accept: float, threshold: float) -> bool:
    """The commit rule: monotone in the threshold (a lower one commits whatever a higher
    one commits)."""
    return p_accept >= threshold


class _Section(BaseModel):
    """The JSON shape of the profile's ``early_commit`` section (other keys, such as the
    fit's diagnostics, are the report's and are ignored)."""

    model_config = ConfigDict(extra="allow", strict=True, hide_input_in_errors=True)

    features: list[str]
    prefix_lengths: list[Annotated[StrictInt, Field(ge=1)]] = Field(min_length=1)
    models: dict[str, Any]


@dataclass(frozen=True)
class PrefixModel:
    """P(the cascade accepts the whole draft | its first tokens), per drafting model.

    A model absent from ``models`` never commits early (calibrate saw no draft of it
    longer than the shortest prefix length). A model whose drafts all had one outcome has a
    constant model: the rule of succession (`cascade_core.fitting.commit_model`).
    """

    lengths: tuple[int, ...]
    models: dict[str, LogisticModel]

    def p_accept(
        self, label: str, features: LogprobFeatures, ex_ante_quality: float
    ) -> float | None:
        """The calibrated probability, in [0, 1]; None when ``label`` has no fitted model
        or the prefix has no tokens."""
        model = self.models.get(label)
        if model is None or features.n_tokens == 0:
            return None
        p = float(model.predict(prefix_vector(features, ex_ante_quality)))
        return p if math.isfinite(p) else None

    def to_section(self) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "prefix_lengths": list(self.lengths),
            "models": {label: m.to_dict() for label, m in self.models.items()},
        }

    @classmethod
    def from_section(cls, data: Any, labels: Sequence[str], source: str) -> PrefixModel:
        """The section `to_section` wrote, checked completely; one `InvalidInputError`
        naming the file and the field otherwise."""
        at = (SECTION,)
        section = validate_as(_Section, data, source, at)
        if tuple(section.features) != FEATURES:
            raise InvalidInputError(
                f"{source}: {SECTION}.features: fitted on {section.features}, this version "
                f"reads {list(FEATURES)}; refit with `cascade-router calibrate`"
            )
        lengths = tuple(section.prefix_lengths)
        if list(lengths) != sorted(set(lengths)):
            raise InvalidInputError(
                f"{source}: {SECTION}.prefix_lengths: expected distinct ascending token counts"
            )
        unknown = sorted(set(section.models) - set(labels))
        if unknown:
            raise InvalidInputError(
                f"{source}: {SECTION}.models: {unknown} are not in the ladder {list(labels)}; "
                "refit the profile for this ladder"
            )
        models = {
            label: LogisticModel.from_dict(
                value, len(FEATURES), source=source, at=(*at, "models", label)
            )
            for label, value in section.models.items()
        }
        return cls(lengths=lengths, models=models)


@dataclass(frozen=True)
class CommitDecision:
    """One look at a draft's prefix: the probability and whether it commits."""

    p_accept: float
    threshold: float
    n_tokens: int

    @property
    def commit(self) -> bool:
        return commits(self.p_accept, self.threshold)

    def describe(self, label: str) -> str:
        return (
            f"early commit: {label} after {self.n_tokens} tokens, P(accept | prefix) "
            f"{self.p_accept:.3f} >= {self.threshold:g}; its answer is the answer (no "
            "escalation after commit)"
        )


@dataclass(frozen=True)
class EarlyCommit:
    """The configured policy: the fitted prefix model and when to look and commit."""

    model: PrefixModel
    min_tokens: int
    threshold: float

    @property
    def checkpoints(self) -> tuple[int, ...]:
        """The prefix lengths a draft is looked at: the fitted ones from ``min_tokens`` on."""
        return tuple(k for k in self.model.lengths if k >= self.min_tokens)

    def checkpoint(self, n_tokens: int) -> int | None:
        """The latest checkpoint a draft of ``n_tokens`` tokens has reached (None: none)."""
        reached = [k for k in self.checkpoints if k <= n_tokens]
        return reached[-1] if reached else None

    def decide(
        self, label: str, features: LogprobFeatures, ex_ante_quality: float
    ) -> CommitDecision | None:
        p = self.model.p_accept(label, features, ex_ante_quality)
        if p is None:
            return None
        return CommitDecision(p, self.threshold, features.n_tokens)


def load_early_commit(config: RouterConfig, labels: Sequence[str]) -> EarlyCommit | None:
    """The policy of ``config`` (None when early commit is disabled), its prefix model read
    from the profile; enabling it without a fitted prefix model is an error, not a guess."""
    spec = config.early_commit
    if not spec.enabled:
        return None
    if config.profile is None:
        raise InvalidInputError(
            "early_commit.enabled: needs a profile fitted by `cascade-router calibrate` "
            "(set `profile:`), whose early_commit section holds P(accept | prefix)"
        )
    source = str(config.profile)
    section = read_profile_document(config.profile).get(SECTION)
    if section is None:
        raise InvalidInputError(
            f"{source}: no {SECTION} section; refit with `cascade-router calibrate` on answers "
            "with token logprobs, or set early_commit.enabled: false"
        )
    model = PrefixModel.from_section(section, labels, source)
    policy = EarlyCommit(model, spec.min_tokens, spec.p_accept)
    if not policy.checkpoints:
        raise InvalidInputError(
            f"early_commit.min_tokens: {spec.min_tokens} is past every prefix length the "
            f"profile's model was fitted at {list(model.lengths)}; lower it or refit"
        )
    return policy
