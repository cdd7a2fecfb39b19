"""`cascade-router calibrate`: dev sets, graders, the response cache, the fitted lambda, and
that a calibrated profile changes the live engine's decisions as it should.

Most tests use the FAKE server (`fake_batch_server`): the small model is right exactly when
it is sure (its token logprobs are high), the big one always. The last test calibrates the
real local ladder on `examples/dev-set.jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from cascade_core.budget import lambdas_for_cost
from cascade_core.calibrate import run_calibration
from cascade_core.calibrate.devset import grade, load_dev_set, resolve_grader
from cascade_core.engine import CascadeEngine, RouterConfig
from cascade_core.errors import InvalidInputError
from tests.fake_batch_server import SMALL, FakeChatServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GRADER = "tests.test_calibrate:fake_grader"


def fake_grader(answer: str, reference: object, row: dict) -> bool:
    """The fake small model is wrong on UNSURE prompts; the big one is always right."""
    return not (answer.startswith(f"{SMALL}:") and "UNSURE" in answer)


def write_dev_set(path: Path, n: int, labelled: bool = True, offset: int = 0) -> list[str]:
    prompts = []
    with path.open("w") as handle:
        for i in range(offset, offset + n):
            # Same length either way, so only the answer's logprobs (not the prompt's length,
            # an ex-ante feature) can tell the estimators when the small model fails.
            prompt = f"task {i}" + (" UNSURE" if i % 4 == 0 else " SUREOK")
            row = {"id": f"d{i}", "prompt": prompt, "params": {"max_tokens": 16}}
            if labelled:
                row |= {"reference": "-", "grader": GRADER}
            handle.write(json.dumps(row) + "\n")
            prompts.append(prompt)
    return prompts


# -- dev set and graders ------------------------------------------------------------------


def test_builtin_graders_and_callable() -> None:
    rows = load_dev_set(EXAMPLES / "dev-set.jsonl")
    assert len(rows) >= 12 and rows[0].messages[0]["role"] == "user"
    assert sum(r.labelled for r in rows) >= 12
    france = next(r for r in rows if r.id == "capital-france")
    assert grade(france, "It is Paris.", "exact") == 1.0
    assert grade(france, "London", "exact") == 0.0
    math = next(r for r in rows if r.id == "math-7-8")
    assert grade(math, "7*8 = 56", "exact") == 1.0 and grade(math, "560", "exact") == 0.0
    assert resolve_grader("exact")("  Paris. ", "paris", {}) == 1.0
    assert resolve_grader(GRADER)("small: x UNSURE", None, {}) is False
    with pytest.raises(InvalidInputError, match="module:function"):
        resolve_grader("fuzzy")


def test_dev_set_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "dev.jsonl"
    bad.write_text('{"id": 1, "prompt": "a"}\n{"id": 2}\n')
    with pytest.raises(InvalidInputError, match=r"dev.jsonl:2.*prompt"):
        load_dev_set(bad)
    bad.write_text('{"prompt": "a", "grader": "nope:missing"}\n')
    with pytest.raises(InvalidInputError, match="cannot import"):
        load_dev_set(bad)


def test_lambdas_for_cost_mixes_neighbours() -> None:
    curve = [
        {"lambda": 0.0, "cost_usd": 10.0},
        {"lambda": 1.0, "cost_usd": 6.0},
        {"lambda": 2.0, "cost_usd": 2.0},
    ]
    assert lambdas_for_cost(curve, 12.0) == (0.0, 0.0, 0.0)
    cheap, dear, gamma = lambdas_for_cost(curve, 5.0)
    assert (cheap, dear) == (2.0, 1.0) and gamma == pytest.approx(0.75)
    with pytest.raises(InvalidInputError, match="below the cheapest"):
        lambdas_for_cost(curve, 1.0)


# -- calibrate on the fake server -----------------------------------------------------------


def _engine(server: FakeChatServer, profile: Path, **budget: float) -> CascadeEngine:
    data = server.config(**budget) if budget else {**server.config(), "budget": {}}
    return CascadeEngine(RouterConfig.from_dict({**data, "profile": str(profile)}))


def _escalated(engine: CascadeEngine, prompts: list[str]) -> list[bool]:
    results = [engine.run([{"role": "user", "content": p}], max_tokens=16) for p in prompts]
    return [len(r.trace.models_run) > 1 for r in results]


def test_calibrate_fits_lambda_and_changes_engine_decisions(tmp_path: Path) -> None:
    dev = tmp_path / "dev.jsonl"
    write_dev_set(dev, 40)
    # Prompts shaped like the dev set's (two-digit ids: same length, same ex-ante features).
    fresh = [f"task {60 + i}" + (" UNSURE" if i % 2 else " SUREOK") for i in range(8)]
    with FakeChatServer() as server:
        config = RouterConfig.from_dict(server.config())
        # Budget: the small model everywhere plus the big one on the quarter that is unsure.
        small_cost, big_cost = 10 * 1e-7 + 4 * 1e-7, 10 * 1e-6 + 4 * 1e-6
        budget = small_cost + 0.25 * big_cost
        profile = tmp_path / "profile.json"
        report = run_calibration(
            config, profile, data=dev, budget_usd=budget, concurrency=4, progress=False
        )
        assert report.new_calls == 80 and report.labelled_rows == 40
        assert report.model_quality == {SMALL: 0.75, "big": 1.0}
        calls = dict(server.calls)

        # A rerun resumes from the cache: not one call is repeated.
        again = run_calibration(
            config, profile, data=dev, budget_usd=budget, concurrency=4, progress=False
        )
        assert again.new_calls == 0 and server.calls == calls

        section = json.loads(profile.read_text())["budget"]
        assert section["expected_cost_usd"] == pytest.approx(budget, rel=0.1)
        assert section["expected_quality"] == pytest.approx(1.0)

        # The profile's fitted lambda: escalate exactly the unsure answers.
        assert _escalated(_engine(server, profile), fresh) == ["UNSURE" in p for p in fresh]
        # target_cost_usd at the small model's cost: never escalate ...
        cheapest = _engine(server, profile, target_cost_usd=small_cost)
        assert not any(_escalated(cheapest, fresh))
        # ... and a fixed lambda in the config still wins over the profile's: at lambda 0
        # cost only breaks ties, so every answer comes from the big model (always right).
        fixed = _engine(server, profile, **{"lambda": 0.0})
        answered = [fixed.run([{"role": "user", "content": p}], max_tokens=16) for p in fresh]
        assert [r.model for r in answered] == ["big"] * len(fresh)


def test_lambda_tuned_on_unlabelled_prompts(tmp_path: Path) -> None:
    labelled, unlabelled = tmp_path / "dev.jsonl", tmp_path / "traffic.jsonl"
    write_dev_set(labelled, 24)
    write_dev_set(unlabelled, 20, labelled=False, offset=100)
    with FakeChatServer() as server:
        config = RouterConfig.from_dict(server.config())
        fitted = tmp_path / "fitted.json"
        run_calibration(config, fitted, data=labelled, progress=False)
        with pytest.raises(InvalidInputError, match="labelled"):
            run_calibration(config, tmp_path / "x.json", data=unlabelled, progress=False)
        tuned = tmp_path / "tuned.json"
        report = run_calibration(
            config, tuned, data=unlabelled, reuse_profile=fitted, budget_usd=3e-6, progress=False
        )
    assert report.labelled_rows == 0
    section = json.loads(tuned.read_text())["budget"]
    assert section["expected_quality"] is None  # nothing to grade, yet lambda is fitted
    assert section["expected_cost_usd"] == pytest.approx(3e-6, rel=0.1)
    assert json.loads(tuned.read_text())["states"] == json.loads(fitted.read_text())["states"]


def test_calibrate_from_replay_logs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    logs = tmp_path / "logs.jsonl"
    with logs.open("w") as handle:
        for i in range(60):
            sure = rng.random() < 0.7
            lp = [-0.02] * 5 if sure else [-3.0] * 5
            handle.write(
                json.dumps(
                    {
                        "id": i,
                        "prompt": f"q {i}",
                        "models": {
                            SMALL: {
                                "correct": sure,
                                "cost_usd": 1.4e-6,
                                "logprobs": lp,
                                "answer": "a" if sure else "b",
                                "tokens_in": 10,
                            },
                            "big": {
                                "correct": True,
                                "cost_usd": 1.4e-5,
                                "logprobs": [-0.02] * 5,
                                "answer": "a",
                                "tokens_in": 10,
                            },
                        },
                    }
                )
                + "\n"
            )
    with FakeChatServer() as server:
        config = RouterConfig.from_dict(server.config())
        profile = tmp_path / "profile.json"
        report = run_calibration(config, profile, replay=logs, target_quality=0.99)
        assert report.new_calls == 0 and server.calls == {}
        section = json.loads(profile.read_text())["budget"]
        assert section["expected_quality"] >= 0.99 - 1e-9
        assert 1.4e-6 < section["expected_cost_usd"] < 1.4e-6 + 1.4e-5
        _engine(server, profile)  # the engine accepts the profile


def test_profile_through_langchain_adapter(tmp_path: Path) -> None:
    model_class = pytest.importorskip(
        "langchain_cascade", reason="needs the langchain extra"
    ).CascadeRouterChatModel
    dev = tmp_path / "dev.jsonl"
    write_dev_set(dev, 24)
    with FakeChatServer() as server:
        config = RouterConfig.from_dict(server.config())
        profile = tmp_path / "profile.json"
        run_calibration(config, profile, data=dev, budget_usd=2.4e-6, progress=False)
        data = {**server.config(), "budget": {}, "profile": str(profile)}
        chat = model_class(config=RouterConfig.from_dict(data))
        sure = chat.invoke("fresh question")
        unsure = chat.invoke("fresh question UNSURE")
    assert sure.content.startswith(f"{SMALL}:")
    assert unsure.content.startswith("big:")


# -- the real local ladder -----------------------------------------------------------------


@pytest.mark.slow
def test_calibrate_real_local_ladder(local_ladder: RouterConfig, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cascade_core.cli.app import app

    config = tmp_path / "ladder.yaml"
    config.write_text(yaml.safe_dump(local_ladder.model_dump(mode="json", by_alias=True)))
    profile = tmp_path / "profile.json"
    args = ["calibrate", "--config", str(config), "--data", str(EXAMPLES / "dev-set.jsonl")]
    args += ["-o", str(profile), "--budget", "8e-7", "--no-progress"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout[first.stdout.index("{") :])
    assert summary["complete_rows"] == summary["rows"] and summary["new_calls"] > 0
    # the first step calibrate chose is the one the stored lambda was fitted with
    assert summary["draft"] is json.loads(profile.read_text())["budget"]["strategy"]["draft"]
    assert isinstance(summary["draft"], bool)
    again = CliRunner().invoke(app, args)
    assert json.loads(again.stdout[again.stdout.index("{") :])["new_calls"] == 0

    data = local_ladder.model_dump(mode="json", by_alias=True)
    # The profile's fitted lambda (no lambda in the config) ...
    engine = CascadeEngine(RouterConfig.from_dict({**data, "budget": {}, "profile": str(profile)}))
    result = engine.run([{"role": "user", "content": "What is the capital of Spain?"}],
                        max_tokens=8)  # fmt: skip
    assert result.content and result.trace.runs
    # ... and a target at the cheapest point of the lambda curve (the policy that spends
    # least, nothing mixed in) keeps every request on the cheapest model.
    cheapest = min(p["cost_usd"] for p in json.loads(profile.read_text())["budget"]["curve"])
    engine = CascadeEngine(
        RouterConfig.from_dict(
            {**data, "budget": {"target_cost_usd": cheapest}, "profile": str(profile)}
        )
    )
    # The curve promises this on the calibration prompts (a new prompt may still be worth
    # escalating at that lambda).
    for row in load_dev_set(EXAMPLES / "dev-set.jsonl")[:3]:
        result = engine.run(row.messages, max_tokens=8)
        assert result.trace.models_run == ["smollm2-135m"]


def test_saved_replay_refits_the_same_estimators_without_calls(tmp_path: Path) -> None:
    dev = tmp_path / "dev.jsonl"
    write_dev_set(dev, 24)
    with FakeChatServer() as server:
        config = RouterConfig.from_dict(server.config())
        saved = tmp_path / "answers.jsonl"
        run_calibration(config, tmp_path / "a.json", data=dev, save_replay=saved, progress=False)
        calls = dict(server.calls)
        run_calibration(config, tmp_path / "b.json", replay=saved, progress=False)
        assert server.calls == calls
    first, second = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert first["states"] == second["states"]


def test_bench_evaluates_a_calibrated_profile_on_its_saved_answers(tmp_path: Path) -> None:
    """`bench --profile`: the profile's estimators, not refitted ones, score held-out logs."""
    from typer.testing import CliRunner

    from cascade_core.cli.app import app

    dev = tmp_path / "dev.jsonl"
    write_dev_set(dev, 48)
    answers, profile = tmp_path / "answers.jsonl", tmp_path / "profile.json"
    with FakeChatServer() as server:
        config = RouterConfig.from_dict(server.config())
        run_calibration(config, profile, data=dev, save_replay=answers, progress=False)
    args = ["bench", str(answers), "--profile", str(profile), "--json", "--bootstrap", "50"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (dataset,) = json.loads(result.stdout)["datasets"]
    assert dataset["estimator"] == "fitted profile" and dataset["n_train_fit"] == 0
    metrics = dataset["strategies"]
    # The small model's logprobs tell when it fails, which only the post-hoc strategies use.
    assert metrics["cascade_routing"]["auc"] > metrics["routing"]["auc"] + 5

    other = json.loads(profile.read_text())
    other["features"]["model_names"] = ["a", "b"]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(other))
    refused = CliRunner().invoke(app, [*args[:3], str(wrong)])
    assert refused.exit_code == 2 and "--profile: fitted for models ['a', 'b']" in refused.output
