"""A SQLite cache of every model response made during calibration.

Why: a dev set run over a whole ladder costs real money and time. Every successful response
is stored under a key of (model label, the exact request sent: model id, endpoint, messages
and parameters, never the API key), committed as soon as it arrives, so an interrupted or
repeated `calibrate` resumes where it stopped and never pays for the same call twice.
Failures are not cached: a rerun retries them.

One `calibrate` at a time per cache: two runs on one cache would both pay for every call
the other has not stored yet. The cache is locked for the whole run through ``CACHE.lock``
next to it (`cascade_core.file_lock`; released by the kernel when the holder dies, however),
and a second run is refused at once. The lock lives in its own file, not on the database,
so it never interferes with SQLite's own locking of the database file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from cascade_core.errors import InvalidInputError
from cascade_core.file_lock import lock_for_run

# Keyword arguments that change how a call is made but not what it answers.
_TRANSPORT_ONLY = frozenset({"api_key", "timeout", "num_retries", "max_retries"})


def request_key(label: str, kwargs: dict[str, Any]) -> str:
    """A stable digest of what was asked of which model."""
    asked = {k: v for k, v in kwargs.items() if k not in _TRANSPORT_ONLY}
    text = json.dumps({"label": label, "request": asked}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """Response dicts by request key. Use from one thread (the calibration event loop)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd = -1
        self._db: sqlite3.Connection | None = None
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise InvalidInputError(
                f"{self.path}: cannot create the response cache ({error.strerror}); "
                "pass another --cache"
            ) from None
        try:
            lock_for_run(
                self._lock_fd,
                self.path,
                "response cache",
                "wait for that calibrate run to finish (or stop it), or pass another --cache",
            )
            self._db = self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY, label TEXT NOT NULL, request TEXT NOT NULL,"
                " response TEXT NOT NULL, created REAL NOT NULL)"
            )
            db.commit()
        except sqlite3.DatabaseError as error:
            raise InvalidInputError(
                f"{self.path}: not a usable response cache ({error}); "
                "pass another --cache or remove this file"
            ) from None
        return db

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the response cache is closed")
        return self._db

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, label: str, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
        asked = {k: v for k, v in kwargs.items() if k not in _TRANSPORT_ONLY}
        self.db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
            (
                key,
                label,
                json.dumps(asked, default=str),
                json.dumps(response, default=str),
                time.time(),
            ),
        )
        self.db.commit()  # one transaction per response: a kill loses at most the one in flight

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Close the database, then release the lock (in that order: no write after it)."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
