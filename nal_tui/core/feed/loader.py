"""Opening a long run fast: the backlog through the binary index (``events.idx``).

The index (``trainer.events.index``) summarises the log in blocks of aligned step windows.
In a long run (``SUMMARY_MIN_SPAN``), a block whose summary is enough
(``RunState.summary_ok``: no restart, no non-finite value, no milestone inside, ...) is
applied from its summary; others from their rows
(the index's columns, or the JSONL itself when those fail their CRC). Only the other
records the dashboard needs are parsed from the JSONL: every run_start, milestone, alert
and run_end, and the newest validation and checkpoint events. The newest blocks are
always re-read from the JSONL, so windows, rates and the tail records are exact. Any
mismatch between index and log makes the caller parse the JSONL from the start.

A log without a usable index (none, stale, or far behind the log) gets one: ``build``
(``reindex``) writes a fresh index aside, the load goes through it, and it is put in
place for the next reader unless a trainer holds the log. ``preview`` reads just the
log's end, so a screen can show the newest step before the whole history is in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from nal_tui.core.feed.blocks import columns_block
from nal_tui.core.feed.follow import FollowStats, LogFollower, Records
from nal_tui.core.feed.reindex import IndexBuild, build_here
from nal_tui.core.feed.tail import read_tail
from nal_tui.core.reducer.state import RunState
from trainer.events import index as ix
from trainer.events import schema as ev
from trainer.events.indexwrite import install_index
from trainer.events.parse import line_error, parse_line

log = logging.getLogger(__name__)

# Step rows read from the JSONL itself at the end of the backlog. At least twice the
# averaging window: a block summary leaves the window empty, and whatever a rollback in the
# tail keeps of the window before it, >= one window of rows lies before or after it.
TAIL_ROWS = 300
# Block summaries only for runs this long: a summary is one min/max band over a block's
# steps, and a chart asks for up to ~600 buckets; below this span it would show blocks
# where the rows show detail, so shorter runs apply every row (from the index columns).
SUMMARY_MIN_SPAN = ix.BLOCK_STEPS * 1024
KEEP_RECENT = 64  # validation / checkpoint events parsed from the history (newest ones)
_RECENT_KINDS = (ix.KIND_VAL, ix.KIND_CHECKPOINT)
# An index this far behind its log (a trainer that ran with the index off, or one killed
# before its last flush) is brought up to date rather than parsing the rest on every open.
REFRESH_BEHIND = 8 << 20
PREVIEW_BYTES = 64 << 10  # the log's end that ``preview`` reads (> the 100-step averages)


class StaleIndex(Exception):
    """The index does not describe this log (the caller parses the JSONL instead)."""


def apply_batch(state: RunState, records: Records, stats: FollowStats) -> None:
    """One batch of the follower into ``state``: a reset first when the log started over
    (truncated or replaced), then the records, then the count of unreadable lines."""
    if stats.reset:
        state.reset()
    if records:
        state.feed(records)
    if stats.new_garbled:
        state.note_garbled(stats.new_garbled, stats.last_garbled)


def preview(path: str | os.PathLike[str]) -> RunState:
    """A state from the log's end only (its last run_start and last records): the newest
    step, losses and rates at once; history before the tail is missing."""
    state = RunState()
    recs = read_tail(path, PREVIEW_BYTES)
    if recs:
        state.feed(recs)
    return state


def load_history(
    follower: LogFollower,
    state: RunState,
    stopped: Callable[[], bool] = lambda: False,
    build: IndexBuild | None = build_here,
) -> FollowStats:
    """Everything complete in the follower's log now, into ``state``, fast: through the
    binary index when it matches the log, then the rest of the JSONL batch by batch; the
    follower follows on from there. A truncation or replacement seen resets ``state``.

    Without a usable index, ``build`` makes one and the load goes through it (the index is
    left for the next reader); with ``build=None`` the JSONL is parsed instead.
    """
    name = follower.path.name

    def through(idx: ix.IndexReader, fd: int) -> tuple[int, int] | None:
        try:
            return apply_index(idx, fd, state, name, stopped)
        except StaleIndex as e:
            log.warning("event index of %s not used: %s", follower.path, e)
            state.reset()
            return None
        finally:
            idx.close()

    def from_index(fd: int) -> tuple[int, int] | None:
        idx = ix.IndexReader.open(follower.path, fd)
        fresh = idx is None
        if idx is not None:
            if build is None or os.fstat(fd).st_size - idx.covered <= REFRESH_BEHIND:
                got = through(idx, fd)
                if got is not None or build is None:
                    return got
                fresh = True  # stale: its blocks are not to be kept
            else:
                idx.close()
        if build is None or stopped():
            return None
        built = build(follower.path, fresh)
        if built is None:
            return None
        idx = ix.IndexReader.open(follower.path, fd, built)  # opened: survives the rename
        install_index(follower.path, built)
        return None if idx is None else through(idx, fd)

    return follower.load(lambda recs, stats: apply_batch(state, recs, stats), from_index)


def _line(fd: int, e: ix.Entry) -> bytes:
    return os.pread(fd, e.length, e.start)


def _record(fd: int, e: ix.Entry) -> dict:
    try:
        rec = parse_line(_line(fd, e))
    except ev.EventError:
        raise StaleIndex(f"line at byte {e.start} is not the indexed record") from None
    if ix.KIND_OF_EVENT.get(rec[ev.K_EVENT], ix.KIND_OTHER) != e.kind:
        raise StaleIndex(f"line at byte {e.start} is not a {e.kind}")
    return rec


def apply_index(
    idx: ix.IndexReader,
    fd: int,
    state: RunState,
    name: str = ev.EVENTS_FILE,
    stopped: Callable[[], bool] = lambda: False,
) -> tuple[int, int]:
    """Feed ``state`` from the index up to its newest blocks; returns (JSONL offset to go on
    parsing from, lines covered). Raises StaleIndex when the index and the log disagree."""
    blocks = idx.blocks
    k, rows = len(blocks), 0
    while k > 0 and rows < TAIL_ROWS:
        k -= 1
        rows += blocks[k].n_steps
    head = blocks[:k]
    entries = {i: idx.entries(b) for i, b in enumerate(head) if b.n_entries}
    wanted = {kind: KEEP_RECENT for kind in _RECENT_KINDS}
    skip: set[tuple[int, int]] = set()
    for i in sorted(entries, reverse=True):
        for j in range(len(entries[i]) - 1, -1, -1):
            kind = entries[i][j].kind
            if kind in wanted:
                if wanted[kind] > 0:
                    wanted[kind] -= 1
                else:
                    skip.add((i, j))
    stepped = [b for b in blocks if b.n_steps]
    summaries = bool(stepped) and (
        stepped[-1].last_step - stepped[0].first_step >= SUMMARY_MIN_SPAN
    )
    lines = 0
    for i, b in enumerate(head):
        if stopped():
            break
        es = entries.get(i, [])
        garbled = [e for e in es if e.kind == ix.KIND_GARBLED]
        recs = [
            (e.pos, _record(fd, e))
            for j, e in enumerate(es)
            if e.kind != ix.KIND_GARBLED and (i, j) not in skip
        ]
        if summaries and _summary_fits(b, recs) and state.summary_ok(b):
            before = [r for pos, r in recs if pos == 0]
            after = [r for pos, r in recs if pos > 0]
            state.feed_summary(b, before, after)
        else:
            cols = idx.columns(b)
            if cols is None or len(cols[0]) != b.n_steps:
                raise StaleIndex(f"block at {b.offset} fails its CRC")
            blk = columns_block(*cols, finite=b.finite)
            blk.others = recs
            blk.records += len(recs)
            if recs:
                blk.first_t = min(blk.first_t or recs[0][1][ev.K_TIME], recs[0][1][ev.K_TIME])
                blk.last_t = max(blk.last_t or 0.0, recs[-1][1][ev.K_TIME])
            state.feed_block(blk)
        if garbled:
            text = _line(fd, garbled[-1])[:120].decode("utf-8", "replace")
            why = line_error(_line(fd, garbled[-1])) or "not a record"
            state.note_garbled(
                len(garbled), f"{name} line {lines + garbled[-1].pos + 1}: {why}: {text}"
            )
        lines += b.n_steps + b.n_entries
    start = blocks[k].jsonl_start if k < len(blocks) else idx.covered
    return start, lines


def _summary_fits(b: ix.BlockInfo, recs: list[tuple[int, dict]]) -> bool:
    """run_start and recovery only before the block's rows, run_end only after them."""
    for pos, rec in recs:
        name = rec[ev.K_EVENT]
        if name in (ev.RunStart.EVENT, ev.Recovery.EVENT) and pos != 0:
            return False
        if name == ev.RunEnd.EVENT and pos != b.n_steps:
            return False
    return True
