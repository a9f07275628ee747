"""Watcher benchmark: alert-to-POST latency, and the watcher's CPU and RSS following a live
run. Prints figures beside the issue's limits; asserts nothing.

    python bench/bench_watch.py [--alerts 20] [--follow-s 60] [--rate 10] [--trainer]

- latency: an ``alert`` record appended to events.jsonl (time taken right after the write
  returns) -> the Apprise ``json://`` POST received by an HTTP server on 127.0.0.1, for
  ``--alerts`` alerts of distinct steps (``--window 0``: each is sent); p50/p95/max.
  Limit: p95 <= 2 s.
- following a live run: the watcher's own CPU time over ``--follow-s`` seconds divided by
  the wall time, and its RSS at the end, while a writer appends ``--rate`` step records a
  second through the trainer's EventWriter (the demo config's pace is a few steps/s), or,
  with ``--trainer``, while a real ``nal-train`` demo run trains. Limits: CPU <= 1 % of a
  core, RSS <= 80 MB.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.factory import run_start, step_event  # noqa: E402
from tests.watchhelp import PostSink, start_watch, stop_watch  # noqa: E402
from trainer.events import schema as ev  # noqa: E402
from trainer.events.writer import EventWriter  # noqa: E402


def wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def latency(n: int, tmp: Path) -> list[float]:
    run, out = tmp / "lat", tmp / "lat.out"
    sink = PostSink()
    w = start_watch([str(run), "--notify", sink.url, "--window", "0"], out)
    try:
        assert wait(lambda: out.exists() and "watching" in out.read_text(), 60), out.read_text()
        got: list[float] = []
        run.mkdir()
        with EventWriter(run / ev.EVENTS_FILE) as wr:
            wr.write(run_start(target=100_000))
            assert sink.wait(lambda ps: len(ps) >= 1, 60)  # the run start
            for i in range(n):
                step = 10 + i
                wr.write(step_event(step))
                wr.write(ev.Alert(kind=ev.ALERT_OVERTRAINING, step=step, message=f"bench {i}"))
                t_written = time.time()
                if not sink.wait(lambda ps, k=i: len(ps) >= k + 2, 60):
                    raise SystemExit(f"alert {i} never arrived: {out.read_text()}")
                got.append(sink.posts[-1]["_t"] - t_written)
                time.sleep(0.3)  # alerts a little apart, as a run raises them
        return got
    finally:
        stop_watch(w)
        sink.close()


def follow(seconds: float, rate: float, tmp: Path, trainer: bool) -> tuple[float, float, str]:
    run, out = tmp / "live", tmp / "live.out"
    sink = PostSink()
    stop = threading.Event()
    writer: threading.Thread | None = None
    proc: subprocess.Popen | None = None
    if trainer:
        exe = Path(sys.executable).with_name("nal-train")
        proc = subprocess.Popen(
            [str(exe), "train", "--config", "config/demo.yaml", "--run-dir", str(run),
             "--target-step", "1000000"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        what = "a real nal-train demo run"
    else:

        def write() -> None:
            run.mkdir()
            with EventWriter(run / ev.EVENTS_FILE) as wr:
                wr.write(run_start(target=10_000_000))
                s = 0
                while not stop.is_set():
                    s += 1
                    wr.write(step_event(s))
                    stop.wait(1.0 / rate)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        what = f"{rate:g} step records/s"
    w = start_watch([str(run), "--notify", sink.url], out)
    try:
        ps = psutil.Process(w.pid)
        assert wait(lambda: out.exists() and "watching" in out.read_text(), 60)
        if trainer:
            assert wait(lambda: (run / ev.EVENTS_FILE).exists(), 300)
        time.sleep(5)  # past start-up and the catch-up
        c0, t0 = sum(ps.cpu_times()[:2]), time.monotonic()
        time.sleep(seconds)
        c1, t1 = sum(ps.cpu_times()[:2]), time.monotonic()
        rss = ps.memory_info().rss / 2**20
        return 100.0 * (c1 - c0) / (t1 - t0), rss, what
    finally:
        stop.set()
        if writer is not None:
            writer.join()
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        stop_watch(w)
        sink.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alerts", type=int, default=20)
    ap.add_argument("--follow-s", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--trainer", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        lat = sorted(latency(a.alerts, tmp))
        p95 = lat[min(len(lat) - 1, int(round(0.95 * len(lat))) - 1)]
        print(f"alert line written -> POST received, {len(lat)} alerts: "
              f"p50 {statistics.median(lat) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
              f"max {lat[-1] * 1000:.0f} ms   (limit: p95 <= 2000 ms)")  # fmt: skip
        cpu, rss, what = follow(a.follow_s, a.rate, tmp, a.trainer)
        print(f"following {what} for {a.follow_s:g} s: watcher CPU {cpu:.2f} % of a core "
              f"(limit 1 %), RSS {rss:.1f} MB (limit 80 MB)")  # fmt: skip
        print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
