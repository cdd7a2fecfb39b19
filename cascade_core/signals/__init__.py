"""Post-hoc quality signals: pure, fast functions over answers already produced.

Why a separate package: these run on the live path after every model call, so they depend
only on numpy (and ``jsonschema``, already required by LiteLLM, for tool-call arguments);
fitting estimators on them (scikit-learn etc.) lives elsewhere.

* :mod:`.logprob_features`: token-logprob features (Gupta et al. 2024), batch and streaming.
* :mod:`.agreement`: agreement between the answers of models already run.
* :mod:`.tool_calls`: tool-call validity and finish-state signals, for answers without
  logprobs.
"""

from cascade_core.signals.agreement import (
    DEFAULT_LETTERS,
    agreement_fractions,
    answers_agree,
    extract_choice_letter,
    normalize_answer,
)
from cascade_core.signals.logprob_features import (
    FEATURE_NAMES,
    LOGPROB_FLOOR,
    POSITIVE_TOLERANCE,
    LogprobAccumulator,
    LogprobFeatures,
    TokenLogprobs,
    features_from_logprobs,
    features_from_response,
    token_logprobs_from_response,
)
from cascade_core.signals.tool_calls import (
    NO_PARAMETERS_SCHEMA,
    ResponseSignals,
    ToolCallCheck,
    ToolCallSignals,
    check_tool_calls,
    message_signals,
    response_signals,
)

__all__ = [
    "DEFAULT_LETTERS",
    "FEATURE_NAMES",
    "LOGPROB_FLOOR",
    "NO_PARAMETERS_SCHEMA",
    "POSITIVE_TOLERANCE",
    "LogprobAccumulator",
    "LogprobFeatures",
    "ResponseSignals",
    "TokenLogprobs",
    "ToolCallCheck",
    "ToolCallSignals",
    "agreement_fractions",
    "answers_agree",
    "check_tool_calls",
    "extract_choice_letter",
    "features_from_logprobs",
    "features_from_response",
    "message_signals",
    "normalize_answer",
    "response_signals",
    "token_logprobs_from_response",
]
