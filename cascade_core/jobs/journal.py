"""The batch output file as a crash-safe journal: one JSON line per input row, keyed by id.

Why this is enough for exactly-once after ``kill -9`` at any moment:

* every result is written by one ``write`` of the whole line to a file opened with
  ``O_APPEND`` and then ``fsync``-ed, so a line is either completely there, or is the torn
  tail of the file (a crash of the machine mid-write);
* on start, the file is scanned: complete lines name the ids already done; a last line
  without its newline, or that does not parse, is cut off (``truncate``) before anything new
  is appended;
* only one process writes (the driver; Ray workers return results to it), and an id is
  written only if it is not already in the file.

A row killed before its line was written is simply run again; one killed after is skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cascade_core.errors import InvalidInputError


class Journal:
    """Appends result rows to ``path``; knows which ids are already done."""

    def __init__(self, path: str | Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.done: set[str] = set()
        self.truncated_bytes = 0
        self._recover()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _recover(self) -> None:
        """Read the ids already written and cut a torn last line."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good = 0
        lines = data.splitlines(keepends=True)
        for number, line in enumerate(lines, start=1):
            if not line.endswith(b"\n"):
                break  # the torn tail of an interrupted write
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number < len(lines):  # not a crash artefact: never cut good rows after it
                    raise InvalidInputError(
                        f"{self.path}:{number}: not valid JSON in the middle of the output; "
                        "fix or remove that line, then rerun"
                    ) from None
                break  # a torn last line that happened to end with a newline byte
            if isinstance(record, dict) and "id" in record:
                self.done.add(str(record["id"]))
            good += len(line)
        if good < len(data):
            self.truncated_bytes = len(data) - good
            with open(self.path, "r+b") as handle:
                handle.truncate(good)
                handle.flush()
                os.fsync(handle.fileno())

    def append(self, record: dict[str, Any]) -> bool:
        """Write one row unless its id is done; True when it was written."""
        key = str(record["id"])
        if key in self.done:
            return False
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        written = os.write(self._fd, line)
        while written < len(line):  # short writes are rare but legal; finish the line
            written += os.write(self._fd, line[written:])
        if self.fsync:
            os.fsync(self._fd)
        self.done.add(key)
        return True

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
