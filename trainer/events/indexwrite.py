"""Writing ``events.idx`` (the format and the reader are in ``trainer.events.index``).

The trainer's ``EventWriter`` feeds an ``IndexWriter`` every record it appends; a block
is written whenever the step window changes, a run_start arrives, and at every
sync/close. On open it catches up from the JSONL, or rebuilds the index when it does not
match the log. Never raises into the trainer.

One writer per index: whoever writes ``events.idx`` in place holds an ``flock`` on the log
itself (``lock_log``) -- the trainer for as long as its ``IndexWriter`` is open. A reader
that finds the index missing or stale builds a fresh one in a temp file beside it
(``refresh_index``, also ``python -m trainer.events.indexwrite LOG``) and swaps it in with
``os.replace`` only while it holds that lock without waiting (``install_index``), so a
trainer's index is never overwritten and readers see the old index or the new one.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import shutil
import signal
import struct
import sys
import time
import zlib
from array import array
from pathlib import Path
from typing import Any

from trainer.events import schema as ev
from trainer.events.codec import float_field
from trainer.events.index import (
    _NL,
    BLOCK,
    BLOCK_MAGIC,
    BLOCK_STEPS,
    ENTRY,
    FILE_HEADER,
    FLAG_FINITE,
    FORMAT,
    KIND_GARBLED,
    KIND_OF_EVENT,
    KIND_OTHER,
    KIND_RUN_START,
    MAGIC,
    MAX_BLOCK_LINES,
    fingerprint,
    index_path,
    log,
    scan,
)
from trainer.events.parse import parse_line
from trainer.rundir.layout import fsync_dir, open_exclusive, temp_path_for, unlink_quiet

_NLOSS = len(ev.LOSS_KEYS)
LOCK_WAIT_S = 5.0  # a trainer waits this long for a reader installing an index (ms in practice)

# ---------------------------------------------------------------------------- building


class _Builder:
    """Groups lines into blocks; ``emit(bytes)`` receives each finished block."""

    def __init__(self, start: int) -> None:
        self._new(start)

    def _new(self, start: int) -> None:
        self.start = self.end = start
        self.steps = array("q")
        self.ts = array("d")
        self.cols = [array("d") for _ in range(_NL)]
        self.entries: list[tuple[int, int, int, int]] = []
        self.garbled = 0

    @property
    def lines(self) -> int:
        return len(self.steps) + len(self.entries)

    def step(self, step: int, t: float, vals: list[float], start: int, end: int) -> bytes | None:
        out = None
        if self.steps and (
            step // BLOCK_STEPS != self.steps[0] // BLOCK_STEPS or step <= self.steps[-1]
        ):
            out = self.take(start)
        elif self.lines >= MAX_BLOCK_LINES:
            out = self.take(start)
        self.steps.append(step)
        self.ts.append(t)
        for c, v in zip(self.cols, vals, strict=True):
            c.append(v)
        self.end = end
        return out

    def other(self, kind: int, start: int, end: int) -> bytes | None:
        out = None
        if (kind == KIND_RUN_START and self.lines) or self.lines >= MAX_BLOCK_LINES:
            out = self.take(start)
        if kind == KIND_GARBLED:
            self.garbled += 1
        self.entries.append((len(self.steps), kind, start, end - start - 1))
        self.end = end
        return out

    def blank(self, end: int) -> None:
        self.end = end

    def take(self, next_start: int | None = None) -> bytes | None:
        """The current block as bytes (None when it covers nothing); starts a new one."""
        if self.end <= self.start:
            if next_start is not None:
                self._new(next_start)
            return None
        data = self._encode()
        self._new(self.end if next_start is None else next_start)
        return data

    def _encode(self) -> bytes:
        n = len(self.steps)
        lo, hi, sums, cnts = [], [], [], []
        finite = True
        for i, c in enumerate(self.cols):
            s = sum(c)
            if s - s == 0.0:
                lo.append(min(c) if n else math.inf)
                hi.append(max(c) if n else -math.inf)
                sums.append(s)
                cnts.append(n)
            else:
                finite = finite and i >= _NLOSS  # a missing gradient norm is not a NaN loss
                fin = [v for v in c if math.isfinite(v)]
                lo.append(min(fin) if fin else math.inf)
                hi.append(max(fin) if fin else -math.inf)
                sums.append(math.fsum(fin))
                cnts.append(len(fin))
        payload = b"".join(ENTRY.pack(*e) for e in self.entries)
        payload += self.steps.tobytes() + self.ts.tobytes()
        payload += b"".join(c.tobytes() for c in self.cols)
        head = BLOCK.pack(
            BLOCK_MAGIC,
            n,
            len(self.entries),
            self.garbled,
            FLAG_FINITE if finite else 0,
            self.start,
            self.end,
            self.steps[0] if n else 0,
            self.steps[-1] if n else 0,
            self.ts[0] if n else 0.0,
            self.ts[-1] if n else 0.0,
            *lo,
            *hi,
            *sums,
            *cnts,
            len(payload),
            zlib.crc32(payload),
            0,
        )
        head = head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))
        return head + payload


def _classify(b: _Builder, line: bytes, start: int, end: int) -> bytes | None:
    """Feed one JSONL line (without its newline) to the builder, as a reader would see it."""
    if not line.strip():
        b.blank(end)
        return None
    try:
        rec = parse_line(line)
    except ev.EventError:
        return b.other(KIND_GARBLED, start, end)
    return _add_record(b, rec, start, end)


def _add_record(b: _Builder, rec: dict[str, Any], start: int, end: int) -> bytes | None:
    name = rec[ev.K_EVENT]
    if name == ev.Step.EVENT:
        vals = [float_field(rec, k) for k in ev.SERIES_KEYS]
        return b.step(rec["step"], float(rec[ev.K_TIME]), vals, start, end)
    return b.other(KIND_OF_EVENT.get(name, KIND_OTHER), start, end)


# ---------------------------------------------------------------------------- writing


class IndexWriter:
    """Keeps ``events.idx`` in step with the JSONL an EventWriter appends to.

    Never raises into the trainer: an error disables the index and removes it (readers
    then parse the JSONL), with one log line.
    """

    def __init__(self, jsonl_path: str, fd: int, covered: int, path: Path | None = None) -> None:
        self.jsonl_path = jsonl_path
        self.path = index_path(jsonl_path) if path is None else path
        self._fd: int | None = fd
        self._lock_fd: int | None = None  # the flock on the log (lock_log) while writing
        self._b = _Builder(covered)

    @classmethod
    def open(cls, jsonl_path: str | os.PathLike[str], jsonl_size: int) -> IndexWriter | None:
        """The writer of the log's ``events.idx``, holding the log's lock until ``close``;
        None (one log line, no index) when it cannot be had."""
        jsonl_path = os.fspath(jsonl_path)
        path = index_path(jsonl_path)
        lock = None
        try:
            lock = lock_log(jsonl_path, LOCK_WAIT_S)
            if lock is None:
                log.warning("event index %s not written: another process holds the log", path)
                return None
            w = cls._open(jsonl_path, path, jsonl_size)
        except OSError as e:
            if lock is not None:
                os.close(lock)
            log.warning("event index %s disabled: %s", path, e.strerror or e)
            _unlink(path)
            return None
        w._lock_fd = lock
        return w

    @classmethod
    def _open(cls, jsonl_path: str, path: Path, jsonl_size: int) -> IndexWriter:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        jfd = os.open(jsonl_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            got = scan(fd, jfd, jsonl_size) if jsonl_size else None
            if got is None:
                blocks, keep = [], 0
            else:
                blocks, keep = got
            os.ftruncate(fd, keep)
            covered = blocks[-1].jsonl_end if blocks else 0
            w = cls(jsonl_path, fd, covered, path)
            if covered < jsonl_size:
                if covered == 0 and jsonl_size > (64 << 20):
                    log.info("building the event index %s (a cache for the dashboard)", path)
                w._catch_up(jfd, covered, jsonl_size)
        except BaseException:
            os.close(fd)
            raise
        finally:
            os.close(jfd)
        return w

    def _catch_up(self, jfd: int, start: int, end: int, chunk: int = 8 << 20) -> None:
        pos = start
        while pos < end:
            data = os.pread(jfd, min(chunk, end - pos), pos)
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if pos + len(data) >= end:
                    break  # an unterminated last line: not complete yet
                chunk *= 2
                continue
            off = pos
            for line in data[:cut].split(b"\n")[:-1]:
                nxt = off + len(line) + 1
                self._put(_classify(self._b, line, off, nxt))
                off = nxt
            pos += cut
        self.flush()

    def _put(self, block: bytes | None) -> None:
        if block is None or self._fd is None:
            return
        try:
            if os.fstat(self._fd).st_size == 0:
                jfd = os.open(self.jsonl_path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    fp = fingerprint(jfd)
                finally:
                    os.close(jfd)
                block = FILE_HEADER.pack(MAGIC, FORMAT, BLOCK_STEPS, *fp) + block
            os.lseek(self._fd, 0, os.SEEK_END)
            view = memoryview(block)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as e:
            self._disable(e)

    def add(self, rec: dict[str, Any], start: int, end: int) -> None:
        """Record the line ``[start, end)`` of the JSONL that holds ``rec``."""
        if self._fd is None:
            return
        try:
            self._put(_add_record(self._b, rec, start, end))
        except Exception as e:  # noqa: BLE001 - the index must never stop a run
            self._disable(e)

    def flush(self) -> None:
        if self._fd is not None:
            self._put(self._b.take())

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._unlock()

    def _unlock(self) -> None:
        # Closing (never LOCK_UN): a forked child closing its copy keeps the parent's lock.
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _disable(self, e: BaseException) -> None:
        log.warning("event index %s disabled (%s); readers parse the log", self.path, e)
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        _unlink(self.path)
        self._unlock()


def build_index(jsonl_path: str | os.PathLike[str]) -> int:
    """Bring ``events.idx`` up to date with the JSONL (what the trainer does at start);
    returns the blocks written. Only call it while no trainer writes the log."""
    size = os.stat(jsonl_path).st_size
    w = IndexWriter.open(jsonl_path, size)
    if w is None:
        return 0
    w.close()
    with open(index_path(jsonl_path), "rb") as f, open(jsonl_path, "rb") as j:
        got = scan(f.fileno(), j.fileno(), size)
    return len(got[0]) if got else 0


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# ---------------------------------------------------------------------------- readers


def lock_log(jsonl_path: str | os.PathLike[str], wait_s: float) -> int | None:
    """An exclusive ``flock`` on the log: only its holder writes the log's index in place.

    Returns the descriptor holding it (close it to let go), or None when another process
    still holds it after ``wait_s`` seconds (0: do not wait).
    """
    fd = os.open(jsonl_path, os.O_RDONLY | os.O_CLOEXEC)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
        if time.monotonic() >= deadline:
            os.close(fd)
            return None
        time.sleep(0.02)


def refresh_index(jsonl_path: str | os.PathLike[str], *, fresh: bool = False) -> Path:
    """A current index of the log, built into a new temp file beside ``events.idx``, which
    it never touches; returns the temp file (``install_index`` puts it in place).

    The sound blocks of the present index are kept (only the rest of the log is parsed)
    unless ``fresh``: then the whole log is. Raises OSError (e.g. a read-only directory).
    """
    jsonl_path = os.fspath(jsonl_path)
    path = index_path(jsonl_path)
    tmp = temp_path_for(path)
    fd = open_exclusive(tmp)
    try:
        if not fresh:
            try:
                with open(path, "rb") as src, os.fdopen(os.dup(fd), "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except FileNotFoundError:
                pass
        os.close(fd)
        fd = -1
        w = IndexWriter._open(jsonl_path, tmp, os.stat(jsonl_path).st_size)
        w.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    except BaseException:
        if fd >= 0:
            os.close(fd)
        unlink_quiet(tmp)
        raise
    return tmp


def _covered(index_file: Path, jsonl_fd: int, size: int) -> int | None:
    """Bytes of the log that a sound index file covers; None when it does not match it."""
    try:
        fd = os.open(index_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        got = scan(fd, jsonl_fd, size)
    finally:
        os.close(fd)
    if got is None or not got[0]:
        return None
    return got[0][-1].jsonl_end


def install_index(jsonl_path: str | os.PathLike[str], built: Path) -> bool:
    """Put ``built`` (from ``refresh_index``) in place as ``events.idx``, atomically; True
    when the log now has an index at least as current. Never waits: while another process
    holds the log (a trainer writing it and its index), ``built`` is dropped. Either way
    ``built`` is gone afterwards."""
    try:
        lock = lock_log(jsonl_path, 0.0)
    except OSError:
        lock = None
    if lock is None:
        unlink_quiet(built)
        return False
    path = index_path(jsonl_path)
    try:
        st, size = os.stat(jsonl_path), os.fstat(lock).st_size
        if (st.st_dev, st.st_ino) != (os.fstat(lock).st_dev, os.fstat(lock).st_ino):
            return False  # the log was replaced since: the next reader builds anew
        new = _covered(built, lock, size)
        if new is None:
            return False
        old = _covered(path, lock, size)
        if old is not None and old >= new:
            return True  # another reader was quicker
        os.replace(built, path)
        fsync_dir(path.parent)
        return True
    except OSError as e:
        log.warning("event index %s not installed: %s", path, e.strerror or e)
        return False
    finally:
        os.close(lock)
        unlink_quiet(built)


def main(argv: list[str] | None = None) -> int:
    """``python -m trainer.events.indexwrite LOG [--fresh]``: ``refresh_index`` in a child
    process (readers keep their own thread free); prints the temp file's path."""
    args = sys.argv[1:] if argv is None else argv
    # SIGTERM (a reader that no longer needs the index) unwinds, removing the temp file.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if not args or args[0].startswith("-"):
        print("usage: python -m trainer.events.indexwrite LOG [--fresh]", file=sys.stderr)
        return 2
    try:
        print(refresh_index(args[0], fresh="--fresh" in args[1:]))
    except (OSError, ev.EventError) as e:
        print(f"cannot index {args[0]}: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
