"""Backlog load benchmark, headless: one log opened through events.idx and through the
JSONL alone, beside a stdlib ``json`` parse of the same file; time and peak RSS of each in
a fresh process.

    python bench/bench_reducer.py [--steps 500000] [--steps 5000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CHILD = r"""
import json, os, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if mode == "json":
    n = 0
    with open(path, "rb") as f:
        for line in f:
            json.loads(line); n += 1
    out = {"records": n}
else:
    from nal_tui.core.feed.follow import LogFollower
    from nal_tui.core.feed.loader import load_history
    from nal_tui.core.reducer import RunState
    idx = path[: -len("events.jsonl")] + "events.idx"
    if mode == "jsonl" and os.path.exists(idx):
        os.rename(idx, idx + ".off")
    try:
        st = RunState(); f = LogFollower(path, lambda r, s: None); load_history(f, st)
    finally:
        if os.path.exists(idx + ".off"):
            os.rename(idx + ".off", idx)
    out = {"records": st.records, "step": st.step, "index": f.used_index}
out["s"] = time.perf_counter() - t0
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def ensure_run(root: Path, steps: int) -> Path:
    from synth_log import write_synthetic_run

    from trainer.events.indexwrite import build_index

    run = root / f"run{steps}"
    log = run / "events.jsonl"
    if not log.exists():
        t0 = time.perf_counter()
        write_synthetic_run(run, steps, target_step=steps + steps // 5)
        print(
            f"wrote {log} ({log.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s"
        )
    if not (run / "events.idx").exists():
        t0 = time.perf_counter()
        build_index(log)
        print(
            f"built events.idx in {time.perf_counter() - t0:.1f} s (the trainer writes it as it logs)"
        )
    return log


def measure(mode: str, log: Path) -> dict:
    p = subprocess.run([sys.executable, "-c", CHILD, mode, str(log)], capture_output=True,
                       text=True, cwd=ROOT, check=True)  # fmt: skip
    return json.loads(p.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, action="append")
    ap.add_argument("--keep", type=Path, default=Path("/tmp/nal-bench"))
    a = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    for n in a.steps or [500_000]:
        log = ensure_run(a.keep, n)
        for mode in ("index", "jsonl", "json"):
            m = measure(mode, log)
            what = {"index": "nal_tui load via events.idx", "jsonl": "nal_tui load, JSONL only",
                    "json": "stdlib json.loads per line"}[mode]  # fmt: skip
            print(f"{n:>9,} steps  {what:<30} {m['s']:6.2f} s  peak RSS {m['rss_mb']:6.1f} MB")


if __name__ == "__main__":
    main()
