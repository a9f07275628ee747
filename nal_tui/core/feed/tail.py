"""A quick preview of an event log's end: its last run_start and its last records."""

from __future__ import annotations

import os
from typing import Any

from trainer.events import schema as ev
from trainer.events.parse import parse_lines

_RUN_START_MARK = b'"' + ev.K_EVENT.encode() + b'":"' + ev.RunStart.EVENT.encode() + b'"'


def read_tail(
    path: str | os.PathLike[str], tail_bytes: int = 2 << 20, scan_bytes: int = 32 << 20
) -> list[dict[str, Any]]:
    """The last run_start and the records of the last ``tail_bytes``: a quick preview.

    The run_start is looked for up to ``scan_bytes`` before the tail, else the log's
    first line is used (the run's first start). History before the tail (older
    checkpoints, alerts, milestones) is missing from the preview.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - tail_bytes)
        data = os.pread(fd, size - start, start)
        if start > 0:  # drop the first, probably partial, line
            cut = data.find(b"\n") + 1
            data, start = data[cut:], start + cut
        data = data[: data.rfind(b"\n") + 1]
        lines = data.split(b"\n")[:-1]
        head = (
            []
            if _RUN_START_MARK in data
            else _last_line_with(fd, _RUN_START_MARK, start, scan_bytes)
        )
    finally:
        os.close(fd)
    recs, _, _ = parse_lines(head + lines, 0, os.path.basename(path))
    return recs


def _last_line_with(
    fd: int, mark: bytes, end: int, limit: int, chunk: int = 1 << 20
) -> list[bytes]:
    """The last complete line before ``end`` containing ``mark``, read backwards in chunks.

    Looks at most ``limit`` bytes back, then falls back to the file's first line.
    """
    pos = end
    floor = max(0, end - limit)
    carry = b""  # the start of the line that straddles the chunk boundary
    while pos > floor:
        lo = max(floor, pos - chunk)
        buf = os.pread(fd, pos - lo, lo) + carry
        hit = buf.rfind(mark)
        if hit >= 0:
            a = buf.rfind(b"\n", 0, hit) + 1
            if a > 0 or lo == 0:
                b = buf.find(b"\n", hit)
                return [buf[a : b if b >= 0 else len(buf)]]
            carry = buf  # the line starts in an earlier chunk
        else:
            nl = buf.find(b"\n")
            carry = buf[:nl] if nl >= 0 else buf
        pos = lo
    if floor > 0:
        first = os.pread(fd, chunk, 0)
        nl = first.find(b"\n")
        if nl >= 0 and mark in first[:nl]:
            return [first[:nl]]
    return []
