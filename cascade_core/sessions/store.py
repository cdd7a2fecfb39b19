"""Where session state lives between turns: in-process by default, Redis for several replicas.

Spend is not read-modify-written with the rest of the state: two turns of one session may run
at once (parallel tool calls, sub-agents, two replicas), and both must not be granted the same
remaining budget. Before each model call the driver *reserves* that call's worst-case cost,
atomically checked against the session cap together with everything already spent or reserved;
after the call it *settles* the reservation with the actual cost. A reservation expires on its
own after ``hold_s`` (the longest a call may take), so a process killed mid-call cannot lock a
session's budget for longer than that.

Both stores are bounded in time (``ttl_s`` after the last use, on every Redis key) and the
in-memory one in size (least recently used sessions go first). A session that expired or was
evicted starts afresh, its spend included: size ``ttl_s`` and ``max_sessions`` to outlive the
longest agent run whose budget must hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from cascade_core.errors import CascadeError, InvalidInputError
from cascade_core.sessions.state import SessionSnapshot, SessionState, SessionUpdate

# Rounding slack of a cap check, the same relative tolerance the per-request cap allows.
CAP_TOLERANCE = 1e-9
UNREADABLE_STATE = "stored session state was unreadable (another version?); started afresh"


@dataclass(frozen=True)
class Reservation:
    """The store's answer to a reservation: granted or not, and the session's committed spend
    (settled plus reserved) just before it."""

    granted: bool
    token: str | None
    committed_usd: float


class SessionStoreError(CascadeError):
    """The session store could not complete an operation."""


@runtime_checkable
class SessionStore(Protocol):
    """What the engine needs from a session store; sync and async twins of each operation
    (the async drivers must not block their event loop on a network store)."""

    def load(self, session_id: str) -> SessionSnapshot: ...

    def save(self, session_id: str, update: SessionUpdate) -> None: ...

    def reserve(
        self, session_id: str, amount_usd: float, cap_usd: float, hold_s: float
    ) -> Reservation: ...

    def settle(self, session_id: str, token: str | None, cost_usd: float) -> float: ...

    async def aload(self, session_id: str) -> SessionSnapshot: ...

    async def asave(self, session_id: str, update: SessionUpdate) -> None: ...

    async def areserve(
        self, session_id: str, amount_usd: float, cap_usd: float, hold_s: float
    ) -> Reservation: ...

    async def asettle(self, session_id: str, token: str | None, cost_usd: float) -> float: ...


def _check_bounds(ttl_s: float, max_sessions: int | None = None) -> None:
    if not isinstance(ttl_s, (int, float)) or isinstance(ttl_s, bool) or not ttl_s > 0:
        raise InvalidInputError(f"session ttl_s: must be a number > 0, got {ttl_s!r}")
    if ttl_s == float("inf"):
        raise InvalidInputError("session ttl_s: must be finite: every session must expire")
    if max_sessions is not None and (
        not isinstance(max_sessions, int) or isinstance(max_sessions, bool) or max_sessions < 1
    ):
        raise InvalidInputError(
            f"session max_sessions: must be an integer >= 1, got {max_sessions!r}"
        )


def _over_cap(committed: float, amount: float, cap: float) -> bool:
    return committed + amount > cap * (1 + CAP_TOLERANCE)


# -- in-process ---------------------------------------------------------------------------


@dataclass
class _Entry:
    state: SessionState = field(default_factory=SessionState)
    spent: float = 0.0
    holds: dict[str, tuple[float, float]] = field(default_factory=dict)  # token: amount, until
    touched: float = 0.0

    def reserved(self, now: float) -> float:
        for token in [t for t, (_, until) in self.holds.items() if until <= now]:
            del self.holds[token]
        return sum(amount for amount, _ in self.holds.values())


class InMemorySessionStore:
    """Sessions in this process: an LRU of at most ``max_sessions``, each dropped ``ttl_s``
    after its last use. Thread-safe; the async twins run inline (no I/O to wait for).

    ``clock`` is injectable so tests can move time instead of sleeping.
    """

    def __init__(
        self,
        max_sessions: int = 10_000,
        ttl_s: float = 3600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_bounds(ttl_s, max_sessions)
        self.max_sessions = max_sessions
        self.ttl_s = float(ttl_s)
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._entries)

    def __repr__(self) -> str:
        return f"InMemorySessionStore(max_sessions={self.max_sessions}, ttl_s={self.ttl_s:g})"

    def _expire(self, now: float) -> None:
        """Drop expired sessions; the order is by last use, so they are all at the front."""
        while self._entries:
            first = next(iter(self._entries.values()))
            if now - first.touched < self.ttl_s:
                return
            self._entries.popitem(last=False)

    def _entry(self, session_id: str, create: bool) -> tuple[_Entry | None, float]:
        now = self._clock()
        self._expire(now)
        entry = self._entries.get(session_id)
        if entry is None and create:
            entry = self._entries[session_id] = _Entry()
            while len(self._entries) > self.max_sessions:
                self._entries.popitem(last=False)
        if entry is not None:
            entry.touched = now
            self._entries.move_to_end(session_id)
        return entry, now

    def load(self, session_id: str) -> SessionSnapshot:
        with self._lock:
            entry, now = self._entry(session_id, create=False)
            if entry is None:
                return SessionSnapshot(session_id)
            return SessionSnapshot(
                session_id, entry.state, entry.spent, entry.reserved(now), new=False
            )

    def save(self, session_id: str, update: SessionUpdate) -> None:
        with self._lock:
            entry, _ = self._entry(session_id, create=True)
            assert entry is not None
            entry.state = entry.state.apply(update, time.time())

    def reserve(
        self, session_id: str, amount_usd: float, cap_usd: float, hold_s: float
    ) -> Reservation:
        with self._lock:
            entry, now = self._entry(session_id, create=True)
            assert entry is not None
            committed = entry.spent + entry.reserved(now)
            if _over_cap(committed, amount_usd, cap_usd):
                return Reservation(False, None, committed)
            token = uuid.uuid4().hex
            entry.holds[token] = (amount_usd, now + hold_s)
            return Reservation(True, token, committed)

    def settle(self, session_id: str, token: str | None, cost_usd: float) -> float:
        with self._lock:
            entry, _ = self._entry(session_id, create=True)
            assert entry is not None
            if token is not None:
                entry.holds.pop(token, None)
            entry.spent += cost_usd
            return entry.spent

    async def aload(self, session_id: str) -> SessionSnapshot:
        return self.load(session_id)

    async def asave(self, session_id: str, update: SessionUpdate) -> None:
        self.save(session_id, update)

    async def areserve(
        self, session_id: str, amount_usd: float, cap_usd: float, hold_s: float
    ) -> Reservation:
        return self.reserve(session_id, amount_usd, cap_usd, hold_s)

    async def asettle(self, session_id: str, token: str | None, cost_usd: float) -> float:
        return self.settle(session_id, token, cost_usd)


# -- Redis --------------------------------------------------------------------------------

# Reservations are members "<token>:<amount>" of a sorted set scored by their expiry in ms
# of the Redis server's clock (one clock for every replica). Each script first drops the
# expired ones; spend is a hash field changed only by HINCRBYFLOAT.
_HOLDS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local reserved = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  reserved = reserved + tonumber(string.match(member, ':([^:]*)$'))
end
"""
_LOAD = (
    _HOLDS
    + """
local values = redis.call('HMGET', KEYS[1], 'state', 'spent')
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
return {values[1], values[2], tostring(reserved)}
"""
)
_RESERVE = (
    _HOLDS
    + """
local committed = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0') + reserved
local amount = tonumber(ARGV[1])
if committed + amount > tonumber(ARGV[2]) * (1 + tonumber(ARGV[6])) then
  return {0, tostring(committed)}
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[5] .. ':' .. ARGV[1])
redis.call('HSETNX', KEYS[1], 'spent', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], math.max(tonumber(ARGV[4]), tonumber(ARGV[3])))
return {1, tostring(committed)}
"""
)
_SETTLE = """
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[2], ARGV[3]) end
local spent = redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return spent
"""
_SAVE_ATTEMPTS = 100


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _parse_state(raw: Any) -> tuple[SessionState, tuple[str, ...]]:
    text = _text(raw)
    if text is None:
        return SessionState(), ()
    try:
        return SessionState.model_validate_json(text), ()
    except ValidationError:
        return SessionState(), (UNREADABLE_STATE,)


def _snapshot(session_id: str, reply: list[Any]) -> SessionSnapshot:
    raw_state, raw_spent, raw_reserved = reply
    state, notes = _parse_state(raw_state)
    spent = float(_text(raw_spent) or 0.0)
    return SessionSnapshot(
        session_id,
        state,
        spent,
        float(_text(raw_reserved) or 0.0),
        new=raw_state is None and raw_spent is None,
        notes=notes,
    )


def _import_redis() -> Any:
    try:
        import redis
        import redis.asyncio
    except ImportError as error:
        raise ImportError(
            "session.store 'redis' needs the redis package: pip install 'cascade-router[redis]'",
            name="redis",
        ) from error
    return redis


class RedisSessionStore:
    """Sessions in Redis, shared by every process that uses the same ``url`` and ``prefix``.

    Keys (both expire ``ttl_s`` after the session's last use): ``<prefix>{<hash>}`` a hash
    with the state JSON and the spend, ``<prefix>{<hash>}:holds`` the reservations. The
    braces make both one Redis Cluster slot; the hash of the session id keeps ids of any
    shape out of key names.
    """

    def __init__(
        self,
        url: str,
        ttl_s: float = 3600.0,
        prefix: str = "cascade-router:session:",
        *,
        client: Any = None,
    ) -> None:
        _check_bounds(ttl_s)
        redis = _import_redis()
        self.ttl_s = float(ttl_s)
        self.prefix = prefix
        self._url = url
        self._redis = redis
        self._client = client if client is not None else redis.Redis.from_url(url)
        self._scripts = {
            name: self._client.register_script(body)
            for name, body in (("load", _LOAD), ("reserve", _RESERVE), ("settle", _SETTLE))
        }
        # redis.asyncio connections belong to the event loop that opened them.
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, dict]] = (
            weakref.WeakKeyDictionary()
        )
        self._async_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisSessionStore(prefix={self.prefix!r}, ttl_s={self.ttl_s:g})"

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl_s * 1000))

    def keys(self, session_id: str) -> tuple[str, str]:
        """The two Redis keys of one session (for operators and tests)."""
        digest = hashlib.sha256(session_id.encode()).hexdigest()[:32]
        key = f"{self.prefix}{{{digest}}}"
        return key, f"{key}:holds"

    def _async_client(self) -> tuple[Any, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        with self._async_lock:
            found = self._async.get(loop)
            if found is None:
                client = self._redis.asyncio.Redis.from_url(self._url)
                scripts = {
                    name: client.register_script(body)
                    for name, body in (
                        ("load", _LOAD),
                        ("reserve", _RESERVE),
                        ("settle", _SETTLE),
                    )
                }
                found = self._async[loop] = (client, scripts)
            return found

    # -- sync -----------------------------------------------------------------------------

    def load(self, session_id: str) -> SessionSnapshot:
        reply = self._scripts["load"](keys=self.keys(session_id), args=[self._ttl_ms])
        return _snapshot(session_id, reply)

    def reserve(
        self, session_id: str, amount_usd: float, cap_usd: float, hold_s: float
    ) -> Reservation:
        token = uuid.uuid4().hex
        reply = self._scripts["reserve"](
            keys=self.keys(session_id), args=self._reserve_args(amount_usd, cap_usd, hold_s, token)
        )
        return self._reservation(reply, token, amount_usd)

    def settle(self, session_id: str, token: str | None, cost_usd: float) -> float:
        reply = self._scripts["settle"](
            keys=self.keys(session_id), args=[repr(float(cost_usd)), self._ttl_ms, token or ""]
        )
        return float(_text(reply))

    def save(self, session_id: str, update: SessionUpdate) -> None:
        key, _ = self.keys(session_id)
        with self._client.pipeline(transaction=True) as pipe:
            for _ in range(_SAVE_ATTEMPTS):
                try:
                    pipe.watch(key)
                    state, _notes = _parse_state(pipe.hget(key, "state"))
                    pipe.multi()
                    pipe.hset(key, "state", state.apply(update, time.time()).model_dump_json())
                    pipe.pexpire(key, self._ttl_ms)
                    pipe.execute()
                    return
                except self._redis.WatchError:
                    continue
        raise SessionStoreError(f"session state: {_SAVE_ATTEMPTS} concurrent writers in a row")

    # -- async ----------------------------------------------------------------------------

    async def aload(self, session_id: str) -> SessionSnapshot:
        _, scripts = self._async_client()
        reply = await scripts["load"](keys=self.keys(session_id), args=[self._ttl_ms])
        return _snapshot(session_id, reply)

    async def areserve(
        self, session_id: str, amount_usd: float, cap_usd: float, hold_s: float
    ) -> Reservation:
        _, scripts = self._async_client()
        token = uuid.uuid4().hex
        reply = await scripts["reserve"](
            keys=self.keys(session_id), args=self._reserve_args(amount_usd, cap_usd, hold_s, token)
        )
        return self._reservation(reply, token, amount_usd)

    async def asettle(self, session_id: str, token: str | None, cost_usd: float) -> float:
        _, scripts = self._async_client()
        reply = await scripts["settle"](
            keys=self.keys(session_id), args=[repr(float(cost_usd)), self._ttl_ms, token or ""]
        )
        return float(_text(reply))

    async def asave(self, session_id: str, update: SessionUpdate) -> None:
        client, _ = self._async_client()
        key, _ = self.keys(session_id)
        async with client.pipeline(transaction=True) as pipe:
            for _ in range(_SAVE_ATTEMPTS):
                try:
                    await pipe.watch(key)
                    state, _notes = _parse_state(await pipe.hget(key, "state"))
                    pipe.multi()
                    pipe.hset(key, "state", state.apply(update, time.time()).model_dump_json())
                    pipe.pexpire(key, self._ttl_ms)
                    await pipe.execute()
                    return
                except self._redis.WatchError:
                    continue
        raise SessionStoreError(f"session state: {_SAVE_ATTEMPTS} concurrent writers in a row")

    # -- shared ---------------------------------------------------------------------------

    def _reserve_args(self, amount: float, cap: float, hold_s: float, token: str) -> list[Any]:
        return [
            repr(float(amount)),
            repr(float(cap)),
            max(1, round(hold_s * 1000)),
            self._ttl_ms,
            token,
            repr(CAP_TOLERANCE),
        ]

    @staticmethod
    def _reservation(reply: list[Any], token: str, amount: float) -> Reservation:
        granted, committed = int(reply[0]), float(_text(reply[1]))
        member = f"{token}:{float(amount)!r}"
        return Reservation(bool(granted), member if granted else None, committed)
