"""Learned ex-ante routers (cascade_core.learned) and the RouteLLM loader, on small data."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from cascade_core.bench.learned import routellm_metrics, split_by_prompt, threshold_curve
from cascade_core.learned import (
    CallableScorer,
    EmbeddingCache,
    HashingEmbedder,
    MatrixFactorization,
    SWRanking,
    battles_from_records,
    comparisons_from_quality,
    embed_texts,
    fit_learned_estimator,
    load_battles,
    route,
    strong_share_for_budget,
    strong_win_probability,
    threshold_for_budget,
    threshold_for_share,
)
from cascade_core.replay import ReplayDataset
from cascade_core.replay.routellm import final_number, load_routellm_csv, load_routellm_evals
from tests.conftest import DATA, needs_data


def planted(n: int, seed: int, k: int = 3, d: int = 16):
    """Two topics (sign of the first embedding coordinate): model 0 wins on topic A,
    model k-1 on topic B, the others are in between."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, d))
    topic = emb[:, 0] > 0
    good = np.linspace(0.9, 0.2, k)
    p = np.where(topic[:, None], good, good[::-1])
    return emb, (rng.random((n, k)) < p).astype(float), topic


@pytest.mark.parametrize("cls", [SWRanking, MatrixFactorization])
def test_router_recovers_planted_preference_from_scores(cls):
    emb, quality, _ = planted(500, 0)
    test_emb, _, topic = planted(300, 1)
    scores = cls().fit(emb, 3, quality=quality).score(test_emb)
    assert scores.shape == (300, 3)
    best = scores.argmax(axis=1)
    assert np.mean(best == np.where(topic, 0, 2)) > 0.85


@pytest.mark.parametrize("cls", [SWRanking, MatrixFactorization])
def test_router_recovers_planted_preference_from_battles(cls):
    """Arena-format battles with ties: a wins on topic A, b on topic B."""
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(2, 8)) * 2

    def draw(n):
        topic = rng.random(n) < 0.5
        return centres[topic.astype(int)] + rng.normal(size=(n, 8)), topic

    emb, topic = draw(400)
    records = []
    for i, a_better in enumerate(topic):
        u = rng.random()
        winner = "tie" if u < 0.2 else ("model_a" if (u < 0.85) == a_better else "model_b")
        records.append({"prompt": f"p{i}", "model_a": "a", "model_b": "b", "winner": winner})
    battles = battles_from_records(records)
    assert battles.model_names == ["a", "b"] and len(battles.comparisons) == 400
    assert set(np.unique(battles.comparisons.outcome)) == {0.0, 0.5, 1.0}
    scorer = cls().fit(emb, 2, comparisons=battles.comparisons)
    test, test_topic = draw(200)
    p_b = strong_win_probability(scorer.score(test), weak=0, strong=1)
    assert np.mean((p_b < 0.5) == test_topic) > 0.85


def test_load_battles_jsonl_and_conversation(tmp_path):
    path = tmp_path / "battles.jsonl.gz"
    rows = [
        {
            "conversation_a": [{"role": "user", "content": "hi"}],
            "model_a": "x",
            "model_b": "y",
            "winner": "tie (bothbad)",
        },
        {"prompt": "hi", "model_a": "y", "model_b": "z", "winner": "model_b"},
    ]
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows))
    battles = load_battles(path)
    assert battles.prompts == ["hi"]
    assert battles.model_names == ["x", "y", "z"]
    assert battles.comparisons.outcome.tolist() == [0.5, 0.0]
    with pytest.raises(ValueError, match="winner"):
        battles_from_records([{"prompt": "p", "model_a": "x", "model_b": "y", "winner": "?"}])


def test_comparisons_from_quality_ties_and_grades():
    c = comparisons_from_quality(np.array([[1.0, 0.0, 1.0], [0.5, 1.0, 0.0]]))
    assert len(c) == 6  # 3 pairs x 2 prompts
    first = {(a, b): y for q, a, b, y in zip(c.query, c.a, c.b, c.outcome, strict=True) if q == 0}
    assert first == {(0, 1): 1.0, (0, 2): 0.5, (1, 2): 0.0}
    assert len(comparisons_from_quality(np.array([[1.0, 1.0]]), include_ties=False)) == 0


class CountingEmbedder(HashingEmbedder):
    def __init__(self):
        super().__init__(32)
        self.calls = 0

    def encode(self, texts):
        self.calls += len(texts)
        return super().encode(texts)


def test_embedding_cache_hit_on_rerun(tmp_path):
    texts = ["what is 2+2", "capital of France", "what is 2+2"]
    first = CountingEmbedder()
    a = embed_texts(texts, first, tmp_path, batch_size=1)
    assert first.calls == 2  # duplicates embedded once
    second = CountingEmbedder()
    b = embed_texts(texts, second, tmp_path)
    assert second.calls == 0  # everything came from disk
    np.testing.assert_array_equal(a, b)
    third = CountingEmbedder()
    embed_texts([*texts, "new text"], third, tmp_path)
    assert third.calls == 1
    assert len(EmbeddingCache(first.model_id, tmp_path)) == 3
    # Another embedding model does not share the entries.
    assert len(EmbeddingCache("hashing-64", tmp_path)) == 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_hashing_embedder_similar_texts_are_close():
    e = HashingEmbedder(128).encode(["the cat sat on the mat", "the cat sat on a mat", "gsm8k"])
    assert e[0] @ e[1] > e[0] @ e[2]


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 0.5, 0.8, 1.0])
def test_threshold_hits_target_share(share):
    scores = np.random.default_rng(0).random(1000)
    t = threshold_for_share(scores, share)
    assert route(scores, t).mean() == pytest.approx(share, abs=1e-3)


def test_threshold_with_ties_and_budget():
    scores = np.repeat([0.2, 0.5, 0.9], 100)
    assert route(scores, threshold_for_share(scores, 1 / 3)).mean() == pytest.approx(1 / 3)
    rng = np.random.default_rng(1)
    s = rng.random(500)
    weak, strong = np.full(500, 1.0), rng.uniform(5, 15, 500)
    budget = 4.0
    t = threshold_for_budget(s, weak, strong, budget)
    pick = route(s, t)
    spent = np.where(pick, strong, weak).mean()
    assert spent <= budget and spent > budget - 15 / 500
    assert strong_share_for_budget(4.0, 1.0, 11.0) == pytest.approx(0.3)


def test_user_scorer_hook_in_the_estimator():
    """A user scorer (here: an oracle-like function of the embedding) becomes features of
    the calibrated estimator; its estimates separate the topics."""
    emb, quality, topic = planted(400, 3, k=2)
    prompts = [f"q{i}" for i in range(400)]
    data = ReplayDataset(
        name="t",
        model_names=["cheap", "dear"],
        query_ids=prompts,
        prompts=prompts,
        tasks=["t"] * 400,
        quality=quality,
        cost=np.tile([1.0, 10.0], (400, 1)),
    )
    fit, hold = data.subset(np.arange(200)), data.subset(np.arange(200, 400))
    scorer = CallableScorer(lambda p, e: np.stack([e[:, 0], -e[:, 0]], axis=1), name="mine")
    est = fit_learned_estimator(lambda: scorer, fit, emb[:200], folds=2)
    q, _ = est.staged(hold, emb[200:]).state(frozenset())
    assert q[topic[200:], 0].mean() > q[~topic[200:], 0].mean() + 0.3


def test_random_routing_apgr_is_half_and_a_good_router_beats_it():
    rng = np.random.default_rng(0)
    n = 400
    quality = np.stack([rng.random(n) < 0.5, rng.random(n) < 0.8], axis=1).astype(float)
    data = ReplayDataset(
        name="t",
        model_names=["w", "s"],
        query_ids=[str(i) for i in range(n)],
        prompts=[""] * n,
        tasks=[""] * n,
        quality=quality,
        cost=np.tile([1.0, 10.0], (n, 1)),
    )
    oracle_score = quality[:, 1] - quality[:, 0] + 0.01 * rng.random(n)
    budgets = np.linspace(1, 10, 20)
    curve = threshold_curve(oracle_score, oracle_score, data, data, budgets, "oracle")
    metrics = routellm_metrics(data, {"oracle": curve}, n_boot=50, seed=0)
    assert metrics["random"]["apgr"] == pytest.approx(0.5)
    assert metrics["oracle"]["apgr"] > 0.7
    assert metrics["oracle"]["apgr_minus_random_ci"][0] > 0


# ------------------------------------------------------------------ RouteLLM loader
def _write(path, text):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)


def test_routellm_loader_tiny_files(tmp_path):
    (tmp_path / "mmlu").mkdir()
    header = "prompt,mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview\n"
    _write(
        tmp_path / "mmlu" / "mmlu_anatomy.csv.gz", header + '"Q1\nA. x",True,False\nQ2,False,True\n'
    )
    _write(tmp_path / "mmlu" / "mmlu_law.csv.gz", header + "Q3,True,True\n")
    gsm = (
        "prompt,mistralai/Mixtral-8x7B-Instruct-v0.1,gpt-4-1106-preview,"
        "mistralai/Mixtral-8x7B-Instruct-v0.1_response,gpt-4-1106-preview_response\n"
        'How many?,False,True,"so 3 + 4 = 7\n#### 7","It is 1,200."\n'
    )
    _write(tmp_path / "gsm8k_responses.csv.gz", gsm)
    data = load_routellm_evals(tmp_path)
    mmlu, gsm8k = data["mmlu"], data["gsm8k"]
    assert mmlu.n_queries == 3 and mmlu.model_names[0].startswith("mistralai")
    assert mmlu.quality.tolist() == [[1, 0], [0, 1], [1, 1]]
    assert set(mmlu.tasks) == {"mmlu"} and mmlu.query_ids[0] == "mmlu_anatomy-0"
    assert np.all(mmlu.cost[:, 1] > mmlu.cost[:, 0])
    assert gsm8k.answers.tolist() == [["7", "1200"]]
    assert gsm8k.tokens_out[0, 0] > 1  # from the response text


def test_routellm_loader_errors(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("prompt,unknown-model\nq,True\n")
    with pytest.raises(ValueError, match="no price"):
        load_routellm_csv(bad, task="t")
    bad.write_text("prompt,gpt-4-1106-preview\nq,maybe\n")
    with pytest.raises(ValueError, match=r"x.csv:2"):
        load_routellm_csv(bad, task="t")
    with pytest.raises(FileNotFoundError):
        load_routellm_evals(tmp_path / "nothing")


def test_final_number():
    assert final_number("a 3 b\n#### 1,234") == "1234"
    assert final_number("the answer is 2.50.") == "2.5"
    assert final_number("none") is None


def test_split_by_prompt_keeps_duplicates_together():
    prompts = [f"p{i % 50}" for i in range(200)]
    data = ReplayDataset(
        name="t",
        model_names=["a"],
        query_ids=[str(i) for i in range(200)],
        prompts=prompts,
        tasks=[""] * 200,
        quality=np.zeros((200, 1)),
        cost=np.zeros((200, 1)),
    )
    train, test = split_by_prompt(data)
    assert not set(train.prompts) & set(test.prompts)
    assert 0.3 < test.n_queries / 200 < 0.7


@needs_data
def test_routellm_loader_real_data():
    data = load_routellm_evals(DATA / "routellm_evals")
    mmlu, gsm8k = data["mmlu"], data["gsm8k"]
    assert mmlu.n_queries == 14042 and gsm8k.n_queries == 1319
    np.testing.assert_allclose(mmlu.mean_quality(), [0.681, 0.806], atol=5e-4)
    assert mmlu.model_names == ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
    assert gsm8k.answers is not None


@needs_data
@pytest.mark.slow
def test_learned_bench_gsm8k_beats_random():
    """Real data, hashing embeddings (no model needed): SW ranking's RouteLLM router on
    GSM8K has a positive APGR gap to random routing (point estimate)."""
    from cascade_core.bench.learned import run_learned_bench

    results, _, _ = run_learned_bench(
        DATA / "routellm_evals", ["sw"], only=["gsm8k"], embedder_name="hashing", n_boot=100
    )
    r = results[0].routellm
    assert r["random"]["apgr"] == pytest.approx(0.5)
    assert r["routellm_threshold[sw]"]["apgr"] > 0.5
