"""Dashboard benchmark: open time, RSS, live latency and idle CPU of the real ``nal-tui``.

Runs the real CLI in a real terminal (tmux) on a synthetic 500,000-step run and reads the
screen with ``capture-pane``; prints figures, asserts nothing.

    python bench/bench_dashboard.py [--steps 500000] [--events 40] [--big]

- open: process start -> the final step on screen ("first"), and -> history loaded too
  ("full": the header's "loading history…" gone, charts over the whole run drawn).
- RSS: the dashboard process after the open, and its peak (VmHWM).
- live latency: a step event appended to events.jsonl -> its step number on screen
  (capture-pane polled every ~5 ms, so figures include up to that much polling delay).
- idle CPU: the dashboard's CPU time over a few seconds with nothing written.
- the validation chart (key g) over the run's validations (both sets, five metrics each).
- beside each open: a stdlib ``json`` parse of the same file, in a fresh process.
- --big: the same for a 5,000,000-step run.
- --no-index: the open of the same log without ``events.idx`` ("first": the dashboard
  builds one, in a child process, and leaves it behind) and again ("second": through the
  index the first left), each beside the stdlib parse, with the ratio. With --big, the
  5M-step first open without an index too.

The synthetic logs get their ``events.idx`` built first (the trainer writes it as it
logs; building it here is timed separately).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


from synth_log import write_synthetic_run  # noqa: E402

from trainer.events import schema as ev  # noqa: E402
from trainer.events.codec import encode, loads  # noqa: E402

SESSION = "nal-bench"
SOCKET = f"nal-bench-{os.getpid()}"  # our own tmux server, never the user's
COLS, ROWS = 160, 50


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", SOCKET, *args], capture_output=True, text=True, check=False
    ).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_screen(pred, timeout: float, interval: float = 0.005) -> float | None:
    """Seconds until pred(screen text) holds, polling capture-pane; None on timeout."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if pred(screen()):
            return time.perf_counter() - t0
        time.sleep(interval)
    return None


def nal_tui_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("nal-tui")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nal_tui"]


def step_line(step: int) -> bytes:
    rec = ev.Step(
        step=step,
        epoch=1,
        g=40.0,
        d=3.0,
        stft=1.0,
        adv=2.5,
        fm=4.5,
        recon="mrstft",
        lr_g=2e-4,
        lr_d=2e-4,
        step_time=0.2,
        samples_per_s=80.0,
    ).to_record()
    return encode(rec)


def open_dashboard(run_dir: Path, steps: int) -> tuple[float | None, float | None, int]:
    """Start nal-tui on ``run_dir``: (s to the final step on screen, s to the history
    loaded, the dashboard's pid); None for a figure never reached."""
    tmux("kill-session", "-t", SESSION)
    cmd = " ".join([*nal_tui_cmd(), "--run-dir", str(run_dir), "--logs-dir", str(run_dir.parent)])
    final = f"step {steps:,}/"
    # A plain shell first, so the window has its final size before the dashboard starts.
    tmux("new-session", "-d", "-s", SESSION, "-x", str(COLS), "-y", str(ROWS), "bash --norc")
    time.sleep(0.5)
    t_start = time.perf_counter()
    tmux("send-keys", "-t", SESSION, f"cd {ROOT} && exec {cmd}", "Enter")
    first = wait_screen(lambda s: final in s, 30)
    t_first = time.perf_counter() - t_start
    full = wait_screen(lambda s: final in s and "loading history" not in s, 120)
    t_full = time.perf_counter() - t_start
    pane_pid = int(tmux("display", "-p", "-t", SESSION, "#{pane_pid}").strip() or 0)
    return (
        None if first is None else t_first,
        None if full is None else t_full,
        pane_pid,
    )


def quit_dashboard() -> None:
    tmux("send-keys", "-t", SESSION, "q")
    time.sleep(0.5)
    tmux("kill-session", "-t", SESSION)


def _fig(t: float | None, parse_s: float | None = None) -> str:
    if t is None or t == float("inf"):
        return "never"
    return f"{t:.3f} s" + (f"  ({t / parse_s:.2f}x the stdlib parse)" if parse_s else "")


def bench_no_index(run_dir: Path, steps: int, parse_s: float, second: bool = True) -> None:
    """The open without events.idx (first), then again through the index it left (second)."""
    idx = run_dir / "events.idx"
    saved = idx.with_name("events.idx.bench-saved")
    if idx.exists():
        os.replace(idx, saved)
    try:
        first, full, pid = open_dashboard(run_dir, steps)
        hwm = _vm_hwm(pid)
        print(f"  no index, first open:  final step on screen {_fig(first, parse_s)}")
        print(f"                         history loaded {_fig(full, parse_s)}; "
              f"peak RSS {hwm / 2**20:.1f} MiB")  # fmt: skip
        quit_dashboard()
        print(f"  index left behind: {'yes' if idx.exists() else 'NO'}")
        if second and idx.exists():
            first, full, pid = open_dashboard(run_dir, steps)
            print(f"  second open:           final step on screen {_fig(first, parse_s)}")
            print(f"                         history loaded {_fig(full, parse_s)}; "
                  f"peak RSS {_vm_hwm(pid) / 2**20:.1f} MiB")  # fmt: skip
            quit_dashboard()
    finally:
        if saved.exists():
            os.replace(saved, idx)


def bench_open_and_live(
    run_dir: Path, steps: int, n_events: int, parse_s: float | None = None, opens: int = 1
) -> None:
    firsts, fulls = [], []
    for i in range(opens):
        t_first, t_full, pane_pid = open_dashboard(run_dir, steps)
        firsts.append(t_first)
        fulls.append(t_full)
        if i < opens - 1:
            quit_dashboard()
    proc = psutil.Process(pane_pid)
    if opens > 1:
        each = ", ".join("-" if t is None else f"{t:.3f}" for t in firsts)
        print(f"{opens} opens, final step on screen: {each} s; the median below")
    t_first, t_full = _median(firsts), _median(fulls)
    print(f"open (process start -> final step on screen):      {_fig(t_first, parse_s)}")
    print(f"open (process start -> history loaded, all drawn): {_fig(t_full, parse_s)}")
    time.sleep(1.0)
    rss = proc.memory_info().rss
    hwm = _vm_hwm(pane_pid)
    print(f"RSS after open:  {rss / 2**20:.1f} MiB   peak (VmHWM): {hwm / 2**20:.1f} MiB")

    # Live latency: one new step at a time, measured until its number is on screen.
    lat = []
    log = run_dir / ev.EVENTS_FILE
    step = steps + 1
    with open(log, "ab") as f:
        for _ in range(n_events):
            text = f"step {step:,}/"
            f.write(step_line(step))
            f.flush()
            t0 = time.perf_counter()
            got = wait_screen(lambda s, text=text: text in s, 5, interval=0.002)
            lat.append(float("inf") if got is None else time.perf_counter() - t0)
            step += 1
            time.sleep(0.15)
    ok = sorted(x for x in lat if x != float("inf"))
    if ok:
        p50 = statistics.median(ok)
        p95 = ok[min(len(ok) - 1, int(round(0.95 * (len(ok) - 1))))]
        print(
            f"live latency over {len(lat)} events: p50 {p50 * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, max {ok[-1] * 1000:.0f} ms, missed {len(lat) - len(ok)}"
        )

    # Idle CPU: nothing written, nothing polled.
    time.sleep(2.0)
    c0, t0 = proc.cpu_times(), time.perf_counter()
    time.sleep(20.0)  # CPU times tick in 10 ms: 0.05 % of a core over 20 s
    c1, t1 = proc.cpu_times(), time.perf_counter()
    used = (c1.user - c0.user) + (c1.system - c0.system)
    print(f"idle CPU over {t1 - t0:.1f} s: {100 * used / (t1 - t0):.2f} % of one core")
    print(f"RSS at the end: {proc.memory_info().rss / 2**20:.1f} MiB")
    # The validation chart (key g) over every validation of the run, both sets.
    tmux("send-keys", "-t", SESSION, "g")
    got = wait_screen(lambda s: "validation chart ·" in s and "best" in s, 30)
    print(f"g (validation chart, every val event of the run): {_fig(got)}")
    tmux("send-keys", "-t", SESSION, "Escape")
    print(f"RSS with the validation chart opened: {proc.memory_info().rss / 2**20:.1f} MiB")
    quit_dashboard()


def _median(ts: list[float | None]) -> float | None:
    """The median open; None (never reached) counts as the slowest."""
    return statistics.median([float("inf") if t is None else t for t in ts]) if ts else None


def _last_step(log: Path) -> int:
    """The step of the log's last step event (the number the header must show)."""
    with open(log, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
        for line in reversed(f.read().splitlines()):
            try:
                rec = loads(line)
            except ev.EventError:
                continue
            if rec.get(ev.K_EVENT) == "step":
                return int(rec["step"])
    raise SystemExit(f"{log}: no step event in its tail")


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def warm_bytecode() -> None:
    """Import the dashboard once with bytecode writing on, as any launch after a user's first
    does (pip compiles installed packages; an editable checkout compiles on first import):
    the opens below then time a launch, not Python compiling our sources. A shell with
    PYTHONDONTWRITEBYTECODE set would otherwise make every launch compile them again."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    code = "import nal_tui.cli, nal_tui.ui.app"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    print("bytecode: compiled before the opens (as after a user's first launch)")


def json_parse_s(log: Path) -> float:
    code = "import json,sys,time;t=time.perf_counter();[json.loads(l) for l in open(sys.argv[1],'rb')];print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, text=True)
    return float(out.stdout.strip() or "nan")


def prepare(run_dir: Path, steps: int, index: bool = True) -> Path:
    from trainer.events.indexwrite import build_index

    log = run_dir / ev.EVENTS_FILE
    if not log.exists():
        t0 = time.perf_counter()
        write_synthetic_run(run_dir, steps, target_step=steps + 100_000)
        mib = log.stat().st_size / 2**20
        print(f"wrote {log} ({mib:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
    if index and not (run_dir / "events.idx").exists():
        t0 = time.perf_counter()
        build_index(log)
        print(f"built events.idx in {time.perf_counter() - t0:.1f} s (the trainer writes it live)")
    return log


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=500_000)
    p.add_argument("--events", type=int, default=40, help="live events to time")
    p.add_argument("--big", action="store_true", help="also a 5,000,000-step run")
    p.add_argument("--keep", type=Path, default=None, help="cache the synthetic runs here")
    p.add_argument("--no-index", action="store_true", help="also open without events.idx")
    p.add_argument("--no-live", action="store_true", help="skip the indexed open and live part")
    p.add_argument("--opens", type=int, default=1, help="indexed opens to time (median)")
    a = p.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("bench_dashboard needs tmux")
    root = a.keep if a.keep is not None else Path(tempfile.mkdtemp(prefix="nal-bench-"))
    run_dir = root / f"bench{a.steps}"
    log = prepare(run_dir, a.steps)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    warm_bytecode()
    try:
        parse_s = json_parse_s(log)
        print(f"stdlib json parse of the same file: {parse_s:.2f} s")
        if not a.no_live:
            bench_open_and_live(run_dir, _last_step(log), a.events, parse_s, a.opens)
        if a.no_index:
            bench_no_index(run_dir, _last_step(log), parse_s)
            print(f"machine load after: {os.getloadavg()[0]:.2f}")
        if a.big:
            blog = prepare(root / "bench5000000", 5_000_000, index=not a.no_live)
            bparse = json_parse_s(blog)
            print(f"5M steps: stdlib json parse of the same file: {bparse:.2f} s")
            if not a.no_live:
                bench_open_and_live(blog.parent, _last_step(blog), 10, bparse)
            if a.no_index:
                bench_no_index(blog.parent, _last_step(blog), bparse, second=False)
    finally:
        tmux("kill-server")
        if a.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
