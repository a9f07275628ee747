"""The trainer's append-only writer of ``events.jsonl`` (and, beside it, ``events.idx``).

Observers registered here see every record a writer of this process puts on disk
(``trainer.train.console`` draws the foreground progress line with one).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from trainer.events import indexwrite
from trainer.events.codec import encode
from trainer.events.schema import Event

# Observers see every record an EventWriter in this process writes (after it is on disk).
# ``trainer.train.console`` registers one to draw the foreground progress line.
_OBSERVERS: list[Callable[[dict[str, Any]], None]] = []


def add_observer(fn: Callable[[dict[str, Any]], None]) -> None:
    """Call ``fn(record)`` after each record any EventWriter of this process writes."""
    if fn not in _OBSERVERS:
        _OBSERVERS.append(fn)


def remove_observer(fn: Callable[[dict[str, Any]], None]) -> None:
    if fn in _OBSERVERS:
        _OBSERVERS.remove(fn)


class EventWriteError(OSError):
    """The event log could not take a record (disk full, I/O error); names file and cause."""

    def __str__(self) -> str:
        return str(self.strerror)  # the whole message, without OSError's "[Errno n]" prefix


class EventWriter:
    """Appends records to ``events.jsonl``, one line per ``write``, straight to the file.

    On open, a log whose last byte is not a newline (a writer killed mid-line) gets one,
    so the next record never glues onto the torn one. A write that fails part-way (ENOSPC,
    EIO) is cut back to the last complete line before EventWriteError is raised, so readers
    never see a torn last line; the writer stays usable for a later, smaller record. Beside
    the log it keeps the binary index ``events.idx`` (``trainer.events.index``: a cache for
    readers, never needed; any error of its own disables it, never the run).
    """

    def __init__(self, path: str | os.PathLike[str], *, index: bool = True) -> None:
        self.path = os.fspath(path)
        # Unbuffered: a failed write must not leave bytes queued for a later flush.
        self._fd: int | None = os.open(
            self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666
        )
        try:
            self._size = os.fstat(self._fd).st_size
            if self._size > 0:
                if os.pread(self._fd, 1, self._size - 1) != b"\n":
                    self._append(b"\n", "end a torn line in")
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise
        self._index = None
        if index:
            self._index = indexwrite.IndexWriter.open(self.path, self._size)

    def _append(self, data: bytes, what: str = "append a record to") -> None:
        assert self._fd is not None, "EventWriter is closed"
        start, done = self._size, 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as e:
            self._cut_back(start)
            raise EventWriteError(
                e.errno, f"cannot {what} {self.path}: {e.strerror or e}", self.path
            ) from None
        self._size = start + done

    def _cut_back(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)  # type: ignore[arg-type]
        except OSError:
            pass  # nothing more to do; the next writer ends the torn line

    def write(self, event: Event, t: float | None = None) -> dict[str, Any]:
        rec = event.to_record(t)
        start = self._size
        self._append(encode(rec))
        if self._index is not None:
            self._index.add(rec, start, self._size)
        for fn in _OBSERVERS:
            fn(rec)
        return rec

    def sync(self) -> None:
        """fsync the log (at run end and after checkpoints; not per line, that costs ms)."""
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as e:
            raise EventWriteError(
                e.errno, f"cannot sync {self.path}: {e.strerror or e}", self.path
            ) from None
        if self._index is not None:
            self._index.flush()

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        if self._fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = None
                if self._index is not None:
                    self._index.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
