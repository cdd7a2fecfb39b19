"""Loader for RouteLLM's evaluation format (lm-sys/RouteLLM ``routellm/evals/``).

Layout of the folder (``../shared/data/routellm_evals``; plain ``.csv`` works too):

* ``mmlu/mmlu_<subject>.csv[.gz]``: ``prompt`` and one True/False column per model;
* ``gsm8k_responses.csv[.gz]``: ``prompt``, a True/False column per model and
  ``<model>_response`` with each model's full answer.

RouteLLM logs no costs (it reports the share of strong-model calls). Costs here are list
prices times token counts estimated as characters / 4 (no tokenizer needed): input = the
prompt; output = the logged response when there is one (GSM8K), else one token (an MMLU
answer letter). Prices are USD per 1M tokens (input, output), overridable with ``prices``.
GSM8K answers are the last number of each response, so the agreement of the two models'
answers is available as a post-hoc signal; MMLU has no responses and no post-hoc signal.

A malformed file raises one `ReplayFormatError` (an `InvalidInputError`) naming file:line and
column; a folder without evaluation files raises FileNotFoundError with the folder as filename.
"""

from __future__ import annotations

import errno
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .dataset import ReplayDataset, concat_datasets
from .loaders import ReplayFormatError, read_csv

__all__ = [
    "DEFAULT_PRICES",
    "load_routellm_csv",
    "load_routellm_evals",
    "load_routellm_gsm8k",
    "load_routellm_mmlu",
]

# USD per 1M tokens (input, output): GPT-4-1106 list price; Mixtral-8x7B about $0.60 flat.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4-1106-preview": (10.0, 30.0),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": (0.6, 0.6),
}
CHARS_PER_TOKEN = 4.0
RESPONSE_SUFFIX = "_response"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _bool(value: str, path: Path, line: int, column: str) -> float:
    v = value.strip().lower()
    if v in ("true", "1", "1.0"):
        return 1.0
    if v in ("false", "0", "0.0"):
        return 0.0
    shown = value if len(value) <= 40 else value[:37] + "..."
    raise ReplayFormatError(
        f"expected True/False, got {shown!r}", path=path, line=line, field=column
    )


def final_number(response: str) -> str | None:
    """The last number of a GSM8K response (after '####' when present), normalised."""
    text = response.split("####")[-1] if "####" in response else response
    found = _NUMBER.findall(text)
    if not found:
        return None
    value = found[-1].replace(",", "").rstrip(".")
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number):  # more digits than a float holds: compare as written
        return value
    return str(int(number)) if number == int(number) else str(number)


def _tokens(text: str) -> float:
    return max(1.0, round(len(text) / CHARS_PER_TOKEN))


def load_routellm_csv(
    path: str | Path,
    *,
    task: str,
    prices: Mapping[str, tuple[float, float]] | None = None,
    id_prefix: str | None = None,
) -> ReplayDataset:
    """One RouteLLM CSV: every non-``prompt`` column without the response suffix is a model."""
    path = Path(path)
    prices = {**DEFAULT_PRICES, **(prices or {})}
    columns, records = read_csv(path)
    if "prompt" not in columns:
        raise ReplayFormatError(
            f"no 'prompt' column (columns: {', '.join(columns)})", path=path, line=1
        )
    models = [c for c in columns if c != "prompt" and not c.endswith(RESPONSE_SUFFIX)]
    if not models:
        raise ReplayFormatError("no model columns", path=path, line=1)
    for m in models:
        if m not in prices:
            raise ReplayFormatError(
                f"no price for model {m!r}; pass prices={{...}}", path=path, line=1, field=m
            )
    has_response = all(m + RESPONSE_SUFFIX in columns for m in models)
    prompts, quality, answers, t_in, t_out = [], [], [], [], []
    for line, row in records:
        prompt = row["prompt"]
        prompts.append(prompt)
        quality.append([_bool(row[m], path, line, m) for m in models])
        responses = [row[m + RESPONSE_SUFFIX] for m in models] if has_response else None
        answers.append([final_number(r) for r in responses] if responses else None)
        t_in.append([_tokens(prompt)] * len(models))
        t_out.append([_tokens(r) for r in responses] if responses else [1.0] * len(models))
    n = len(prompts)
    if n == 0:
        raise ReplayFormatError("no rows after the header", path=path)
    tokens_in, tokens_out = np.array(t_in).reshape(n, -1), np.array(t_out).reshape(n, -1)
    price_in = np.array([prices[m][0] for m in models]) / 1e6
    price_out = np.array([prices[m][1] for m in models]) / 1e6
    stem = path.name.split(".")[0]
    prefix = id_prefix or stem
    data = ReplayDataset(
        name=stem,
        model_names=models,
        query_ids=[f"{prefix}-{i}" for i in range(n)],
        prompts=prompts,
        tasks=[task] * n,
        quality=np.array(quality).reshape(n, len(models)),
        cost=tokens_in * price_in + tokens_out * price_out,
        answers=np.array(answers, dtype=object).reshape(n, len(models)) if has_response else None,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
    )
    return data.sorted_by_cost()


def load_routellm_mmlu(
    folder: str | Path, prices: Mapping[str, tuple[float, float]] | None = None
) -> ReplayDataset:
    """All ``mmlu_<subject>.csv[.gz]`` files of ``folder`` as one dataset, task "mmlu"
    (query ids ``mmlu_<subject>-<row>``: the subject is in the id, not a feature)."""
    folder = Path(folder)
    files = sorted(folder.glob("mmlu_*.csv*"))
    if not files:
        raise FileNotFoundError(errno.ENOENT, "no mmlu_<subject>.csv[.gz] files", str(folder))
    parts = [load_routellm_csv(f, task="mmlu", prices=prices) for f in files]
    return concat_datasets(parts, name="mmlu") if len(parts) > 1 else parts[0]


def load_routellm_gsm8k(
    path: str | Path, prices: Mapping[str, tuple[float, float]] | None = None
) -> ReplayDataset:
    data = load_routellm_csv(path, task="gsm8k", prices=prices, id_prefix="gsm8k")
    return data


def load_routellm_evals(
    folder: str | Path,
    tasks: Sequence[str] = ("mmlu", "gsm8k"),
    prices: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, ReplayDataset]:
    """``{"mmlu": ..., "gsm8k": ...}`` from a routellm_evals folder (tasks that exist)."""
    folder = Path(folder)
    out: dict[str, ReplayDataset] = {}
    if "mmlu" in tasks and (folder / "mmlu").is_dir():
        out["mmlu"] = load_routellm_mmlu(folder / "mmlu", prices)
    if "gsm8k" in tasks:
        for name in ("gsm8k_responses.csv.gz", "gsm8k_responses.csv"):
            if (folder / name).is_file():
                out["gsm8k"] = load_routellm_gsm8k(folder / name, prices)
                break
    if not out:
        raise FileNotFoundError(
            errno.ENOENT, "no RouteLLM evaluation files (mmlu/, gsm8k_responses)", str(folder)
        )
    return out
