"""Latency stored by `calibrate` in the profile and loaded as the engine's starting averages:
against the FAKE chat server over real HTTP, through the cache on a rerun, and the section's
validation (one line naming the field)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cascade_core.calibrate import run_calibration
from cascade_core.engine import CascadeEngine, RouterConfig
from cascade_core.errors import InvalidInputError
from cascade_core.latency import ModelLatency, averages_from_section, latency_section
from tests.fake_batch_server import FakeChatServer
from tests.test_calibrate import write_dev_set


def test_calibrate_stores_latency_and_the_engine_starts_from_it(tmp_path: Path) -> None:
    dev = tmp_path / "dev.jsonl"
    write_dev_set(dev, 12)
    with FakeChatServer(delay_s=0.02) as server:
        config = RouterConfig.from_dict(server.config())
        profile = tmp_path / "profile.json"
        run_calibration(config, profile, data=dev, concurrency=2, progress=False)
        stored = json.loads(profile.read_text())["latency"]["models"]
        labels = [m.label for m in CascadeEngine(config).ladder]
        assert sorted(stored) == sorted(labels)
        for entry in stored.values():
            assert entry["observations"] == 12
            assert entry["ttft_s"] is None  # calibration does not stream
            assert entry["s_per_token"] > 0 and entry["output_tokens"] > 0

        # A rerun answered entirely from the cache stores the same latency.
        again = run_calibration(config, profile, data=dev, concurrency=2, progress=False)
        assert again.new_calls == 0
        assert json.loads(profile.read_text())["latency"]["models"] == stored

        engine = CascadeEngine(RouterConfig.from_dict({**server.config(), "profile": str(profile)}))
        for label in labels:
            start = engine.parts.latency.averages(label)  # type: ignore[union-attr]
            assert start is not None and start.observations == 12
            assert start.s_per_token == stored[label]["s_per_token"]
        # The first request's trace already shows what was expected of it.
        result = engine.run([{"role": "user", "content": "task 99 SUREOK"}], max_tokens=16)
        assert result.trace.runs[0].expected_total_s is not None


def test_the_section_round_trips() -> None:
    averages = {
        "a": ModelLatency(ttft_s=0.3, s_per_token=0.01, output_tokens=12.5, observations=4),
        "b": ModelLatency(),
    }
    section = json.loads(json.dumps(latency_section(averages)))
    assert averages_from_section(section, ["a", "b"]) == averages
    assert averages_from_section(None, ["a"]) == {}


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"models": {"a": {"ttft_s": -1.0}}}, "profile.json: latency.models.a.ttft_s:"),
        ({"models": {"a": {"s_per_token": "fast"}}}, "profile.json: latency.models.a.s_per_token:"),
        ({"models": {"a": {"observations": 1.5}}}, "profile.json: latency.models.a.observations:"),
        ({"models": {"z": {}}}, "profile.json: latency.models: ['z'] are not in the ladder"),
        ({"model": {}}, "profile.json: latency.model"),
        ([1, 2], "profile.json: latency: expected an object"),
    ],
)
def test_a_bad_section_is_one_line_naming_the_field(section: object, problem: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        averages_from_section(section, ["a"], "profile.json")
    assert str(raised.value).startswith(problem)
    assert "\n" not in str(raised.value)
