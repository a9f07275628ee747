"""Benchmark opening a long run: tail preview, then read + parse + reduce the whole log.

Prints wall and CPU seconds (this process and the forked parse helper) and peak RSS per log
size and load mode. Each measurement runs in a fresh process, so RSS is that of one
dashboard-like load. Logs are generated once into ``--dir`` and reused.

    python bench/bench_reducer.py                            # 500k and 5M steps
    python bench/bench_reducer.py --steps 500000 --repeat 3 --mode parallel serial records
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _ensure_log(root: Path, steps: int) -> Path:
    run = root / f"run{steps}"
    done = run / "complete"
    path = run / "events.jsonl"
    if not done.exists():
        sys.path.insert(0, str(HERE))
        from synth_log import write_synthetic_run

        t = time.perf_counter()
        print(f"generating {steps:,} steps into {run} ...", flush=True)
        write_synthetic_run(run, steps, target_step=steps * 2)
        done.write_text(str(steps))
        print(
            f"  {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t:.1f} s", flush=True
        )
    return path


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _child(path: str, mode: str) -> None:
    """Measure one open in this process (tail preview, then the whole history); print JSON."""
    t0 = time.perf_counter()
    from nal_tui.follow import LogFollower
    from nal_tui.state import RunState

    t_import = time.perf_counter() - t0
    state = RunState()

    def on(records, stats):
        if stats.reset:
            state.reset()
        state.feed(records)
        if stats.new_garbled:
            state.note_garbled(stats.new_garbled, stats.last_garbled)

    f = LogFollower(path, on)
    t1 = time.perf_counter()
    preview = RunState()
    preview.feed(f.read_tail())
    t2 = time.perf_counter()
    rss_preview = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    c2, k2 = _cpu(), _cpu(resource.RUSAGE_CHILDREN)
    if mode == "records":  # the record-by-record path (what check() does)
        f.check()
    else:
        f.load_into(state, parallel=mode == "parallel")
    t3 = time.perf_counter()
    c3, k3 = _cpu(), _cpu(resource.RUSAGE_CHILDREN)
    g = state.losses["g"]
    t4 = time.perf_counter()
    g.series.buckets(200)
    t5 = time.perf_counter()
    out = {
        "import_s": t_import,
        "preview_s": t2 - t1,
        "preview_step": preview.step,
        "rss_after_preview_mb": rss_preview,
        "load_s": t3 - t2,
        "load_cpu_s": c3 - c2,
        "helper_cpu_s": k3 - k2,
        "buckets_200_ms": (t5 - t4) * 1e3,
        "lines": f.stats.lines,
        "mb": f.stats.bytes_read / 1e6,
        "step": state.step,
        "alerts": len(state.alerts),
        "garbled": state.garbled,
        "series_stored": g.series.stored(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "helper_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, nargs="+", default=[500_000, 5_000_000])
    p.add_argument("--dir", type=Path, default=Path("/tmp/nal_bench"))
    p.add_argument(
        "--mode",
        nargs="+",
        choices=["parallel", "serial", "records"],
        default=["parallel", "serial"],
        help="parallel/serial: LogFollower.load_into (blocks, with/without the helper "
        "process); records: check() feeding dicts record by record (the old path)",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per size and mode (best kept)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-mode", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        _child(a.child, a.child_mode)
        return
    for steps in a.steps:
        path = _ensure_log(a.dir, steps)
        for mode in a.mode:
            runs = []
            for _ in range(a.repeat):
                r = subprocess.run(
                    [sys.executable, __file__, "--child", str(path), "--child-mode", mode],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
            m = min(runs, key=lambda x: x["load_s"])
            cpu = m["load_cpu_s"] + m["helper_cpu_s"]
            print(
                f"{steps:>9,} steps {m['mb']:5.0f} MB {m['lines']:>9,} lines {mode:>8} | "
                f"preview {m['preview_s']:.3f} s | history {m['load_s']:.2f} s wall, "
                f"cpu {m['load_cpu_s']:.2f} s + helper {m['helper_cpu_s']:.2f} s "
                f"({m['lines'] / cpu / 1e3:.0f}k lines/cpu-s) | "
                f"buckets(200) {m['buckets_200_ms']:.1f} ms | "
                f"peak RSS {m['peak_rss_mb']:.0f} MB (helper {m['helper_peak_rss_mb']:.0f}, "
                f"after preview {m['rss_after_preview_mb']:.0f}) | step {m['step']:,} "
                f"alerts {m['alerts']} garbled {m['garbled']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
