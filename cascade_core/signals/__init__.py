"""Post-hoc quality signals: pure, fast functions over answers already produced.

Why a separate package: these run on the live path after every model call, so they depend
only on numpy (and ``jsonschema``, already required by LiteLLM, for tool-call arguments);
fitting estimators on them (scikit-learn etc.) lives elsewhere. Nothing here parses a provider
response: ``cascade_core.engine.answers.ModelAnswer`` does, once, and hands these functions
plain values.

* :mod:`.logprob_features`: token-logprob features (Gupta et al. 2024), the one feature
  builder of live, calibration and replay (`answer_features`).
* :mod:`.agreement`: agreement between the answers of models already run.
* :mod:`.tool_calls`: tool-call validity and finish-state signals, for answers without
  logprobs.
* :mod:`.access`: the one reader of dict-or-object payload fields.
"""

from cascade_core.signals.access import get_field
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
    answer_features,
    answer_parsed,
    features_from_logprobs,
)
from cascade_core.signals.tool_calls import (
    NO_PARAMETERS_SCHEMA,
    ResponseSignals,
    ToolCallCheck,
    ToolCallSignals,
    check_tool_calls,
    message_signals,
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
    "answer_features",
    "answer_parsed",
    "answers_agree",
    "check_tool_calls",
    "extract_choice_letter",
    "features_from_logprobs",
    "get_field",
    "message_signals",
    "normalize_answer",
]
