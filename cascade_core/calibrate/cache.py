"""A SQLite cache of every model response made during calibration.

Why: a dev set run over a whole ladder costs real money and time. Every successful response
is stored under a key of (model label, the exact request sent: model id, endpoint, messages
and parameters, never the API key), committed as soon as it arrives, so an interrupted or
repeated `calibrate` resumes where it stopped and never pays for the same call twice.
Failures are not cached: a rerun retries them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " key TEXT PRIMARY KEY, label TEXT NOT NULL, request TEXT NOT NULL,"
            " response TEXT NOT NULL, created REAL NOT NULL)"
        )
        self._db.commit()

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, label: str, kwargs: dict[str, Any], response: dict[str, Any]) -> None:
        asked = {k: v for k, v in kwargs.items() if k not in _TRANSPORT_ONLY}
        self._db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
            (
                key,
                label,
                json.dumps(asked, default=str),
                json.dumps(response, default=str),
                time.time(),
            ),
        )
        self._db.commit()  # one transaction per response: a kill loses at most the one in flight

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()
