"""``events.idx``: a binary index beside ``events.jsonl`` so readers open long runs fast.

A cache, never the truth: ``events.jsonl`` stays the source of truth, and a reader that
finds the index missing, stale or damaged parses the JSONL instead (see docs/events.md).
Stdlib only (struct, zlib, array); torch-free, so the dashboard reads it.

Layout: a 64-byte file header (magic, format, ``BLOCK_STEPS``, a fingerprint of the
JSONL's first line), then blocks. A block covers a contiguous byte range of the JSONL
(every line in it, blank and garbled ones included) and holds at most the step records of
one aligned window ``[k * BLOCK_STEPS, (k + 1) * BLOCK_STEPS)``, strictly rising, so a
reader can use the block's summary (per loss: finite min, max, sum and count; steps and
times at both ends) without its rows. Its payload holds the other records' positions in
the JSONL (run_start, val, checkpoint, ...) and the step rows as columns (step, t, the
five losses). Headers and payloads carry CRC32s; a torn last block is ignored by readers
and cut off by the next writer.

The trainer's ``EventWriter`` appends a block whenever the step window changes, a
run_start arrives, and at every sync/close; on open it catches up from the JSONL (or
rebuilds the index when it does not match the log). Only the process holding the run
lock writes it.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer import events as ev

log = logging.getLogger("nal-train")

INDEX_FILE = "events.idx"
MAGIC = b"NALIDX\x00\x01"
FORMAT = 1
BLOCK_STEPS = 256
MAX_BLOCK_LINES = 4096
FINGERPRINT_MAX = 1 << 16  # bytes of the JSONL's first line that the fingerprint covers

# Kinds of the non-step lines a block lists (garbled lines too, so readers count them).
KIND_RUN_START, KIND_VAL, KIND_CHECKPOINT, KIND_MILESTONE = 1, 2, 3, 4
KIND_ALERT, KIND_RUN_END, KIND_OTHER, KIND_GARBLED = 5, 6, 7, 8
KIND_OF_EVENT = {
    ev.RunStart.EVENT: KIND_RUN_START,
    ev.Val.EVENT: KIND_VAL,
    ev.Checkpoint.EVENT: KIND_CHECKPOINT,
    ev.Milestone.EVENT: KIND_MILESTONE,
    ev.Alert.EVENT: KIND_ALERT,
    ev.RunEnd.EVENT: KIND_RUN_END,
}
FLAG_FINITE = 1  # every loss value of the block is finite

_NL = len(ev.LOSS_KEYS)
FILE_HEADER = struct.Struct("<8sIIII40x")  # magic, format, block steps, fp length, fp crc
BLOCK_MAGIC = 0x4B4C424E
BLOCK = struct.Struct(f"<IIIIIQQqqdd{_NL}d{_NL}d{_NL}d{_NL}QIII")
ENTRY = struct.Struct("<IB3xQI")  # steps before it, kind, line start, line length


@dataclass(frozen=True)
class BlockInfo:
    """One block's header: where it lies (in both files) and its summary."""

    offset: int  # of the block header in the index file
    n_steps: int
    n_entries: int
    n_garbled: int
    flags: int
    jsonl_start: int
    jsonl_end: int
    first_step: int
    last_step: int
    t_first: float
    t_last: float
    lo: tuple[float, ...]  # finite min per loss (+inf when none)
    hi: tuple[float, ...]  # finite max per loss (-inf when none)
    sums: tuple[float, ...]  # finite sum per loss
    counts: tuple[int, ...]  # finite values per loss
    payload_len: int
    payload_crc: int

    @property
    def finite(self) -> bool:
        return bool(self.flags & FLAG_FINITE)

    @property
    def window(self) -> int:
        return self.first_step // BLOCK_STEPS


@dataclass(frozen=True)
class Entry:
    pos: int  # step rows of the block before this line
    kind: int
    start: int  # byte offset of the line in events.jsonl
    length: int  # bytes, without the newline


def index_path(jsonl_path: str | os.PathLike[str]) -> Path:
    return Path(jsonl_path).with_name(INDEX_FILE)


def fingerprint(fd: int) -> tuple[int, int]:
    """(length, crc32) of the JSONL's first line (at most FINGERPRINT_MAX bytes of it)."""
    head = os.pread(fd, FINGERPRINT_MAX, 0)
    nl = head.find(b"\n")
    first = head if nl < 0 else head[:nl]
    return len(first), zlib.crc32(first)


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
        rec = ev.parse_line(line)
    except ev.EventError:
        return b.other(KIND_GARBLED, start, end)
    return _add_record(b, rec, start, end)


def _add_record(b: _Builder, rec: dict[str, Any], start: int, end: int) -> bytes | None:
    name = rec[ev.K_EVENT]
    if name == ev.Step.EVENT:
        vals = [ev.float_field(rec, k) for k in ev.LOSS_KEYS]
        return b.step(rec["step"], float(rec[ev.K_TIME]), vals, start, end)
    return b.other(KIND_OF_EVENT.get(name, KIND_OTHER), start, end)


# ---------------------------------------------------------------------------- reading


def _read_header(fd: int, jsonl_fd: int) -> bool:
    head = os.pread(fd, FILE_HEADER.size, 0)
    if len(head) < FILE_HEADER.size:
        return False
    magic, fmt, steps, fp_len, fp_crc = FILE_HEADER.unpack(head)
    return (
        magic == MAGIC
        and fmt == FORMAT
        and steps == BLOCK_STEPS
        and (fp_len, fp_crc) == fingerprint(jsonl_fd)
    )


def _unpack_block(head: bytes, offset: int) -> BlockInfo | None:
    if len(head) < BLOCK.size:
        return None
    f = BLOCK.unpack(head)
    if f[0] != BLOCK_MAGIC or zlib.crc32(head[:-4]) != f[-1]:
        return None
    k = 11
    lo, hi = f[k : k + _NL], f[k + _NL : k + 2 * _NL]
    sums, cnts = f[k + 2 * _NL : k + 3 * _NL], f[k + 3 * _NL : k + 4 * _NL]
    info = BlockInfo(
        offset, f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10],
        lo, hi, sums, cnts, f[-3], f[-2],
    )  # fmt: skip
    if info.jsonl_end < info.jsonl_start or info.payload_len != (
        info.n_entries * ENTRY.size + info.n_steps * 8 * (2 + _NL)
    ):
        return None
    return info


def scan(fd: int, jsonl_fd: int, jsonl_size: int) -> tuple[list[BlockInfo], int] | None:
    """Every sound block, in order, and the index size they take; None when the index does
    not belong to this JSONL (or has no valid header). Stops at the first bad block."""
    if not _read_header(fd, jsonl_fd):
        return None
    size = os.fstat(fd).st_size
    pos = FILE_HEADER.size
    prev_end = 0
    blocks: list[BlockInfo] = []
    while pos + BLOCK.size <= size:
        info = _unpack_block(os.pread(fd, BLOCK.size, pos), pos)
        if info is None or info.jsonl_start != prev_end or info.jsonl_end > jsonl_size:
            break
        nxt = pos + BLOCK.size + info.payload_len
        if nxt > size:
            break
        blocks.append(info)
        prev_end = info.jsonl_end
        pos = nxt
    return blocks, pos


class IndexReader:
    """Read-only view of ``events.idx`` for one JSONL, as it is now (never writes)."""

    def __init__(self, fd: int, blocks: list[BlockInfo]) -> None:
        self._fd = fd
        self.blocks = blocks

    @classmethod
    def open(cls, jsonl_path: str | os.PathLike[str], jsonl_fd: int) -> IndexReader | None:
        """The index beside ``jsonl_path`` when it matches the log open at ``jsonl_fd``."""
        try:
            fd = os.open(index_path(jsonl_path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            import stat

            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                return None
            got = scan(fd, jsonl_fd, os.fstat(jsonl_fd).st_size)
        except OSError:
            got = None
        if not got or not got[0]:
            os.close(fd)
            return None
        return cls(fd, got[0])

    @property
    def covered(self) -> int:
        """Bytes of the JSONL the index covers (from 0)."""
        return self.blocks[-1].jsonl_end if self.blocks else 0

    def entries(self, b: BlockInfo) -> list[Entry]:
        """The non-step lines of a block (positions only; the caller parses the JSONL)."""
        if not b.n_entries:
            return []
        raw = os.pread(self._fd, b.n_entries * ENTRY.size, b.offset + BLOCK.size)
        return [Entry(*e) for e in ENTRY.iter_unpack(raw)]

    def columns(self, b: BlockInfo) -> tuple[array, array, list[array]] | None:
        """(steps, times, losses) of a block's step rows; None when its CRC fails."""
        raw = os.pread(self._fd, b.payload_len, b.offset + BLOCK.size)
        if len(raw) != b.payload_len or zlib.crc32(raw) != b.payload_crc:
            return None
        view = memoryview(raw)[b.n_entries * ENTRY.size :]
        n8 = 8 * b.n_steps
        out = []
        for i, code in enumerate("qd" + "d" * _NL):
            a = array(code)
            a.frombytes(view[i * n8 : (i + 1) * n8])
            out.append(a)
        return out[0], out[1], out[2:]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


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
