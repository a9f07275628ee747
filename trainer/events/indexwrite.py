"""Writing ``events.idx`` (the format and the reader are in ``trainer.events.index``).

The trainer's ``EventWriter`` feeds an ``IndexWriter`` every record it appends; a block
is written whenever the step window changes, a run_start arrives, and at every
sync/close. On open it catches up from the JSONL, or rebuilds the index when it does not
match the log. Never raises into the trainer.
"""

from __future__ import annotations

import math
import os
import struct
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
        for c in self.cols:
            s = sum(c)
            if s - s == 0.0:
                lo.append(min(c) if n else math.inf)
                hi.append(max(c) if n else -math.inf)
                sums.append(s)
                cnts.append(n)
            else:
                finite = False
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
        vals = [float_field(rec, k) for k in ev.LOSS_KEYS]
        return b.step(rec["step"], float(rec[ev.K_TIME]), vals, start, end)
    return b.other(KIND_OF_EVENT.get(name, KIND_OTHER), start, end)


# ---------------------------------------------------------------------------- writing


class IndexWriter:
    """Keeps ``events.idx`` in step with the JSONL an EventWriter appends to.

    Never raises into the trainer: an error disables the index and removes it (readers
    then parse the JSONL), with one log line.
    """

    def __init__(self, jsonl_path: str, fd: int, covered: int) -> None:
        self.jsonl_path = jsonl_path
        self._fd: int | None = fd
        self._b = _Builder(covered)

    @classmethod
    def open(cls, jsonl_path: str | os.PathLike[str], jsonl_size: int) -> IndexWriter | None:
        jsonl_path = os.fspath(jsonl_path)
        path = index_path(jsonl_path)
        try:
            return cls._open(jsonl_path, path, jsonl_size)
        except OSError as e:
            log.warning("event index %s disabled: %s", path, e.strerror or e)
            _unlink(path)
            return None

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
            w = cls(jsonl_path, fd, covered)
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

    def _disable(self, e: BaseException) -> None:
        path = index_path(self.jsonl_path)
        log.warning("event index %s disabled (%s); readers parse the log", path, e)
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        _unlink(path)


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
