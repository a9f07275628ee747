"""Loading a long event log fast: step records as columns, parsed on both CPU cores.

A run's history is almost all step records. Rather than one dict per step reaching the
reducer, records are turned into a ``StepBlock``: step, time and the five losses as
``array`` columns, the few other records kept whole with their position among the steps.
``RunState.feed`` builds blocks from parsed records (``block_from_records``); a history
load builds them straight from log bytes (``parse_chunk``, with exactly the checks of
``follow.parse_lines``) and ``load_blocks`` shares the chunks of a large backlog with one
forked helper process, handing the blocks over in log order.
"""

from __future__ import annotations

import gc
import math
import os
import select
import signal
import struct
import warnings
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from operator import itemgetter, methodcaller
from typing import Any

import orjson

from trainer import events as ev
from trainer.events import K_EVENT, K_TIME, K_VERSION, LOSS_KEYS

TAIL = 20  # newest step records a block keeps whole (epoch, rates, recon name)
_STEP = ev.Step.EVENT
_F_STEP = "step"
if _F_STEP not in {f.name for f in fields(ev.Step)}:  # pragma: no cover - schema guard
    raise ImportError("trainer.events.Step has no field 'step'")
_STEP_REQUIRED = tuple(
    f.name
    for f in fields(ev.Step)
    if f.default is MISSING and f.default_factory is MISSING and f.name != _F_STEP
    if f.name not in LOSS_KEYS
)
# Column getters: what the reducer folds; the version and the other required fields are
# only checked (a KeyError means a field is missing).
_G_STEP, _G_T, _G_V = itemgetter(_F_STEP), itemgetter(K_TIME), itemgetter(K_VERSION)
_G_LOSSES = tuple(itemgetter(k) for k in LOSS_KEYS)
_G_REST = itemgetter(*_STEP_REQUIRED, _F_STEP)  # a tuple even if only one field is left
_get_event = methodcaller("get", K_EVENT)
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _as_float(v: Any) -> float:
    """``trainer.events.float_field`` for a bare value."""
    if isinstance(v, (int, float)):
        return float(v)
    return _NONFINITE.get(v, math.nan) if isinstance(v, str) else math.nan


@dataclass
class StepBlock:
    """A stretch of records in log order: step rows as columns plus the other records."""

    steps: array = field(default_factory=lambda: array("q"))
    ts: array = field(default_factory=lambda: array("d"))
    losses: list[array] = field(default_factory=lambda: [array("d") for _ in LOSS_KEYS])
    finite: bool = True  # every loss value is finite
    others: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (rows before, rec)
    tail: list[dict[str, Any]] = field(default_factory=list)  # newest step records
    records: int = 0  # records in the block, step rows, others and rejected together
    first_t: Any = None  # the "t" of the first and last record, as written
    last_t: Any = None
    rejected: list[str] = field(default_factory=list)  # step records the reducer cannot use
    # From parse_chunk only: the lines it covered and the unreadable ones among them.
    lines: int = 0
    nbytes: int = 0
    garbled: int = 0
    garbled_line: int = -1  # 0-based index of the last garbled line in the chunk
    garbled_why: str = ""

    def __len__(self) -> int:
        return len(self.steps)


class _Builder:
    """Appends records to a block in log order."""

    def __init__(self) -> None:
        self.b = StepBlock()

    def other(self, rec: dict[str, Any]) -> None:
        self.b.others.append((len(self.b.steps), rec))

    def steps_run(self, recs: Sequence[dict[str, Any]]) -> None:
        """Consecutive step records (the reducer's view: step, t and losses needed)."""
        if not recs:
            return
        try:
            ok = self.columns(recs)
        except (KeyError, AttributeError):
            ok = False
        if not ok:
            if len(recs) == 1:
                self._reject(recs[0])
            else:  # find the odd ones out, one by one (rare)
                for r in recs:
                    self.steps_run((r,))

    def columns(self, recs: Sequence[dict[str, Any]]) -> bool:
        """Append step records as column rows; False (nothing appended) when a step is not
        an integer or a time not a number. KeyError: a field the reducer folds is missing."""
        try:
            steps = array("q", map(_G_STEP, recs))
            ts = array("d", map(_G_T, recs))
        except (TypeError, OverflowError):
            return False
        finite = True
        losses = []
        for get in _G_LOSSES:
            try:
                a = array("d", map(get, recs))
            except TypeError:  # "nan"/"inf" strings from the writer, or junk
                a = array("d", map(_as_float, map(get, recs)))
            s = sum(a)
            finite = finite and s - s == 0.0
            losses.append(a)
        b = self.b
        b.finite = b.finite and finite
        for out, a in zip(b.losses, losses, strict=True):
            out.extend(a)
        b.steps.extend(steps)
        b.ts.extend(ts)
        n = len(recs)
        b.tail = list(recs[-TAIL:]) if n >= TAIL else b.tail[n - TAIL :] + list(recs)
        return True

    def _reject(self, rec: dict[str, Any]) -> None:
        try:
            ev.validate(rec)
        except ev.EventError as e:
            why = str(e)
        else:
            why = "step: 'step' must be an integer and 't' a number"
        self.b.rejected.append(f"{why}: {str(rec)[:120]}")


def _split_runs(bld: _Builder, recs: list[dict[str, Any]]) -> None:
    """Hand the step runs to ``steps_run`` and the other records to ``other``."""
    evs = list(map(_get_event, recs))
    if evs.count(_STEP) == len(evs):
        bld.steps_run(recs)
        return
    flags = bytes(map(_STEP.__ne__, evs))
    prev = 0
    i = flags.find(1)
    while i >= 0:
        if i > prev:
            bld.steps_run(recs[prev:i])
        bld.other(recs[i])
        prev = i + 1
        i = flags.find(1, prev)
    if prev < len(recs):
        bld.steps_run(recs[prev:])


def block_from_records(records: Sequence[dict[str, Any]]) -> StepBlock:
    """Records already parsed (``trainer.events.loads``) as one block, in their order."""
    bld = _Builder()
    recs = list(records)
    if recs:
        _split_runs(bld, recs)
        b = bld.b
        b.records = len(recs)
        b.first_t = recs[0].get(K_TIME)
        b.last_t = recs[-1].get(K_TIME)
    return bld.b


# ---- bytes -> block --------------------------------------------------------------------


def record_error(rec: Any) -> str | None:
    """Why a parsed line is not a record (``trainer.events.loads`` + ``validate``), or None."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    name = rec.get(K_EVENT)
    if not isinstance(name, str):
        return "no 'event' field"
    if not isinstance(rec.get(K_TIME), (int, float)):
        return f"{name}: no numeric 't' field"
    try:
        ev.validate(rec)
    except ev.EventError as e:
        return str(e)
    return None


def parse_chunk(data: bytes) -> StepBlock:
    """Complete lines (``data`` ends with a newline) straight to a block.

    A line is a record when ``follow.parse_lines`` would accept it; the others are
    counted in ``garbled`` (blank lines are skipped), never dropped silently.
    """
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    b = _parse_fast(lines)
    return _finish(_parse_slow(lines) if b is None else b, lines, data)


def _parse_fast(lines: list[bytes]) -> StepBlock | None:
    """Every line at C speed, or None when one needs a closer look (then nothing is kept)."""
    try:
        recs = list(map(orjson.loads, lines))
        evs = list(map(_get_event, recs))  # AttributeError: a line that is not an object
    except (ValueError, AttributeError):
        return None
    bld = _Builder()
    n = len(recs)
    if evs.count(_STEP) == n:
        if not _steps_checked(bld, recs):
            return None
    else:
        flags = bytes(map(_STEP.__ne__, evs))
        prev = 0
        i = flags.find(1)
        while True:
            end = n if i < 0 else i
            if end > prev and not _steps_checked(bld, recs[prev:end]):
                return None
            if i < 0:
                break
            if record_error(recs[i]) is not None:
                return None
            bld.other(recs[i])
            prev = i + 1
            i = flags.find(1, prev)
    b = bld.b
    b.records = n
    if n:
        b.first_t, b.last_t = recs[0].get(K_TIME), recs[-1].get(K_TIME)
    return b


def _steps_checked(bld: _Builder, recs: list[dict[str, Any]]) -> bool:
    """Fold a run of step records that passes the schema checks; else False."""
    try:
        if list(map(_G_V, recs)).count(ev.SCHEMA_VERSION) != len(recs):
            return False
        deque(map(_G_REST, recs), maxlen=0)  # every required field is there
        return bld.columns(recs)
    except KeyError:
        return False


def _parse_slow(lines: list[bytes]) -> StepBlock:
    """Line by line, with the schema module's own messages (a chunk holding a bad line)."""
    good: list[dict[str, Any]] = []
    bad, at, why = 0, -1, ""
    for i, line in enumerate(lines):
        try:
            rec = ev.loads(line)
            ev.validate(rec)
        except ev.EventError as e:
            if not line.strip():
                continue  # blank lines are harmless
            bad, at, why = bad + 1, i, str(e)
            continue
        good.append(rec)
    b = block_from_records(good)
    b.garbled, b.garbled_line, b.garbled_why = bad, at, why
    return b


def _finish(b: StepBlock, lines: list[bytes], data: bytes) -> StepBlock:
    b.lines, b.nbytes = len(lines), len(data)
    if b.garbled_line >= 0:
        text = lines[b.garbled_line][:120].decode("utf-8", "replace")
        b.garbled_why = f"{b.garbled_why}: {text}"
    return b


# ---- blocks through a pipe -------------------------------------------------------------

_FRAME = struct.Struct("<III")  # chunk index, meta length, payload length


def encode_block(k: int, b: StepBlock) -> bytes:
    meta = orjson.dumps(
        {
            "n": len(b.steps),
            "finite": b.finite,
            "others": b.others,
            "tail": b.tail,
            "records": b.records,
            "first_t": b.first_t,
            "last_t": b.last_t,
            "rejected": b.rejected,
            "lines": b.lines,
            "nbytes": b.nbytes,
            "garbled": b.garbled,
            "garbled_line": b.garbled_line,
            "garbled_why": b.garbled_why,
        }
    )
    cols = b"".join(a.tobytes() for a in (b.steps, b.ts, *b.losses))
    return _FRAME.pack(k, len(meta), len(meta) + len(cols)) + meta + cols


def decode_block(payload: bytes, meta_len: int) -> StepBlock:
    m = orjson.loads(payload[:meta_len])
    n = m["n"]
    view = memoryview(payload)[meta_len:]
    cols = []
    for i, code in enumerate("qd" + "d" * len(LOSS_KEYS)):
        a = array(code)
        a.frombytes(view[i * 8 * n : (i + 1) * 8 * n])
        cols.append(a)
    return StepBlock(
        steps=cols[0],
        ts=cols[1],
        losses=cols[2:],
        finite=m["finite"],
        others=[(i, r) for i, r in m["others"]],
        tail=m["tail"],
        records=m["records"],
        first_t=m["first_t"],
        last_t=m["last_t"],
        rejected=m["rejected"],
        lines=m["lines"],
        nbytes=m["nbytes"],
        garbled=m["garbled"],
        garbled_line=m["garbled_line"],
        garbled_why=m["garbled_why"],
    )


def _read_exact(fd: int, n: int) -> bytes | None:
    parts = []
    while n > 0:
        got = os.read(fd, min(n, 1 << 20))
        if not got:
            return None
        parts.append(got)
        n -= len(got)
    return b"".join(parts)


def _read_frame(fd: int) -> tuple[int, StepBlock] | None:
    head = _read_exact(fd, _FRAME.size)
    if head is None:
        return None
    k, meta_len, size = _FRAME.unpack(head)
    payload = _read_exact(fd, size)
    return None if payload is None else (k, decode_block(payload, meta_len))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# ---- a byte range -> blocks, on two cores ------------------------------------------------

MAX_TOKENS = 8000  # chunks per load (their indices must fit the work pipe's buffer)
_TOKEN = struct.Struct("<I")
_F_SETPIPE_SZ = 1031  # Linux fcntl: grow a pipe so the helper rarely waits on a full one


def chunk_bounds(fd: int, start: int, end: int, chunk_bytes: int) -> list[int]:
    """Offsets that cut ``[start, end)`` into chunks of whole lines (``end`` ends a line)."""
    chunk_bytes = max(chunk_bytes, -(-(end - start) // MAX_TOKENS))
    bounds = [start]
    pos = start + chunk_bytes
    while pos < end:
        cut = -1
        look = pos - 1
        while look < end:  # the first newline at or after pos - 1
            window = os.pread(fd, min(1 << 16, end - look), look)
            if not window:
                break
            j = window.find(b"\n")
            if j >= 0:
                cut = look + j + 1
                break
            look += len(window)
        if cut < 0 or cut >= end:
            break
        bounds.append(cut)
        pos = cut + chunk_bytes
    bounds.append(end)
    return bounds


def _parse_range(fd: int, a: int, b: int) -> StepBlock:
    return parse_chunk(os.pread(fd, b - a, a))


def load_blocks(
    fd: int,
    start: int,
    end: int,
    on_block: Callable[[StepBlock], None],
    *,
    chunk_bytes: int = 4 << 20,
    parallel: bool = True,
) -> None:
    """Parse the complete lines in ``[start, end)`` of ``fd`` and hand the blocks over in order.

    With ``parallel`` and at least three chunks, a forked helper process parses chunks
    too (both take the next chunk index from a shared pipe); if it fails, this process
    parses whatever it did not deliver. The cyclic GC is paused meanwhile (only short-lived
    containers are made).
    """
    bounds = chunk_bounds(fd, start, end, chunk_bytes)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if parallel and len(bounds) > 3 and hasattr(os, "fork"):
            _load_parallel(fd, bounds, on_block)
        else:
            for k in range(len(bounds) - 1):
                on_block(_parse_range(fd, bounds[k], bounds[k + 1]))
    finally:
        if was_enabled:
            gc.enable()


def _load_parallel(fd: int, bounds: list[int], on_block: Callable[[StepBlock], None]) -> None:
    n = len(bounds) - 1
    work_r, work_w = os.pipe()
    res_r, res_w = os.pipe()
    try:
        _write_all(work_w, b"".join(_TOKEN.pack(k) for k in range(n)))
    finally:
        os.close(work_w)  # readers see EOF once every index is taken
    try:
        import fcntl

        fcntl.fcntl(res_w, _F_SETPIPE_SZ, 1 << 20)
    except (ImportError, OSError):
        pass
    try:
        with warnings.catch_warnings():  # 3.12+ warns about fork in a threaded process
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:  # no process to spare: parse everything here
        for fd_ in (work_r, res_r, res_w):
            os.close(fd_)
        for k in range(n):
            on_block(_parse_range(fd, bounds[k], bounds[k + 1]))
        return
    if pid == 0:  # the helper: parse chunks, send blocks, never return into the caller
        code = 0
        try:
            _quiet_signals()
            os.close(res_r)
            while len(tok := os.read(work_r, _TOKEN.size)) == _TOKEN.size:
                (k,) = _TOKEN.unpack(tok)
                _write_all(res_w, encode_block(k, _parse_range(fd, bounds[k], bounds[k + 1])))
        except BaseException:  # noqa: BLE001 - the parent parses what is missing
            code = 1
        finally:
            os._exit(code)
    os.close(res_w)
    poll = select.poll()
    poll.register(res_r, select.POLLIN)
    ready: dict[int, StepBlock] = {}
    helper = True
    try:
        need = 0
        while need < n:
            if need in ready:
                on_block(ready.pop(need))
                need += 1
                continue
            if helper and poll.poll(0):
                helper = _take_frame(res_r, ready)
                continue
            if len(ready) < 4:  # bounded look-ahead keeps memory flat for huge logs
                tok = os.read(work_r, _TOKEN.size)
                if len(tok) == _TOKEN.size:
                    (k,) = _TOKEN.unpack(tok)
                    if k >= need and k not in ready:  # else parsed here after a helper failure
                        ready[k] = _parse_range(fd, bounds[k], bounds[k + 1])
                    continue
            if helper:
                helper = _take_frame(res_r, ready)
            else:  # the helper is gone: its unfinished chunks are parsed here
                ready[need] = _parse_range(fd, bounds[need], bounds[need + 1])
    finally:
        os.close(work_r)
        os.close(res_r)  # a helper still writing gets EPIPE and exits
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _quiet_signals() -> None:
    """In the helper: default signal handling, and no wakeup fd shared with the parent's
    event loop (a signal caught here must not look like one caught there)."""
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
    except (ValueError, OSError, AttributeError):  # not the main thread / no such signal
        pass


def _take_frame(fd: int, ready: dict[int, StepBlock]) -> bool:
    """Read one block from the helper into ``ready``; False when the helper has finished."""
    got = _read_frame(fd)
    if got is None:
        return False
    ready[got[0]] = got[1]
    return True
