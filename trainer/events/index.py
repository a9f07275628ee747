"""``events.idx``: a binary index beside ``events.jsonl`` so readers open long runs fast.

A cache, never the truth: ``events.jsonl`` stays the source of truth, and a reader that
finds the index missing, stale or damaged parses the JSONL instead (see docs/events.md).
Stdlib only (struct, zlib, array); torch-free, so the dashboard reads it.

Layout: a 64-byte file header (magic, format, ``BLOCK_STEPS``, a fingerprint of the
JSONL's first line), then blocks. A block covers a contiguous byte range of the JSONL
(every line in it, blank and garbled ones included) and holds at most the step records of
one aligned window ``[k * BLOCK_STEPS, (k + 1) * BLOCK_STEPS)``, strictly rising, so a
reader can use the block's summary (per series: finite min, max, sum and count; steps and
times at both ends) without its rows. Its payload holds the other records' positions in
the JSONL (run_start, val, checkpoint, ...) and the step rows as columns (step, t, the
five losses). Headers and payloads carry CRC32s; a torn last block is ignored by readers
and cut off by the next writer.

Writing is ``trainer.events.indexwrite``: the trainer's ``EventWriter`` appends a block
whenever the step window changes, a run_start arrives, and at every sync/close. Only the
process holding an flock on the log writes it in place (the trainer); a reader that finds
it missing or stale builds a new one aside and swaps it in atomically.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path

from trainer.events import schema as ev

log = logging.getLogger("nal-train")

INDEX_FILE = "events.idx"
MAGIC = b"NALIDX\x00\x01"
# 2: the optimiser's columns (lr and gradient norms, ``OPT_KEYS``) after the losses. An
# index of another format does not match (``scan``): readers parse the log and rebuild it.
FORMAT = 2
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
FLAG_FINITE = 1  # every loss value of the block is finite (the optimiser's columns aside)

_NL = len(ev.SERIES_KEYS)  # columns per step row after step and time; the losses first
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
    lo: tuple[float, ...]  # finite min per series of SERIES_KEYS (+inf when none)
    hi: tuple[float, ...]  # finite max per series (-inf when none)
    sums: tuple[float, ...]  # finite sum per series
    counts: tuple[int, ...]  # finite values per series
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
    def open(
        cls,
        jsonl_path: str | os.PathLike[str],
        jsonl_fd: int,
        path: str | os.PathLike[str] | None = None,
    ) -> IndexReader | None:
        """The index beside ``jsonl_path`` (or at ``path``) when it matches the log open at
        ``jsonl_fd``."""
        where = index_path(jsonl_path) if path is None else path
        try:
            fd = os.open(where, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
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
        """(steps, times, series) of a block's step rows (one column per SERIES_KEYS);
        None when its CRC fails."""
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
