"""Reading the text files users hand us (configs, profiles, dev sets, replay logs).

Why one reader: a user file can be missing, a directory, not UTF-8, or a truncated gzip, and
each of those must end as one `InvalidInputError` that names the file and line, never as a
``UnicodeDecodeError`` or ``EOFError`` deep inside a parser. Decoding line by line (instead of
through a buffered text wrapper) is what makes the line number of a bad byte exact.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from cascade_core.errors import InvalidInputError

__all__ = ["TextFileError", "iter_lines", "read_text"]

_FIX_ENCODING = "save the file as UTF-8"
_BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark, which some editors put first: ignored


class TextFileError(InvalidInputError):
    """A user file that cannot be read as UTF-8 text; ``line`` is None for the whole file."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {reason}")


def _open_binary(path: Path):
    try:
        return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    except OSError as error:
        raise TextFileError(path, None, f"cannot read ({error.strerror or error})") from None


def _decode(data: bytes, path: Path, line: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TextFileError(
            path,
            line,
            f"not UTF-8 text (byte 0x{data[error.start]:02x} at byte {error.start + 1} of the "
            f"line); {_FIX_ENCODING}",
        ) from None


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` for every line of ``path`` (``.gz`` decompressed), line endings
    kept, lines split at ``\\n`` only (the JSON Lines convention), a leading UTF-8 byte-order
    mark dropped.

    Raises `TextFileError` for a missing or unreadable file, a line that is not UTF-8, and a
    truncated or corrupt gzip stream (naming the line where the readable data ended).
    """
    path = Path(path)
    line = 0
    with _open_binary(path) as handle:
        try:
            for line, data in enumerate(handle, start=1):
                if line == 1 and data.startswith(_BOM):
                    data = data[len(_BOM) :]
                yield line, _decode(data, path, line)
        except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
            kind = "compressed data" if path.name.endswith(".gz") else "file"
            raise TextFileError(
                path,
                line + 1,
                f"cannot read the {kind} ({error}); the file is truncated or corrupt",
            ) from None


def read_text(path: str | os.PathLike[str]) -> str:
    """The whole file as text (``.gz`` decompressed), with the errors of `iter_lines`."""
    return "".join(text for _, text in iter_lines(path))
