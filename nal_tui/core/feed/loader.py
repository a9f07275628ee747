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
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from nal_tui.core.feed.blocks import columns_block
from nal_tui.core.feed.follow import FollowStats, LogFollower, Records
from nal_tui.core.reducer.state import RunState
from trainer.events import index as ix
from trainer.events import schema as ev
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


def load_history(
    follower: LogFollower, state: RunState, stopped: Callable[[], bool] = lambda: False
) -> FollowStats:
    """Everything complete in the follower's log now, into ``state``, fast: through the
    binary index when it matches the log, then the rest of the JSONL batch by batch; the
    follower follows on from there. A truncation or replacement seen resets ``state``."""

    def from_index(fd: int) -> tuple[int, int] | None:
        idx = ix.IndexReader.open(follower.path, fd)
        if idx is None:
            return None
        try:
            return apply_index(idx, fd, state, follower.path.name, stopped)
        except StaleIndex as e:
            log.warning("event index of %s not used: %s", follower.path, e)
            state.reset()
            return None
        finally:
            idx.close()

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
    """run_start only before the block's rows, run_end only after them."""
    for pos, rec in recs:
        name = rec[ev.K_EVENT]
        if name == ev.RunStart.EVENT and pos != 0:
            return False
        if name == ev.RunEnd.EVENT and pos != b.n_steps:
            return False
    return True
