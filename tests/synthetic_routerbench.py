"""RouterBench-shaped replay data, generated: 11 models, prices over three orders of magnitude.

Used by the replay scale benchmark (which must run anywhere, without the 36k-row RouterBench
file) and by the replay tests. What makes it RouterBench-like:

* RouterBench's 11 models, priced per query from in/out token counts, with per-token prices
  set so that mean costs span three orders of magnitude (about 1e-5..1e-2 USD from Mistral-7B
  to GPT-4);
* correlated correctness: a query's latent difficulty (plus a task offset) is shared by all
  models, each model adds its skill and its own noise, so strong models are mostly right where
  weak ones are, but not always;
* RouterBench's task mix: mostly multiple choice (a few output tokens, so one cost order),
  about a quarter generated answers (GSM8K, MBPP, MT-Bench) whose lengths vary per model;
* mostly 0/1 scores, with a graded task (scores in tenths, like MT-Bench's judge scores).
"""

from __future__ import annotations

import numpy as np

from cascade_core.replay import ReplayDataset

# (name, skill, USD per 1M input tokens, USD per 1M output tokens, mean output tokens)
MODELS: tuple[tuple[str, float, float, float, float], ...] = (
    ("mistralai/mistral-7b-chat", -0.5, 0.02, 0.02, 120),
    ("WizardLM/WizardLM-13B-V1.2", -0.3, 0.04, 0.04, 150),
    ("meta/code-llama-instruct-34b-chat", -0.2, 0.08, 0.08, 160),
    ("zero-one-ai/Yi-34B-Chat", 0.4, 0.12, 0.12, 170),
    ("mistralai/mixtral-8x7b-chat", 0.5, 0.2, 0.2, 140),
    ("meta/llama-2-70b-chat", 0.1, 0.35, 0.35, 200),
    ("gpt-3.5-turbo-1106", 0.6, 0.5, 1.5, 110),
    ("claude-instant-v1", 0.4, 0.8, 2.4, 160),
    ("claude-v1", 0.8, 4.0, 12.0, 180),
    ("claude-v2", 0.9, 8.0, 24.0, 200),
    ("gpt-4-1106-preview", 1.6, 10.0, 30.0, 230),
)
# (task, difficulty offset, graded, generative, RouterBench's row count): multiple-choice
# answers are a few tokens, so only generated answers make per-query cost orders differ.
TASKS: tuple[tuple[str, float, bool, bool, int], ...] = (
    ("mmlu", 0.0, False, False, 14042),
    ("hellaswag", -0.6, False, False, 10042),
    ("gsm8k", 0.5, False, True, 7450),
    ("winogrande", -0.2, False, False, 1267),
    ("arc-challenge", -0.8, False, False, 1172),
    ("mbpp", 0.3, False, True, 427),
    ("mt-bench", 0.0, True, True, 80),
)


def routerbench_like(n_queries: int, seed: int, name: str = "routerbench-like") -> ReplayDataset:
    """``n_queries`` queries of the 11 models, cheapest first by mean cost."""
    rng = np.random.default_rng(seed)
    k = len(MODELS)
    names = [m[0] for m in MODELS]
    skill = np.array([m[1] for m in MODELS])
    price_in = np.array([m[2] for m in MODELS]) * 1e-6
    price_out = np.array([m[3] for m in MODELS]) * 1e-6
    mean_out = np.array([m[4] for m in MODELS])
    share = np.array([t[4] for t in TASKS], dtype=float)
    task = rng.choice(len(TASKS), n_queries, p=share / share.sum())
    offset = np.array([t[1] for t in TASKS])[task]
    graded = np.array([t[2] for t in TASKS])[task]
    generative = np.array([t[3] for t in TASKS])[task]
    difficulty = rng.normal(0.0, 1.2, n_queries) + offset
    logit = 1.7 * (skill[None, :] - difficulty[:, None]) + rng.normal(0, 1.0, (n_queries, k))
    p_correct = 1.0 / (1.0 + np.exp(-logit))
    binary = (rng.random(p_correct.shape) < p_correct).astype(float)
    score = np.clip(np.round(p_correct + rng.normal(0, 0.1, p_correct.shape), 1), 0.0, 1.0)
    quality = np.where(graded[:, None], score, binary)
    tokens_in = np.round(rng.lognormal(np.log(350), 0.8, n_queries))
    generated = np.round(mean_out * rng.lognormal(0.0, 0.6, (n_queries, k)))
    short = np.round(mean_out / 40)  # "B", or "The answer is B."
    tokens_out = np.where(generative[:, None], generated, short[None, :])
    cost = tokens_in[:, None] * price_in + tokens_out * price_out
    data = ReplayDataset(
        name=name,
        model_names=names,
        query_ids=[f"{name}-{i}" for i in range(n_queries)],
        prompts=[""] * n_queries,
        tasks=[TASKS[t][0] for t in task],
        quality=quality,
        cost=cost,
        tokens_in=np.repeat(tokens_in[:, None], k, axis=1),
        tokens_out=tokens_out,
    )
    return data.sorted_by_cost()
