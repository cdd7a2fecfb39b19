"""Session stores: the in-memory LRU and Redis (a real redis-server), one contract for both.

Bounds (size and time), the merge of concurrent updates, and the reservation protocol that
keeps a session cap exact when turns of one session run at once: threads, event-loop tasks
and two separate engine processes sharing one Redis.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest
import session_fixtures
from session_fixtures import engine_env

from cascade_core.engine import RouterConfig
from cascade_core.errors import InvalidInputError
from cascade_core.sessions import (
    InMemorySessionStore,
    RedisSessionStore,
    SessionState,
    SessionStore,
    SessionUpdate,
)
from cascade_core.sessions.prefix import ServedPrefix
from cascade_core.sessions.state import MAX_TOOL_CALLS
from cascade_core.sessions.store import UNREADABLE_STATE

fake = session_fixtures.fake
redis_url = session_fixtures.redis_url


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[SessionStore]:
    if request.param == "memory":
        yield InMemorySessionStore(max_sessions=100, ttl_s=600)
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test:{random.getrandbits(48):x}:"
    yield RedisSessionStore(url, ttl_s=600, prefix=prefix)


def _update(model: str, rank: int, *calls: str) -> SessionUpdate:
    return SessionUpdate(
        model=model,
        floor=model,
        floor_rank=rank,
        prefixes={model: ServedPrefix(hashes=["a", "b"], tokens=[3, 10])},
        tool_calls={c: model for c in calls},
    )


# -- the contract, for both stores ------------------------------------------------------------


def test_an_unknown_session_is_new_and_empty(store: SessionStore) -> None:
    snapshot = store.load("nobody")
    assert snapshot.new and snapshot.state == SessionState()
    assert snapshot.spent_usd == 0.0 and snapshot.reserved_usd == 0.0


def test_updates_merge_tool_calls_accumulate_and_the_floor_never_drops(store: SessionStore):
    store.save("s", _update("big", 1, "call_1"))
    store.save("s", _update("small", 0, "call_2"))
    state = store.load("s").state
    assert state.model == "small"  # the latest answer
    assert (state.floor, state.floor_rank) == ("big", 1)  # never lower
    assert state.tool_calls == {"call_1": "big", "call_2": "small"}
    assert set(state.prefixes) == {"big", "small"} and state.turns == 2
    assert not store.load("s").new


def test_tool_call_records_are_bounded(store: SessionStore) -> None:
    for i in range(0, MAX_TOOL_CALLS + 40, 20):
        store.save("s", _update("m", 0, *[f"id{j}" for j in range(i, i + 20)]))
    calls = store.load("s").state.tool_calls
    assert len(calls) == MAX_TOOL_CALLS and f"id{MAX_TOOL_CALLS + 39}" in calls


def test_reservations_are_checked_against_spent_plus_reserved(store: SessionStore) -> None:
    first = store.reserve("s", 0.6, cap_usd=1.0, hold_s=60)
    assert first.granted and first.committed_usd == 0.0
    second = store.reserve("s", 0.6, cap_usd=1.0, hold_s=60)
    assert not second.granted and second.committed_usd == pytest.approx(0.6)
    snapshot = store.load("s")
    assert snapshot.reserved_usd == pytest.approx(0.6) and snapshot.spent_usd == 0.0
    assert store.settle("s", first.token, 0.25) == pytest.approx(0.25)  # released, then spent
    snapshot = store.load("s")
    assert snapshot.reserved_usd == 0.0 and snapshot.spent_usd == pytest.approx(0.25)
    assert store.reserve("s", 0.75, cap_usd=1.0, hold_s=60).granted
    assert not store.reserve("s", 1e-6, cap_usd=1.0, hold_s=60).granted


def test_spend_without_a_cap_is_still_counted(store: SessionStore) -> None:
    store.settle("s", None, 0.5)
    store.settle("s", None, 0.25)
    assert store.load("s").spent_usd == pytest.approx(0.75)


def test_concurrent_reservations_never_exceed_the_cap(store: SessionStore) -> None:
    """Eight threads reserve and settle against one cap; what was spent never passes it."""
    cap, granted = 1.0, []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            amount = rng.uniform(0.005, 0.05)
            grant = store.reserve("shared", amount, cap, hold_s=60)
            if grant.granted:
                cost = amount * rng.uniform(0.2, 1.0)  # actual cost below the worst case
                store.settle("shared", grant.token, cost)
                with lock:
                    granted.append(cost)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = store.load("shared")
    assert snapshot.reserved_usd == 0.0
    assert snapshot.spent_usd == pytest.approx(sum(granted))
    assert snapshot.spent_usd <= cap * (1 + 1e-9)
    assert len(granted) < 8 * 40  # the cap did bind


async def test_async_twins_share_the_state_with_the_sync_calls(store: SessionStore) -> None:
    store.save("s", _update("big", 1, "call_1"))
    assert (await store.aload("s")).state.tool_calls == {"call_1": "big"}
    grant = await store.areserve("s", 0.5, 1.0, 60)
    results = await asyncio.gather(*(store.areserve("s", 0.3, 1.0, 60) for _ in range(4)))
    assert sum(r.granted for r in results) == 1  # 0.5 + 0.3 fits, a second 0.3 does not
    await store.asettle("s", grant.token, 0.1)
    await store.asave("s", _update("small", 0, "call_2"))
    snapshot = store.load("s")
    assert snapshot.spent_usd == pytest.approx(0.1) and snapshot.reserved_usd == pytest.approx(0.3)
    assert snapshot.state.tool_calls == {"call_1": "big", "call_2": "small"}


# -- the in-memory LRU: bounded in size and in time ---------------------------------------------


def test_memory_store_keeps_the_most_recently_used_sessions() -> None:
    clock = FakeClock()
    store = InMemorySessionStore(max_sessions=3, ttl_s=100, clock=clock)
    for name in "abc":
        store.save(name, _update("m", 0))
        clock.now += 1
    store.load("a")  # a is used again: b is now the least recently used
    store.save("d", _update("m", 0))
    assert len(store) == 3
    assert store.load("b").new and not store.load("a").new and not store.load("d").new


def test_memory_store_forgets_idle_sessions_after_ttl() -> None:
    clock = FakeClock()
    store = InMemorySessionStore(max_sessions=10, ttl_s=100, clock=clock)
    store.save("idle", _update("m", 0))
    store.settle("idle", None, 0.5)
    store.save("busy", _update("m", 0))
    for _ in range(3):
        clock.now += 60
        store.load("busy")  # every use restarts its clock
    assert len(store) == 1
    assert store.load("idle").new and store.load("idle").spent_usd == 0.0
    assert not store.load("busy").new


def test_memory_store_reservations_lapse_after_their_hold() -> None:
    """A call whose process never settled it (killed mid-call) stops holding budget."""
    clock = FakeClock()
    store = InMemorySessionStore(max_sessions=10, ttl_s=1000, clock=clock)
    assert store.reserve("s", 0.9, cap_usd=1.0, hold_s=30).granted
    assert not store.reserve("s", 0.9, cap_usd=1.0, hold_s=30).granted
    clock.now += 31
    assert store.load("s").reserved_usd == 0.0
    assert store.reserve("s", 0.9, cap_usd=1.0, hold_s=30).granted


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), True, "10"])
def test_store_bounds_are_checked(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="ttl_s"):
        InMemorySessionStore(ttl_s=bad)  # type: ignore[arg-type]


# -- Redis ------------------------------------------------------------------------------------


def _redis_client(url: str):
    import redis

    return redis.Redis.from_url(url)


def test_every_redis_key_expires_and_names_no_session_id(redis_url: str) -> None:
    store = RedisSessionStore(redis_url, ttl_s=120, prefix="ttl-test:")
    secret_id = "user:alice@example.com/thread 7"
    store.save(secret_id, _update("big", 1, "call_1"))
    store.reserve(secret_id, 0.1, 1.0, hold_s=600)  # a hold longer than the ttl
    store.settle(secret_id, None, 0.05)
    client = _redis_client(redis_url)
    keys = [k.decode() for k in client.scan_iter("ttl-test:*")]
    assert sorted(keys) == sorted(store.keys(secret_id))
    assert all("alice" not in k for k in keys)
    for key in keys:
        ttl_ms = client.pttl(key)
        assert 0 < ttl_ms <= 600_000, key  # the holds live as long as their longest hold
    assert 0 < client.pttl(store.keys(secret_id)[0]) <= 120_000


def test_redis_reservations_lapse_on_the_servers_clock(redis_url: str) -> None:
    store = RedisSessionStore(redis_url, ttl_s=60, prefix=f"lapse:{random.getrandbits(32)}:")
    assert store.reserve("s", 0.9, cap_usd=1.0, hold_s=0.05).granted
    for _ in range(500):  # waits for the lapse; fails only if it never comes
        if store.load("s").reserved_usd == 0.0:
            break
        time.sleep(0.01)
    assert store.reserve("s", 0.9, cap_usd=1.0, hold_s=60).granted


def test_an_unreadable_redis_state_starts_afresh_and_keeps_the_spend(redis_url: str) -> None:
    store = RedisSessionStore(redis_url, ttl_s=60, prefix=f"corrupt:{random.getrandbits(32)}:")
    store.settle("s", None, 0.4)
    _redis_client(redis_url).hset(store.keys("s")[0], "state", b"{not json")
    snapshot = store.load("s")
    assert snapshot.state == SessionState() and snapshot.notes == (UNREADABLE_STATE,)
    assert snapshot.spent_usd == pytest.approx(0.4)
    store.save("s", _update("m", 0))  # and an update replaces it
    assert store.load("s").state.model == "m"


def test_redis_settings_in_configs_never_carry_credentials(monkeypatch) -> None:
    base = {"models": [{"model": "openai/gpt-4o-mini"}]}
    with pytest.raises(InvalidInputError) as caught:
        RouterConfig.from_dict(
            {**base, "session": {"store": "redis", "url": "redis://:hunter2@h/0"}}
        )
    assert "hunter2" not in str(caught.value) and "url_env" in str(caught.value)
    with pytest.raises(InvalidInputError, match="needs url"):
        RouterConfig.from_dict({**base, "session": {"store": "redis"}})
    with pytest.raises(InvalidInputError, match="redis"):
        RouterConfig.from_dict({**base, "session": {"url": "redis://h:6379/0"}})
    config = RouterConfig.from_dict(
        {**base, "session": {"store": "redis", "url_env": "SESSIONS_URL"}}
    )
    assert config.session.url_env == "SESSIONS_URL"


# -- two engine processes, one session --------------------------------------------------------

_TURN = textwrap.dedent(
    """
    import json, sys
    from session_fixtures import SYSTEM, TOOLS, make_engine
    api_base, url, prefix, messages = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    engine = make_engine(
        api_base,
        session={"store": "redis", "url": url, "prefix": prefix, "policy": "sticky"},
        budget={"lambda": 300.0, "max_cost_usd_per_session": float(sys.argv[5])},
    )
    results = []
    for turn in messages:
        try:
            result = engine.run(
                [SYSTEM, *turn], session_id="shared-run", tools=TOOLS, max_tokens=40
            )
        except Exception as error:
            results.append({"error": type(error).__name__})
            continue
        results.append({"model": result.model, "message": result.answer.message(),
                        "trace": result.trace.as_dict()})
    print(json.dumps(results))
    """
)


def _engine_process(server, url: str, prefix: str, turns: list, cap: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _TURN, server.api_base, url, prefix, json.dumps(turns), str(cap)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=engine_env(),
    )


# Only a hung process should hit this: on a loaded shared machine (2 cores, several test
# runs) two engine processes racing through eight turns took over 300 s.
PROCESS_LIMIT_S = 1200


def _results(process: subprocess.Popen) -> list[dict]:
    out, err = process.communicate(timeout=PROCESS_LIMIT_S)
    assert process.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_engine_processes_continue_one_session(fake, redis_url: str) -> None:
    """Process A answers a hard user turn (escalated to "big", which issues a tool call);
    process B gets the tool result: it continues with "big" alone (tool-loop continuity from
    the state A saved), predicts the cached prefix A's call left, and starts from A's spend."""
    prefix = f"two:{random.getrandbits(32)}:"
    user = [{"role": "user", "content": "a hard question"}]
    first = _results(_engine_process(fake, redis_url, prefix, [user], cap=1.0))[0]
    assert first["model"] == "big"
    call = first["message"]["tool_calls"][0]
    follow = [
        *user,
        first["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": "42"},
    ]
    second = _results(_engine_process(fake, redis_url, prefix, [follow], cap=1.0))[0]
    trace = second["trace"]
    assert [r["model"] for r in trace["runs"]] == ["big"]
    assert trace["decisions"][0].startswith("tool-loop continuity: big issued")
    assert trace["stop_reason"] == "tool-loop continuity: big answered"
    session = trace["session"]
    assert not session["new"]
    assert session["spend_before_usd"] == pytest.approx(first["trace"]["cost_usd"])
    assert session["spend_after_usd"] == pytest.approx(fake.total_billed())
    run = trace["runs"][0]
    assert run["expected_cached_tokens"] > 0 and run["cached_tokens"] > 0


@pytest.mark.slow
def test_two_processes_racing_on_one_session_never_pass_its_cap(fake, redis_url: str) -> None:
    """Both processes send hard turns of one session at the same time under a cap that only
    a few fit in: the FAKE provider's own bill for the session stays within the cap."""
    prefix = f"race:{random.getrandbits(32)}:"
    cap = 0.004
    turns = [[{"role": "user", "content": f"hard question {i}"}] for i in range(8)]
    processes = [_engine_process(fake, redis_url, prefix, turns, cap) for _ in range(2)]
    results = [r for p in processes for r in _results(p)]
    runs = [run for r in results if "trace" in r for run in r["trace"]["runs"]]
    capped = [run for run in runs if "session cost cap" in run["reason"]]
    assert capped and any(run["status"] == "ok" for run in runs)  # the cap bound, late
    assert 0 < fake.total_billed() <= cap * (1 + 1e-9)
    store = RedisSessionStore(redis_url, prefix=prefix)
    assert store.load("shared-run").spent_usd == pytest.approx(fake.total_billed())
