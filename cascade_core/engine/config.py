"""Router configuration: the model ladder, the strategy, the budget; from files or keywords.

Every model section names the *environment variable* that holds its API key, never the key:
configs are committed to repositories and printed in logs.

Every field refuses what would only fail later, far from its cause: numbers must be finite,
integers must be integers (``True`` is not 1), and a key pasted where a variable name belongs
is refused without being echoed. Errors are one line naming each field (`validation`);
pydantic's own messages are never shown with their input (``hide_input_in_errors``), since
the input may be a key.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from cascade_core.errors import InvalidInputError
from cascade_core.key_shapes import looks_like_key, mask_keys
from cascade_core.latency import LatencyWeights
from cascade_core.sessions.policy import SessionPolicy, ToolLoop
from cascade_core.textfiles import TextFileError, read_text
from cascade_core.validation import MAX_COUNT, Number, StrictInt, validate_as

Probability = Annotated[Number, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[Number, Field(ge=0.0)]
Count = Annotated[StrictInt, Field(ge=1, le=MAX_COUNT)]

# What `api_key_env` accepts: the conventional shape of an environment variable's name.
ENV_NAME_RULE = (
    "upper-case letters, digits and underscores, not starting with a digit, at most 64 "
    "characters, e.g. OPENAI_API_KEY or MY_TEAM_KEY_2"
)
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
# Request arguments that carry credentials; none of them may be written into a config.
_CREDENTIAL_PARAM = re.compile(
    r"(?:^|_)(?:api_key|key|token|secret|password|credentials?)(?:$|_)", re.IGNORECASE
)
# The one refusal of a key given in code, shared by the framework adapters.
API_KEY_REFUSED = (
    "api_key is not accepted: name the environment variable holding each model's key "
    "in its api_key_env (keys never go in code, configs or traces)"
)


def is_env_var_name(value: str) -> bool:
    """Whether ``value`` is a conventional variable name and not a key (see `ENV_NAME_RULE`).

    Why so strict: a name and a key are both strings, and a key that slips through is then
    printed in every "variable ... is not set" error. Real names are upper case; keys are
    mixed case, carry a known prefix or a long random-looking run, which `looks_like_key`
    recognises (also within one underscore-separated part: ``AKIA...`` ids are upper case).
    """
    if not _ENV_NAME.fullmatch(value):
        return False
    return not any(looks_like_key(part) for part in (value, *value.split("_")))


def env_var_name_only(what: str) -> AfterValidator:
    """For a field that names the environment variable holding a secret (``what``): anything
    else is refused, and the message never shows the value (it may be the secret itself)."""

    def check(value: str) -> str:
        if not is_env_var_name(value):
            raise ValueError(
                f"must be the NAME of an environment variable ({ENV_NAME_RULE}), never the "
                f"{what} itself (the value given is not shown)"
            )
        return value

    return AfterValidator(check)


KeyVariable = Annotated[str, env_var_name_only("key")]
UrlVariable = Annotated[str, env_var_name_only("URL")]


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        allow_inf_nan=False,
        hide_input_in_errors=True,
    )


class ModelSpec(_Strict):
    """One rung of the ladder."""

    model: str = Field(min_length=1, description="LiteLLM model id, e.g. 'openai/gpt-4o-mini'")
    name: str | None = Field(
        None, min_length=1, description="short label in traces; defaults to `model`"
    )
    api_base: str | None = None
    api_key_env: KeyVariable | None = Field(
        None,
        description="NAME of the environment variable holding the API key, never the key: "
        f"{ENV_NAME_RULE}; refused when it looks like a key (known key prefixes, long "
        "random-looking runs), and then never echoed",
    )
    input_cost_per_token: NonNegative | None = Field(
        None, description="USD per input token; default: LiteLLM's cost map"
    )
    output_cost_per_token: NonNegative | None = None
    cache_read_input_cost_per_token: NonNegative | None = Field(
        None,
        description="USD per input token read from the provider's prompt cache; default: "
        "LiteLLM's cache_read_input_token_cost when the input price is LiteLLM's too, else "
        "the input price",
    )
    cache_creation_input_cost_per_token: NonNegative | None = Field(
        None,
        description="USD per input token written to the prompt cache (Anthropic bills writes "
        "above the input price); default as for cache reads",
    )
    context_window: Count | None = Field(
        None, description="max input tokens; default: LiteLLM's model info, else unlimited"
    )
    supports_logprobs: StrictBool | None = Field(
        None, description="default: detected from LiteLLM's supported parameters"
    )
    prior_quality: Probability | None = Field(
        None, description="P(correct) before any call, until a fitted profile replaces it"
    )
    expected_output_tokens: Count = Field(
        256, description="output length assumed by the cost estimate when max_tokens is unset"
    )
    extra_params: dict[str, Any] = Field(
        default_factory=dict, description="extra LiteLLM keyword arguments for this model"
    )

    @property
    def label(self) -> str:
        return self.name or self.model

    @field_validator("extra_params")
    @classmethod
    def _no_secrets_in_extra(cls, value: dict[str, Any]) -> dict[str, Any]:
        credentials = sorted(str(k) for k in value if _CREDENTIAL_PARAM.search(str(k)))
        if credentials:
            raise ValueError(
                f"{credentials} not accepted here: credentials never go in a config; set "
                "api_key_env to the name of the variable holding the key"
            )
        return value


class StrategySpec(_Strict):
    name: Literal["routing", "threshold_cascade", "optimal_cascade", "cascade_routing"] = (
        "cascade_routing"
    )
    variant: Literal["exact", "greedy", "no_expect"] = "exact"
    max_depth: Count | None = None
    threshold: Probability = 0.5
    draft: StrictBool | Literal["auto"] = Field(
        "auto",
        description="cascade_routing: run the cheapest model first (true), plan the first "
        "step (false), or use what `calibrate --budget/--target-quality` chose on the "
        "calibration prompts (auto; false without such a profile)",
    )

    @model_validator(mode="after")
    def _draft_is_cascade_routing(self) -> StrategySpec:
        if self.draft is not True or self.name == "cascade_routing":
            return self
        raise ValueError(
            f"draft: only cascade_routing has a first step to choose; {self.name} ignores "
            "it, remove it"
        )

    def parameters(self, lam: float) -> dict[str, Any]:
        """Keyword arguments for ``make_strategy``."""
        if self.name == "cascade_routing":
            return {
                "lam": lam,
                "variant": self.variant,
                "max_depth": self.max_depth,
                "draft": self.draft is True,
            }
        if self.name == "threshold_cascade":
            return {"threshold": self.threshold}
        return {"lam": lam}


class BudgetSpec(_Strict):
    """How cost is traded against quality."""

    lam: NonNegative | None = Field(
        None, alias="lambda", description="quality points one USD is worth (per request)"
    )
    target_cost_usd: NonNegative | None = Field(
        None, description="average cost per request; lambda comes from the fitted profile"
    )
    max_cost_usd: NonNegative | None = Field(
        None, description="hard cap per request, checked before every call"
    )
    max_cost_usd_per_session: NonNegative | None = Field(
        None,
        description="hard cap across all requests of one session (an agent run), checked "
        "before every call like max_cost_usd; requests without a session_id ignore it",
    )

    @model_validator(mode="after")
    def _one_way_to_set_lambda(self) -> BudgetSpec:
        if self.lam is not None and self.target_cost_usd is not None:
            raise ValueError("give either lambda or target_cost_usd, not both")
        return self


class SessionSpec(_Strict):
    """State kept between the requests of one session (a conversation or an agent run, named
    by the request's ``session_id``); see `cascade_core.sessions.policy` for the policies."""

    policy: SessionPolicy = "per_turn"
    tool_loop: ToolLoop = Field(
        "continue",
        description="continue: a tool result goes back to the model that issued the call; "
        "decide: the policy decides tool-result requests too",
    )
    store: Literal["memory", "redis"] = Field(
        "memory", description="memory: this process (LRU); redis: shared by every replica"
    )
    url: str | None = Field(
        None, description="Redis URL without credentials, e.g. redis://cache:6379/0"
    )
    url_env: UrlVariable | None = Field(
        None, description="NAME of the environment variable holding a Redis URL with a password"
    )
    prefix: str = Field("cascade-router:session:", min_length=1, description="Redis key prefix")
    max_sessions: Count = Field(10_000, description="sessions kept in memory (LRU beyond)")
    ttl_s: Annotated[Number, Field(gt=0)] = Field(
        3600.0, description="a session is forgotten this long after its last request"
    )

    @field_validator("url")
    @classmethod
    def _no_credentials_in_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        authority, _, rest = value.partition("://")[2].partition("/")
        if "@" in authority or "password" in rest.lower():
            raise ValueError(
                "credentials never go in a config (the value given is not shown); put the "
                "URL in an environment variable and name it in url_env"
            )
        return value

    @model_validator(mode="after")
    def _store_settings(self) -> SessionSpec:
        if self.url is not None and self.url_env is not None:
            raise ValueError("give either url or url_env, not both")
        has_url = self.url is not None or self.url_env is not None
        if self.store == "redis" and not has_url:
            raise ValueError("store 'redis' needs url (or url_env naming a variable with it)")
        if self.store == "memory" and has_url:
            raise ValueError("url and url_env apply to store 'redis' only")
        return self


DEFAULT_VERIFIER_PROMPT = (
    "Is the proposed answer to the question below correct? Reply with one word: Yes or No.\n\n"
    "Question:\n{question}\n\nProposed answer:\n{answer}\n\nIs the proposed answer correct?"
)
# The placeholders a verifier prompt must hold, each filled once per verification.
VERIFIER_PLACEHOLDERS = frozenset({"question", "answer"})


class VerifierSpec(_Strict):
    """An extra call that asks a model whether an answer is correct and reads P(yes) from
    its first token's logprobs (`cascade_core.engine.verifier`): a post-hoc signal for
    answers that carry none of their own (providers without logprobs, tool-call arguments)."""

    model: ModelSpec = Field(
        description="the verifier model; it must return logprobs (supports_logprobs)"
    )
    verify: Literal["no_logprobs", "always"] = Field(
        "no_logprobs",
        description="no_logprobs: verify answers without token logprobs (models that return "
        "none, tool calls); always: every non-final answer of the covered models",
    )
    models: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, description="ladder labels whose answers are verified; default: every model"
    )
    prompt: str = Field(
        DEFAULT_VERIFIER_PROMPT,
        min_length=1,
        description="the verifier's user message; {question} and {answer} are filled in",
    )
    max_answer_chars: Count = Field(
        4000, description="longer answers are cut to this many characters in the prompt"
    )

    @field_validator("prompt")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError:
            raise ValueError(
                "unbalanced brace: write a literal { or } as {{ or }} (the placeholders are "
                "{question} and {answer})"
            ) from None
        if any(spec or conversion for _, _, spec, conversion in parsed):
            raise ValueError(
                "write the placeholders plainly as {question} and {answer}, without a "
                "conversion (!r) or format (:...)"
            )
        named = {name for _, name, _, _ in parsed if name is not None}
        other = sorted(named - VERIFIER_PLACEHOLDERS)
        if other:
            shown = ", ".join("{" + mask_keys(name)[:40] + "}" for name in other)
            raise ValueError(
                f"unknown placeholder(s) {shown}: only {{question}} and {{answer}} are "
                "filled in (write a literal brace as {{ or }})"
            )
        missing = sorted(VERIFIER_PLACEHOLDERS - named)
        if missing:
            raise ValueError(
                "must contain "
                + " and ".join("{" + m + "}" for m in missing)
                + " (where the question and the answer to verify go)"
            )
        return value

    @field_validator("models")
    @classmethod
    def _unique_models(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            repeated = sorted({label for label in value if value.count(label) > 1})
            if repeated:
                raise ValueError(f"repeated labels {repeated}: name each model once")
        return value


class EarlyCommitSpec(_Strict):
    """Stream a non-final draft to the caller once its first tokens make acceptance likely.

    The risk: a committed draft IS the answer. Once its text is sent nothing escalates after
    it, even when the whole draft, judged at the end, would have been escalated (the trace
    says so in ``would_have_escalated``). Needs a profile whose ``early_commit`` section
    `cascade-router calibrate` fitted (P(accept | prefix)); there is no uncalibrated fallback.
    """

    enabled: StrictBool = Field(False, description="commit confident drafts early (streams)")
    min_tokens: Count = Field(
        8, description="tokens a draft must have streamed before it may be committed"
    )
    p_accept: Probability = Field(
        0.95,
        description="commit when the fitted P(the cascade accepts the whole draft | its "
        "prefix) reaches this; higher is safer and commits less often",
    )


class RouterConfig(_Strict):
    models: list[ModelSpec] = Field(min_length=1)
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    session: SessionSpec = Field(default_factory=SessionSpec)
    profile: Path | None = Field(None, description="fitted estimator profile (JSON)")
    num_retries: StrictInt = Field(
        2, ge=0, le=100, description="LiteLLM retries before a model counts as failed"
    )
    timeout_s: Number = Field(60.0, gt=0, description="per-call timeout passed to LiteLLM")
    prior_std: Probability = Field(
        0.2, description="uncertainty of the ex-ante priors when no profile is fitted"
    )
    early_abort: StrictBool = Field(
        True, description="stop streaming a draft once its logprobs make escalation certain"
    )
    latency_weights: LatencyWeights = Field(
        default_factory=LatencyWeights,
        description="USD one second of time to first token / total time is worth: the "
        "strategy then trades cost + priced expected latency (a request may override it)",
    )
    hedge: StrictBool = Field(
        True,
        description="async streams: start the next model alongside a draft when the latency "
        "weights say the time saved is worth the expected extra cost (never with zero weights)",
    )
    verifier: VerifierSpec | None = Field(
        None,
        description="optional verification call: a model asked whether an answer is correct "
        "(README: Configuration, verifier); its cost counts in every estimate and cap",
    )
    early_commit: EarlyCommitSpec = Field(
        default_factory=EarlyCommitSpec,
        description="streams: send a draft early when its prefix makes acceptance likely "
        "(a committed draft is the answer; off by default)",
    )

    @model_validator(mode="after")
    def _commit_before_verification(self) -> RouterConfig:
        if (
            self.early_commit.enabled
            and self.verifier is not None
            and self.verifier.verify == "always"
        ):
            raise ValueError(
                "early_commit.enabled does not combine with verifier.verify 'always': a "
                "committed draft is sent before its verification could judge it (use "
                "verify 'no_logprobs', which never verifies the logprob drafts that commit)"
            )
        return self

    @model_validator(mode="after")
    def _unique_labels(self) -> RouterConfig:
        labels = [m.label for m in self.models]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {duplicates}")
        if self.verifier is not None and self.verifier.model.label in labels:
            raise ValueError(
                f"verifier.model: {mask_keys(self.verifier.model.label)[:40]!r} is also a "
                "ladder model's name; give the verifier its own name (verifier.model.name), "
                "so traces and usage tell its calls apart"
            )
        covered = self.verifier.models if self.verifier is not None else None
        unknown = sorted(set(covered or ()) - set(labels))
        if unknown:
            shown = [mask_keys(label)[:40] for label in unknown]
            raise ValueError(
                f"verifier.models: {shown} not in the ladder {labels}; use the models' "
                "names (or model ids when unnamed)"
            )
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> RouterConfig:
        """Load a YAML or JSON file; relative profile paths resolve against the file.

        Every problem with the file (missing, not UTF-8, a syntax error, a bad field) is one
        `InvalidInputError` naming the file, and the line:column for syntax errors.
        """
        path = Path(path)
        try:
            text = read_text(path).removeprefix("\ufeff")
        except TextFileError as error:
            if error.line is None:  # missing, a directory, unreadable
                raise InvalidInputError(f"config {error}; check the path") from None
            raise
        parse = _parse_json if path.suffix.lower() == ".json" else _parse_yaml
        data = parse(text, path)
        if not isinstance(data, dict):
            raise InvalidInputError(
                f"{path}: expected a mapping of fields (models, strategy, budget, ...) at the "
                "top level"
            )
        config = cls.from_dict(data, source=str(path))
        if config.profile is not None and not config.profile.is_absolute():
            config = config.model_copy(update={"profile": path.parent / config.profile})
        return config

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> RouterConfig:
        """Validate a mapping; errors name each offending field and what was expected."""
        if not isinstance(data, dict):
            raise InvalidInputError(
                f"{source}: expected a mapping of fields (models, strategy, budget, ...), "
                f"got {type(data).__name__}"
            )
        return validate_as(cls, data, source)

    def replace(self, source: str = "config", **fields: Any) -> RouterConfig:
        """A copy with ``fields`` changed, validated like any config (``model_copy`` is not:
        an override such as ``timeout_s=inf`` would slip through it)."""
        return type(self).from_dict({**self.model_dump(by_alias=True), **fields}, source=source)


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            f"{path}:{error.lineno}:{error.colno}: invalid JSON ({error.msg}); fix the syntax "
            "there (a YAML config needs a .yaml or .yml name)"
        ) from None
    except RecursionError:
        raise InvalidInputError(f"{path}: JSON nested too deeply") from None


def _parse_yaml(text: str, path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = mask_keys(error.problem or error.context or "syntax error")
        raise InvalidInputError(
            f"{where}: invalid YAML ({problem}); fix the syntax there (indentation, a "
            "missing ':' or an unclosed quote or bracket)"
        ) from None
    except (yaml.YAMLError, RecursionError) as error:
        raise InvalidInputError(f"{path}: invalid YAML ({type(error).__name__})") from None
