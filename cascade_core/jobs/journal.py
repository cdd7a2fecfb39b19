"""The batch output file as a crash-safe journal: one JSON line per input row, keyed by id.

Why this is enough for exactly-once after ``kill -9`` at any moment:

* one process writes: the journal holds an exclusive ``flock`` on the output file for the
  whole run (`cascade_core.file_lock`), so a second job on the same file is refused before
  it reads the file or calls a model, and the kernel releases the lock when the holder dies,
  however it dies (Ray workers return results to the driver, which is the only writer);
* every result is written by one ``write`` of the whole line to the file opened with
  ``O_APPEND`` and then ``fsync``-ed, so a line is either completely there, or is the torn
  tail of the file (a crash of the machine mid-write);
* on start, under the lock, the file is scanned: complete lines name the ids already done; a
  last line without its newline, or that does not parse, is cut off before anything new is
  appended;
* an id is written only if it is not already in the file.

A row killed before its line was written is simply run again; one killed after is skipped.

The file is read and cut through the locked descriptor itself, never a second ``open``:
where ``flock`` is emulated with POSIX locks (NFS), closing any other descriptor of the file
would drop the lock.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cascade_core.errors import InvalidInputError
from cascade_core.file_lock import lock_for_run

_CHUNK = 1 << 20


class Journal:
    """Appends result rows to ``path``; knows which ids are already done."""

    def __init__(self, path: str | Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.done: set[str] = set()
        self.truncated_bytes = 0
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise InvalidInputError(
                f"{self.path}: cannot open the output file ({error.strerror}); check the path"
            ) from None
        try:
            lock_for_run(
                self._fd,
                self.path,
                "output file",
                "wait for that job to finish (or stop it) and rerun, or write to another file",
            )
            self._recover()
        except BaseException:
            os.close(self._fd)
            raise

    def _recover(self) -> None:
        """Read the ids already written and cut a torn last line."""
        size = os.fstat(self._fd).st_size
        good = 0
        for number, line in enumerate(_lines(self._fd, size), start=1):
            last = good + len(line) == size
            if not line.endswith(b"\n"):
                break  # the torn tail of an interrupted write
            try:
                record = json.loads(line.decode("utf-8"))
            except (ValueError, RecursionError):  # not UTF-8, or not JSON
                if not last:  # not a crash artefact: never cut good rows after it
                    raise InvalidInputError(
                        f"{self.path}:{number}: not a valid JSON line in the middle of the "
                        "output; fix or remove that line, then rerun"
                    ) from None
                break  # a torn last line that happened to end with a newline byte
            if isinstance(record, dict) and "id" in record:
                self.done.add(str(record["id"]))
            good += len(line)
        if good < size:
            self.truncated_bytes = size - good
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)

    def append(self, record: dict[str, Any]) -> bool:
        """Write one row unless its id is done; True when it was written."""
        key = str(record["id"])
        if key in self.done:
            return False
        line = _encode(record)
        written = os.write(self._fd, line)
        while written < len(line):  # short writes are rare but legal; finish the line
            written += os.write(self._fd, line[written:])
        if self.fsync:
            os.fsync(self._fd)
        self.done.add(key)
        return True

    def close(self) -> None:
        """Close the file, which releases the lock."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Characters that JSON leaves raw inside strings but `str.splitlines` treats as line breaks.
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _encode(record: dict[str, Any]) -> bytes:
    """One line of UTF-8 JSON that every line splitter sees as one line (U+2028 and kin are
    escaped). Text that UTF-8 cannot hold (lone surrogates, which JSON input may carry as
    escapes) is written as JSON escapes, so the file stays valid UTF-8."""
    text = json.dumps(record, ensure_ascii=False, default=str)
    for raw, escaped in _LINE_BREAKS.items():
        text = text.replace(raw, escaped)
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(record, ensure_ascii=True, default=str) + "\n").encode("ascii")


def _lines(fd: int, size: int) -> Iterator[bytes]:
    """The first ``size`` bytes of ``fd`` as lines (keeping their ``\\n``), read in chunks."""
    offset = 0
    parts: list[bytes] = []
    while offset < size:
        chunk = os.pread(fd, min(_CHUNK, size - offset), offset)
        if not chunk:
            break
        offset += len(chunk)
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            parts.append(chunk[start : end + 1])
            yield b"".join(parts)
            parts, start = [], end + 1
        if start < len(chunk):
            parts.append(chunk[start:])
    if parts:
        yield b"".join(parts)
