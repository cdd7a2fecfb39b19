"""Feature assembly for the quality estimators: what is known about a query in a state.

A state is the set R of models already run. Its feature vector is the same for every model's
estimator (only the coefficients differ per (model, R)):

* ex-ante part (known before any call): log prompt length, a one-hot task tag (when the data
  has more than one task), an optional user-supplied embedding;
* per model r in R, in index order: its post-hoc features, either the token-logprob features
  of `cascade_core.signals` (when logprobs were logged), or the single logged confidence
  (``confidence_logprob``, as a logprob and as a probability), or both
  (``logprobs+confidence``: logprobs and a confidence of its own, such as a verifier's
  P(yes), `cascade_core.engine.verifier`), plus, once two or more models ran, the fraction
  of the other models in R whose answer agrees with r's;
* with several tasks (``task_slopes``), per model r in R and task t, r's primary signal
  (`PRIMARY_SIGNAL`) where the query is of task t, else 0: a slope of that signal per task.
  One signal often means different things in different tasks (an answer token's logprob on
  multiple choice, a self-verification P(True) on open answers), so a slope shared across
  tasks is miscalibrated in each; with an L2 penalty these columns shrink the per-task
  slopes toward the shared one.

The ``confidence_logprob`` signal means one thing everywhere (`confidence_signal`): the
logged confidence, else the log-probability of the whole answer (its token logprobs' sum),
else unknown; the replay loader, calibrate and the live engine all derive it that way.

Missing values stay NaN here; `LogisticModel` treats NaN as the training mean (neutral).
The live path (one `QueryObservation`, `table_from_observation`) and the replay path (a whole
logged dataset, `cascade_core.fitting.features`) build the same columns through the same
helpers (`ante_matrix`, `agreement_matrix`, `posthoc_from_*`), and the token-logprob features
of both come from `cascade_core.signals.answer_features` on the same stored values (logprobs,
their top-k alternatives, the answer text), so replay numbers carry over to production.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from cascade_core.signals import FEATURE_NAMES, TokenLogprobs, answer_features, normalize_answer
from cascade_core.validation import StrictInt, validate_as

CONFIDENCE_SIGNAL = "confidence_logprob"
CONFIDENCE_FEATURES = ("conf_logprob", "conf_prob")
# Logged confidences below e^-20 (~2e-9) all mean "no confidence at all"; clipping them keeps
# a few extreme values from dominating the standardisation of the feature.
CONFIDENCE_FLOOR = -20.0

PostHocSource = str  # "logprobs" | "confidence" | "logprobs+confidence" | "none"
COMBINED_SOURCE = "logprobs+confidence"
# The raw signal of each post-hoc source that a model's estimates start from (its floor
# calibration, `cascade_core.fitting.quality`) and that gets per-task slopes. With both
# sources it is the confidence: a verifier's P(yes) where one was asked, else the answer's
# log-probability (`confidence_signal`), so every model has its own signal there.
PRIMARY_SIGNAL = {
    "confidence": "conf_logprob",
    "logprobs": "lp_mean",
    COMBINED_SOURCE: "conf_logprob",
}


def confidence_signal(logged: float | None, answer_logprob: float | None) -> float:
    """The ``confidence_logprob`` of one answer (module docstring): ``logged`` when known,
    else ``answer_logprob`` (the sum of its token logprobs), else NaN."""
    if logged is not None and not math.isnan(logged):
        return float(logged)
    if answer_logprob is not None and not math.isnan(answer_logprob):
        return float(answer_logprob)
    return math.nan


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns exist and in which order; saved in a profile so the live path rebuilds
    exactly the columns the coefficients were fitted on."""

    model_names: tuple[str, ...]
    tasks: tuple[str, ...] = ()
    embedding_dim: int = 0
    posthoc_source: PostHocSource = "confidence"
    use_agreement: bool = True
    task_slopes: bool = False

    @property
    def n_models(self) -> int:
        return len(self.model_names)

    @property
    def primary_signal(self) -> str | None:
        """The post-hoc feature each model's estimates start from (`PRIMARY_SIGNAL`)."""
        return PRIMARY_SIGNAL.get(self.posthoc_source)

    @property
    def slope_tasks(self) -> tuple[str, ...]:
        """The tasks that get a slope of their own on each run model's primary signal."""
        if self.task_slopes and len(self.tasks) > 1 and self.primary_signal is not None:
            return self.tasks
        return ()

    @property
    def posthoc_names(self) -> tuple[str, ...]:
        if self.posthoc_source == "logprobs":
            return FEATURE_NAMES
        if self.posthoc_source == "confidence":
            return CONFIDENCE_FEATURES
        if self.posthoc_source == COMBINED_SOURCE:
            return FEATURE_NAMES + CONFIDENCE_FEATURES
        return ()

    def ante_names(self) -> list[str]:
        names = ["log_prompt_chars"]
        if len(self.tasks) > 1:
            names += [f"task={t}" for t in self.tasks]
        names += [f"embedding[{i}]" for i in range(self.embedding_dim)]
        return names

    def state_names(self, ran: Sequence[int]) -> list[str]:
        """Column names of the feature matrix in state ``ran`` (for inspection and docs)."""
        names = self.ante_names()
        for r in sorted(ran):
            model = self.model_names[r]
            names += [f"{model}:{p}" for p in self.posthoc_names]
            if self.use_agreement and len(ran) >= 2:
                names.append(f"{model}:agreement")
        return names + self.task_slope_names(ran)

    def task_slope_names(self, ran: Sequence[int]) -> list[str]:
        """Names of the per-task slope columns of state ``ran`` (the last columns)."""
        return [
            f"task={t}*{self.model_names[r]}:{self.primary_signal}"
            for r in sorted(ran)
            for t in self.slope_tasks
        ]

    def to_dict(self) -> dict[str, object]:
        return {
            "model_names": list(self.model_names),
            "tasks": list(self.tasks),
            "embedding_dim": self.embedding_dim,
            "posthoc_source": self.posthoc_source,
            "use_agreement": self.use_agreement,
            "task_slopes": self.task_slopes,
        }

    @classmethod
    def from_dict(
        cls, data: Any, *, source: str = "feature spec", at: Sequence[str | int] = ()
    ) -> FeatureSpec:
        """The spec `to_dict` wrote, checked completely (`FeatureSpecFields`); errors are one
        `InvalidInputError` naming ``source`` and the field's location ``at`` inside it."""
        fields = validate_as(FeatureSpecFields, data, source, at)
        return cls(
            model_names=tuple(fields.model_names),
            tasks=tuple(fields.tasks),
            embedding_dim=fields.embedding_dim,
            posthoc_source=fields.posthoc_source,
            use_agreement=fields.use_agreement,
            task_slopes=fields.task_slopes,
        )


# Embeddings of common models have 384 to 3072 dimensions; a spec claiming more is corrupt,
# and its column names would be built for every state.
MAX_EMBEDDING_DIM = 16384


class FeatureSpecFields(BaseModel):
    """The JSON shape of a `FeatureSpec` (`FeatureSpec.to_dict`)."""

    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)

    model_names: list[Annotated[StrictStr, Field(min_length=1)]] = Field(min_length=1)
    tasks: list[StrictStr]
    embedding_dim: StrictInt = Field(ge=0, le=MAX_EMBEDDING_DIM)
    posthoc_source: Literal["logprobs", "confidence", "logprobs+confidence", "none"]
    use_agreement: StrictBool
    # Profiles written before per-task slopes existed have none.
    task_slopes: StrictBool = False

    @field_validator("model_names", "tasks")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"names must be unique; repeated: {repeated}")
        return names


@dataclass(frozen=True)
class QueryObservation:
    """One live query: its inputs and, per model already run, its post-hoc signals.

    ``posthoc[m]`` maps feature names (`FeatureSpec.posthoc_names`) to values; use
    `posthoc_from_confidence` or `posthoc_from_logprobs` (the live engine's answers carry the
    same values as `LogprobFeatures.as_dict`) to build it. Unknown values may be left out
    (they count as the training mean).
    """

    prompt: str = ""
    task: str = ""
    embedding: np.ndarray | None = None
    posthoc: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    answers: Mapping[int, str | None] = field(default_factory=dict)


def posthoc_from_confidence(confidence_logprob: float | None) -> dict[str, float]:
    """The two confidence features from one logged log-probability (None: unknown)."""
    if confidence_logprob is None or math.isnan(confidence_logprob):
        return {name: math.nan for name in CONFIDENCE_FEATURES}
    clipped = max(float(confidence_logprob), CONFIDENCE_FLOOR)
    return {"conf_logprob": clipped, "conf_prob": math.exp(clipped)}


def posthoc_from_logprobs(
    tokens: TokenLogprobs | None, answer: str | None = None
) -> dict[str, float]:
    """The token-logprob features of one answer (`answer_features`); all NaN without
    logprobs. ``answer`` is the answer's text (None: not logged)."""
    features = answer_features(tokens, answer)
    if features is None:
        return {name: math.nan for name in FEATURE_NAMES}
    return features.as_dict()


@dataclass(frozen=True)
class FeatureTable:
    """Features of n queries: ex-ante (n, a), post-hoc (n, k, p), pairwise agreement (n, k, k),
    and for per-task slopes the queries' task indicators (n, T) and which post-hoc feature
    the slopes multiply (`task_slope_inputs`)."""

    ante: np.ndarray
    posthoc: np.ndarray
    agree: np.ndarray | None
    slope_tasks: np.ndarray | None = None
    slope_feature: int | None = None

    @property
    def n_queries(self) -> int:
        return int(self.ante.shape[0])

    def state_matrix(self, ran: Sequence[int]) -> np.ndarray:
        """The feature matrix (n, d_R) of state ``ran``; column order as `state_names`."""
        members = sorted(ran)
        blocks = [self.ante]
        for r in members:
            blocks.append(self.posthoc[:, r, :])
            if self.agree is not None and len(members) >= 2:
                others = [b for b in members if b != r]
                fraction = self.agree[:, r, others].sum(axis=1) / len(others)
                blocks.append(fraction[:, None])
        if self.slope_tasks is not None and self.slope_feature is not None:
            for r in members:
                signal = self.posthoc[:, r, self.slope_feature][:, None]
                # 0 for the other tasks; an unknown signal stays unknown (NaN) in every column
                blocks.append(
                    np.where(self.slope_tasks == 1, signal, np.where(np.isnan(signal), np.nan, 0.0))
                )
        return np.concatenate(blocks, axis=1)


def ante_matrix(
    spec: FeatureSpec,
    prompts: Sequence[str],
    tasks: Sequence[str],
    embeddings: np.ndarray | None,
) -> np.ndarray:
    """Ex-ante columns for n queries. An unseen task gets all-zero task columns (the base
    rate); a missing embedding is NaN (neutral)."""
    n = len(prompts)
    columns = [np.log1p(np.array([len(p) for p in prompts], dtype=float))[:, None]]
    if len(spec.tasks) > 1:
        columns.append(task_indicators(spec.tasks, tasks))
    if spec.embedding_dim:
        if embeddings is None:
            columns.append(np.full((n, spec.embedding_dim), math.nan))
        else:
            emb = np.asarray(embeddings, dtype=float).reshape(n, -1)
            if emb.shape[1] != spec.embedding_dim:
                raise ValueError(
                    f"embedding has {emb.shape[1]} dimensions, the estimator was fitted "
                    f"with {spec.embedding_dim}"
                )
            columns.append(emb)
    return np.concatenate(columns, axis=1)


def task_indicators(known: Sequence[str], tasks: Sequence[str]) -> np.ndarray:
    """One-hot (n, len(known)) of each query's task; an unseen task is all zeros."""
    onehot = np.array([[float(t == k) for k in known] for t in tasks], dtype=float)
    return onehot.reshape(len(tasks), len(known))


def task_slope_inputs(
    spec: FeatureSpec, tasks: Sequence[str]
) -> tuple[np.ndarray | None, int | None]:
    """The `FeatureTable` fields of per-task slopes: task indicators over `slope_tasks` and
    the primary signal's index among the post-hoc features (both None without slopes)."""
    if not spec.slope_tasks or spec.primary_signal not in spec.posthoc_names:
        return None, None
    return task_indicators(spec.slope_tasks, tasks), spec.posthoc_names.index(spec.primary_signal)


def agreement_matrix(answers: np.ndarray) -> np.ndarray:
    """agree[i, a, b] = 1.0 when the answers of models a and b agree on query i (a != b)."""
    normalised = np.array(
        [[normalize_answer(a) for a in row] for row in answers], dtype=object
    ).reshape(answers.shape)
    n, k = answers.shape
    agree = np.zeros((n, k, k))
    for a in range(k):
        for b in range(k):
            if a != b:
                same = [
                    x is not None and x == y
                    for x, y in zip(normalised[:, a], normalised[:, b], strict=True)
                ]
                agree[:, a, b] = same
    return agree


def table_from_observation(spec: FeatureSpec, observation: QueryObservation) -> FeatureTable:
    """Features of one live query (a table with one row)."""
    k, names = spec.n_models, spec.posthoc_names
    posthoc = np.full((1, k, len(names)), math.nan)
    for model, values in observation.posthoc.items():
        posthoc[0, model, :] = [values.get(name, math.nan) for name in names]
    agree = None
    if spec.use_agreement:
        answers = np.empty((1, k), dtype=object)
        for model, answer in observation.answers.items():
            answers[0, model] = answer
        agree = agreement_matrix(answers)
    embedding = (
        None if observation.embedding is None else np.asarray(observation.embedding)[None, :]
    )
    ante = ante_matrix(spec, [observation.prompt], [observation.task], embedding)
    slope_tasks, slope_feature = task_slope_inputs(spec, [observation.task])
    return FeatureTable(
        ante=ante,
        posthoc=posthoc,
        agree=agree,
        slope_tasks=slope_tasks,
        slope_feature=slope_feature,
    )
