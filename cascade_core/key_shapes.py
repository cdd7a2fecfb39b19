"""What an API key looks like, so that one can be recognised without knowing it.

Why a module of its own, below everything else: the redactor (engine), the validation
messages (used by the estimators too) and the config's ``api_key_env`` rule all need the same
shapes, and none of them may import another's layer.
"""

from __future__ import annotations

import re

REDACTED = "***"

KEY_SHAPES = re.compile(
    r"(?i:(bearer\s+))[A-Za-z0-9._~+/\-]{8,}=*"  # Authorization headers
    r"|\b(?:sk|xai|pplx|nvapi|csk|glpat)-[A-Za-z0-9_\-]{12,}"  # sk-proj-..., xai-...
    r"|\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{12,}"  # Stripe-style
    r"|\b(?:pk|rk|ak|key)-(?=[A-Za-z0-9_\-]*[0-9])[A-Za-z0-9_\-]{12,}"
    r"|\b(?:hf|gsk|ghp|gho|ghu|ghs|ghr|github_pat|r8)_[A-Za-z0-9_]{16,}"  # hf_..., gsk_...
    r"|\bAIza[0-9A-Za-z_\-]{30,}"  # Google API keys
    r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack tokens
    r"|\beyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]*"  # JWTs
    r"|\b[0-9a-fA-F]{32,}\b"  # long hex (Azure keys, raw tokens)
    r"|\b(?=[A-Z0-9]*[0-9])(?=[A-Z0-9]*[A-Z])[A-Z0-9]{20,}\b"  # AWS ids, upper-case keys
    r"|(?<![A-Za-z0-9_\-])(?=[A-Za-z0-9_\-]*[0-9])(?=[A-Za-z0-9_\-]*[a-z])"
    r"(?=[A-Za-z0-9_\-]*[A-Z])[A-Za-z0-9_\-]{32,}"  # long mixed-case base64url runs
)


def looks_like_key(text: str) -> bool:
    """Whether ``text`` contains something shaped like a credential (see `KEY_SHAPES`)."""
    return KEY_SHAPES.search(text) is not None


def mask_keys(text: str) -> str:
    """``text`` with everything shaped like a key replaced by ``***`` (a bearer token keeps
    its ``Bearer`` word, so the message still says what was there)."""
    return KEY_SHAPES.sub(lambda m: (m.group(1) or "") + REDACTED, text)
