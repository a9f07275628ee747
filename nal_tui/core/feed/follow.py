"""Follow ``events.jsonl``: bytes -> complete lines -> records, in batches; no Textual.

Reads from a saved byte offset and consumes only complete lines (a partial last line
waits for its newline). watchdog coalesces and drops events, reports truncation as a
plain modification and ``os.replace`` as a move, so every file event (and a periodic
safety-net timer) only means "re-check the file". A check notices:

- truncation (size below the offset, or the bytes before the offset changed) and
  replacement (a new inode while the old one is unlinked): reading restarts at offset 0
  and the next batch carries ``stats.reset`` -- the consumer must start over before
  feeding it (``loader.apply_batch`` resets the state);
- rotation (the old file renamed away, still linked): the old file is read to its end,
  then the new one from 0, without a reset (it continues the log).

Garbled lines (bad JSON, schema errors) are counted and sampled, never fatal.

Opening a long run: ``load(deliver, index=...)`` reads the backlog now, letting ``index``
read a prefix of the file first (``loader.load_history`` passes one that goes through the
binary index ``events.idx``), and ``start()`` keeps following from there. The follower
knows files and callbacks only, never the state they feed. Every line goes through the
one parser, ``trainer.events.parse_lines``. (``tail.read_tail`` previews the end of a log.)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from trainer.events.parse import parse_lines

log = logging.getLogger(__name__)

Records = list[dict[str, Any]]
Deliver = Callable[[Records, "FollowStats"], None]
# Reads a prefix of the log from its file descriptor (e.g. through an index) and returns
# (offset, lines) to go on from, or None when it read nothing.
IndexRead = Callable[[int], "tuple[int, int] | None"]


@dataclass(frozen=True)
class FollowStats:
    """A snapshot of the follower, passed with every batch."""

    path: str
    offset: int = 0  # bytes of complete lines consumed from the current file
    size: int = 0  # the current file's size at the last check
    bytes_read: int = 0  # consumed over all files
    lines: int = 0  # lines consumed in the current file (for line numbers in messages)
    records: int = 0  # records delivered in total
    garbled: int = 0  # unreadable lines in total
    new_garbled: int = 0  # unreadable lines in this batch
    last_garbled: str | None = None  # "events.jsonl line N: why: text"
    resets: int = 0  # truncations and replacements seen
    rotations: int = 0
    reset: bool = False  # this batch starts over: reset the state before feeding it
    caught_up: bool = False  # this batch reached the end of the file
    missing: bool = True  # the log does not exist (yet)


class _Handler(FileSystemEventHandler):
    def __init__(self, name: str, wake: threading.Event) -> None:
        self._name = name
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        for p in (event.src_path, getattr(event, "dest_path", "")):
            if p and os.path.basename(os.fsdecode(p)) == self._name:
                self._wake.set()
                return


class LogFollower:
    """Tails one event log and hands batches of records to ``on_records(records, stats)``.

    ``on_records`` runs in the follower's thread after ``start()`` (post a message from it,
    do not touch widgets), or in the caller's thread for ``check()``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_records: Callable[[Records, FollowStats], None],
        polling: bool = False,
        poll_interval: float = 0.25,
        *,
        recheck_s: float = 1.0,
        batch_lines: int = 20_000,
        chunk_bytes: int = 4 << 20,
    ) -> None:
        if batch_lines < 1 or chunk_bytes < 1:
            raise ValueError("LogFollower: batch_lines and chunk_bytes must be >= 1")
        self.path = Path(path)
        self.on_records = on_records
        self.polling = polling
        self.poll_interval = poll_interval
        self.recheck_s = recheck_s
        self.batch_lines = batch_lines
        self.chunk_bytes = chunk_bytes
        self.error: BaseException | None = None  # the last exception raised by on_records
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Any = None
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._sig = b""  # the bytes just before the offset, to notice a rewrite
        self._pending_reset = False
        self._stats = FollowStats(str(self.path))
        self.used_index = False  # the last load() read a prefix through its ``index``

    @property
    def stats(self) -> FollowStats:
        return self._stats

    # ---- threads -----------------------------------------------------------------------

    def start(self) -> None:
        """Start watching: an immediate check (the backlog), then on every file event."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._wake.set()
        self._thread = threading.Thread(target=self._run, name="nal-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watcher and the thread, and close the file."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._unwatch()
        with self._lock:
            self._close()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._observer is None:
                self._watch()
            self._wake.wait(self.recheck_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.check()
            except Exception:  # e.g. a permission change: report it and keep trying
                log.exception("event log %s: check failed", self.path)

    def _watch(self) -> None:
        """Watch the run directory (once it exists); events only wake the checker."""
        directory = self.path.parent
        if not directory.is_dir():
            return
        obs = PollingObserver(timeout=self.poll_interval) if self.polling else Observer()
        obs.schedule(_Handler(self.path.name, self._wake), str(directory), recursive=False)
        try:
            obs.start()
        except OSError as e:  # inotify limits: fall back to polling
            log.warning("inotify unavailable for %s (%s); polling instead", directory, e)
            obs = PollingObserver(timeout=self.poll_interval)
            obs.schedule(_Handler(self.path.name, self._wake), str(directory), recursive=False)
            obs.start()
        self._observer = obs

    def _unwatch(self) -> None:
        obs, self._observer = self._observer, None
        if obs is not None:
            obs.stop()
            obs.join(timeout=5)

    # ---- reading -----------------------------------------------------------------------

    def check(self) -> int:
        """Read whatever is complete now, delivering it to ``on_records``; returns records."""
        n = 0

        def deliver(recs: Records, stats: FollowStats) -> None:
            nonlocal n
            n += len(recs)
            try:
                self.on_records(recs, stats)
            except Exception as e:  # a consumer bug must not stop the follower
                self.error = e
                log.exception("event log consumer failed on a batch of %d records", len(recs))

        with self._lock:
            self._check(deliver)
        return n

    def read_available(self) -> Records:
        """Read whatever is complete now and return it (no callback); see ``stats``."""
        out: Records = []
        with self._lock:
            self._check(lambda recs, _stats: out.extend(recs))
        return out

    def load(self, deliver: Deliver, index: IndexRead | None = None) -> FollowStats:
        """Read everything complete now and hand it to ``deliver`` (not ``on_records``).

        A fresh read (nothing consumed yet) lets ``index`` read a prefix of the file first;
        the rest goes as ``check()`` would, and ``start()`` follows on from there.
        """
        with self._lock:
            if self._fd is None and self._open(resume=False) and self._stats.offset == 0:
                if index is not None:
                    self._skip_prefix(index(self._fd))
            self._check(deliver)
        return self._stats

    def _skip_prefix(self, got: tuple[int, int] | None) -> None:
        """Go on from where a prefix reader stopped: ``got`` is (offset, lines) or None."""
        self.used_index = got is not None
        if got is None:
            return
        assert self._fd is not None
        offset, lines = got
        self._sig = os.pread(self._fd, min(32, offset), offset - min(32, offset))
        self._stats = replace(self._stats, offset=offset, lines=lines, bytes_read=offset)

    def _close(self) -> None:
        """Close the file; its identity and offset stay, so a restart continues from there."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self, resume: bool) -> bool:
        """Open the file now at ``path``; False when there is none.

        With ``resume`` (after ``stop()``), the same file continues from the saved offset
        and a different one starts over with a reset; otherwise reading starts at 0.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino)
        same = resume and ident == self._ident
        if resume and self._ident is not None and not same:
            self._pending_reset = True
            self._stats = replace(self._stats, resets=self._stats.resets + 1)
        self._fd, self._ident = fd, ident
        if not same:
            self._sig = b""
            self._stats = replace(self._stats, offset=0, lines=0)
        self._stats = replace(self._stats, missing=False)
        return True

    def _missing(self, deliver: Callable[[Records, FollowStats], None]) -> None:
        self._stats = replace(self._stats, missing=True, size=0)
        if self._pending_reset:  # tell the consumer now, not when a new file turns up
            self._pending_reset = False
            self._stats = replace(self._stats, reset=True, new_garbled=0, caught_up=True)
            deliver([], self._stats)

    def _check(self, deliver: Callable[[Records, FollowStats], None]) -> None:
        try:
            st = os.stat(self.path)
            ident: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            ident = None
        if self._fd is None:
            if ident is None or not self._open(resume=True):
                self._missing(deliver)
                return
            self._check_truncation()
        elif ident != self._ident:
            # A different file (or none) at the path: rotated away, replaced or deleted.
            if os.fstat(self._fd).st_nlink > 0:
                self._read(deliver, final=ident is None)  # rotated: finish the old
                if ident is None:
                    return  # keep following the old file until a new one appears
                self._stats = replace(self._stats, rotations=self._stats.rotations + 1)
                self._close()
            else:
                self._close()
                self._ident = None  # gone for good: whatever turns up next starts over
                self._stats = replace(self._stats, resets=self._stats.resets + 1)
                self._pending_reset = True
            if not self._open(resume=False):
                self._missing(deliver)
                return
        else:
            self._check_truncation()
        self._read(deliver, final=True)

    def _check_truncation(self) -> None:
        assert self._fd is not None
        off = self._stats.offset
        size = os.fstat(self._fd).st_size
        rewritten = (
            bool(self._sig)
            and os.pread(self._fd, len(self._sig), off - len(self._sig)) != self._sig
        )
        if size < off or rewritten:
            self._sig = b""
            self._pending_reset = True
            self._stats = replace(self._stats, offset=0, lines=0, resets=self._stats.resets + 1)

    def _read(self, deliver: Callable[[Records, FollowStats], None], final: bool) -> None:
        """Consume every complete line from the offset on, in batches of ``batch_lines``."""
        assert self._fd is not None
        fd = self._fd
        want = self.chunk_bytes
        delivered = False
        while True:
            off = self._stats.offset
            data = os.pread(fd, want, off)
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if len(data) == want:  # one line longer than a chunk: read more of it
                    want *= 2
                    continue
                break
            want = self.chunk_bytes
            size = os.fstat(fd).st_size
            eof = len(data) < self.chunk_bytes or size <= off + cut
            lines = data[:cut].split(b"\n")
            lines.pop()
            self._sig = data[max(0, cut - 32) : cut]
            for i in range(0, len(lines), self.batch_lines):
                part = lines[i : i + self.batch_lines]
                recs, bad, sample = parse_lines(part, self._stats.lines + 1, self.path.name)
                s = self._stats
                last_part = i + self.batch_lines >= len(lines)
                nbytes = sum(map(len, part)) + len(part)
                self._stats = replace(
                    s,
                    offset=s.offset + nbytes,
                    size=max(size, off + len(data)),
                    bytes_read=s.bytes_read + nbytes,
                    lines=s.lines + len(part),
                    records=s.records + len(recs),
                    garbled=s.garbled + bad,
                    new_garbled=bad,
                    last_garbled=sample or s.last_garbled,
                    reset=self._pending_reset,
                    caught_up=final and eof and last_part,
                    missing=False,
                )
                self._pending_reset = False
                deliver(recs, self._stats)
                delivered = True
            if eof:
                break
        size = os.fstat(fd).st_size
        self._stats = replace(self._stats, size=size)
        if self._pending_reset or (final and not delivered and not self._stats.caught_up):
            # A reset with nothing new to read, or the first time the end is reached.
            self._stats = replace(
                self._stats, reset=self._pending_reset, new_garbled=0, caught_up=final
            )
            self._pending_reset = False
            deliver([], self._stats)
