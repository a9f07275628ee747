"""``nal-tui compare`` of N runs of 500,000 steps: the time to load them all (each through the
dashboard's loader, the way the compare app does before it draws), beside a stdlib ``json``
parse of one run's log, in fresh processes on this machine.

The N runs are hard links of one synthetic run (bench/synth_log.py, with its ``events.idx``),
so they cost no disk; each is loaded on its own all the same.

    python bench/bench_compare.py [--runs 6] [--steps 500000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_dashboard import json_parse_s, prepare  # noqa: E402

LOAD = (
    "import sys,time;sys.path.insert(0,sys.argv[1]);t=time.perf_counter();"
    "from nal_tui.core.compare.runs import load_runs;"
    "rs=load_runs(sys.argv[2:]);"
    "print(time.perf_counter()-t, sum(r.state.step or 0 for r in rs))"
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=6)
    p.add_argument("--steps", type=int, default=500_000)
    p.add_argument("--keep", type=Path, default=None, help="cache the synthetic run here")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = (a.keep or Path(tmp)) / f"bench{a.steps}"
        log = prepare(base, a.steps)
        dirs = []
        for i in range(a.runs):
            d = Path(tmp) / "runs" / f"run{i}"
            d.mkdir(parents=True)
            for name in ("events.jsonl", "events.idx"):
                os.link(base / name, d / name)
            dirs.append(str(d))
        parse_s = json_parse_s(log)
        out = subprocess.run([sys.executable, "-c", LOAD, str(ROOT), *dirs],
                             capture_output=True, text=True, check=True)  # fmt: skip
        secs, total = out.stdout.split()
        secs = float(secs)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"stdlib json parse of one run's log: {parse_s:.2f} s")
    print(f"compare: {a.runs} runs of {a.steps:,} steps loaded in {secs:.2f} s "
          f"({secs / a.runs:.2f} s per run, {secs / a.runs / parse_s:.2f}x the stdlib parse of "
          f"one; {int(total):,} steps in all)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
