"""Is a smaller ``events.idx`` layout as fast? The shipped layout against a float32 one.

The shipped index stores each step row as 7 float64/int64 columns (step, t, five losses):
56 bytes a step, ~18 % of the log. A smaller layout would keep the step as an int32 offset
from the block's first step, ``t`` as a float32 offset from the block's first time, and the
losses as float32 (28 bytes a step: half). This prints, for one log, side by side and in
one run (median of interleaved repeats):

- the index size, shipped vs the smaller layout (computed from the same blocks);
- the dashboard's load through the index as shipped (``loader.load_history``: long runs use
  block summaries and read few rows), and with every block read from its rows;
- decoding every block's rows: float64 columns (``frombytes``) vs float32 columns widened
  to float64 (what the reducer keeps), the part of a load the layout changes.

Note what float32 would cost besides time: losses and times lose precision (float32 has
~7 digits; a unix time offset within a block is fine, a raw loss of 1234.5678 is not exact),
so the numbers on screen would differ from a full parse of the JSONL.

    python bench/bench_index_layout.py [--steps 500000] [--keep DIR] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from synth_log import write_synthetic_run  # noqa: E402

from nal_tui.core.feed import loader  # noqa: E402
from nal_tui.core.feed.follow import LogFollower  # noqa: E402
from nal_tui.core.reducer.state import RunState  # noqa: E402
from trainer.events import index as ix  # noqa: E402
from trainer.events.indexwrite import build_index  # noqa: E402

SMALL_ROW = 4 + 4 + 4 * len(ix.ev.SERIES_KEYS)  # int32 step offset, float32 t offset, series


def _load(log: Path, rows: bool) -> float:
    saved = loader.SUMMARY_MIN_SPAN
    if rows:
        loader.SUMMARY_MIN_SPAN = 1 << 62
    try:
        t = time.perf_counter()
        loader.load_history(LogFollower(log, lambda r, s: None), RunState(), build=None)
        return time.perf_counter() - t
    finally:
        loader.SUMMARY_MIN_SPAN = saved


def _blocks(log: Path) -> tuple[ix.IndexReader, int]:
    fd = os.open(log, os.O_RDONLY)
    idx = ix.IndexReader.open(log, fd)
    assert idx is not None, "no index"
    return idx, fd


def _decode64(idx: ix.IndexReader) -> float:
    t = time.perf_counter()
    for b in idx.blocks:
        if b.n_steps:
            idx.columns(b)
    return time.perf_counter() - t


def _decode32(idx: ix.IndexReader, raw32: list[bytes]) -> float:
    """The same rows from float32 payloads: frombytes, then widen to float64 columns."""
    t = time.perf_counter()
    for data, b in zip(raw32, (b for b in idx.blocks if b.n_steps), strict=True):
        n4 = 4 * b.n_steps
        view = memoryview(data)
        steps = array("i")
        steps.frombytes(view[:n4])
        first = b.first_step
        array("q", [first + s for s in steps])
        for i in range(1, 2 + len(ix.ev.SERIES_KEYS)):
            a = array("f")
            a.frombytes(view[i * n4 : (i + 1) * n4])
            array("d", a)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=500_000)
    p.add_argument("--keep", type=Path, default=None)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="nal-layout-"))
    run = root / f"bench{a.steps}"
    log = run / "events.jsonl"
    if not log.exists():
        write_synthetic_run(run, a.steps, target_step=a.steps + 100_000)
    if not ix.index_path(log).exists():
        build_index(log)
    idx, fd = _blocks(log)
    stepped = [b for b in idx.blocks if b.n_steps]
    rows = sum(b.n_steps for b in stepped)
    raw32 = []
    for b in stepped:  # the smaller layout's payloads, from the shipped columns
        steps, ts, losses = idx.columns(b)
        cols = [array("i", [s - b.first_step for s in steps]), array("f", [x - ts[0] for x in ts])]
        cols += [array("f", c) for c in losses]
        raw32.append(b"".join(c.tobytes() for c in cols))
    size = ix.index_path(log).stat().st_size
    small = size - rows * 8 * (2 + len(ix.ev.SERIES_KEYS)) + rows * SMALL_ROW
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(
        f"log {log.stat().st_size / 2**20:.0f} MiB, {rows:,} step rows, {len(idx.blocks):,} blocks"
    )
    print(
        f"index as shipped: {size / 2**20:.1f} MiB ({100 * size / log.stat().st_size:.1f} % of the log)"
    )
    print(
        f"smaller layout:   {small / 2**20:.1f} MiB ({100 * small / log.stat().st_size:.1f} % of the log)"
    )
    figs: dict[str, list[float]] = {k: [] for k in ("load", "load_rows", "dec64", "dec32")}
    for _ in range(a.repeats):  # interleaved: a load drift slows every variant alike
        figs["load"].append(_load(log, rows=False))
        figs["load_rows"].append(_load(log, rows=True))
        figs["dec64"].append(_decode64(idx))
        figs["dec32"].append(_decode32(idx, raw32))
    med = {k: statistics.median(v) for k, v in figs.items()}
    print(f"load_history, as shipped (summaries):   {med['load']:.3f} s")
    print(f"load_history, every block from its rows: {med['load_rows']:.3f} s")
    print(f"decode every row, float64 (shipped):     {med['dec64']:.3f} s")
    print(f"decode every row, float32 (smaller):     {med['dec32']:.3f} s "
          f"({med['dec32'] / med['dec64']:.2f}x)")  # fmt: skip
    print(f"machine load after: {os.getloadavg()[0]:.2f}")
    idx.close()
    os.close(fd)


if __name__ == "__main__":
    main()
