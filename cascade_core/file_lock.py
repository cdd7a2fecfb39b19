"""One writer per file for a whole run: an exclusive ``flock`` on a descriptor held open.

Why ``flock`` on an open descriptor: the kernel drops the lock when the last descriptor of
that open file closes, which happens however the holder ends, ``kill -9`` included, so a
crashed run never leaves a stale lock behind (a pid file would, and would need a human to
remove it). The lock is taken without waiting: a second writer is refused at once, before it
reads or pays for anything, rather than queueing behind a job that may last hours.

The holder's pid comes from ``/proc/locks`` (Linux); elsewhere the message says only that
another process holds the file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from cascade_core.errors import InvalidInputError


class FileInUseError(InvalidInputError):
    """Another process holds the run lock of this file (a second writer would duplicate work)."""


def lock_for_run(fd: int, path: str | Path, what: str, fix: str) -> None:
    """Lock ``fd`` (open on ``path``) exclusively until it is closed, or refuse at once.

    ``what`` names the file for the message ("output file"), ``fix`` says what to do.
    Locks are per open file, so a second open in the same process is refused too.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = holder_pid(fd)
        who = "another process" if pid is None else f"another process (pid {pid})"
        raise FileInUseError(f"{path}: {who} is using this {what}; {fix}") from None


def holder_pid(fd: int) -> int | None:
    """The pid holding a ``flock`` on the file open as ``fd``, or None when unknown.

    A ``/proc/locks`` line reads ``1: FLOCK  ADVISORY  WRITE 8466 fe:00:2146354 0 EOF``
    (pid, then device major:minor in hex and the inode); waiters have ``->`` after the index.
    """
    status = os.fstat(fd)
    key = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == key:
                    pid = int(fields[4]) if fields[4].isdigit() else 0
                    return pid if pid > 0 else None
    except OSError:
        return None
    return None
