"""Torture: SIGKILL the real trainer at moments chosen by file events, resume, repeat.

Runs ``nal-train`` on the demo model (a generated demo corpus, a checkpoint every 2 steps,
keep_last 2, a validation sample every 3 steps) and kills it with SIGKILL right after a
file event of the run directory marks a chosen moment: each stage of a checkpoint save
(temp file created, temp written, manifest temp created and written, .pt renamed, manifest
renamed), of retention (manifest renamed away, .pt deleted), of a sample WAV write (temp
created, renamed), of an event-log append, and of start-up (PID file written, run_start
written). The events come from inotify (read directly through libc, so nothing delays them:
watchdog's inotify buffer holds events back to pair renames). After each kill it resumes
with ``--resume latest`` and checks, with its own reading of the manifests (not the
trainer's code):

- that every resume started from the newest checkpoint of the live branch whose bytes
  match its manifest (or from a save whose two files were both complete at the kill, which
  the trainer finishes: it counts as the newest then);
- that no checkpoint ever seen complete and verified has disappeared, except those that
  retention may delete (keep_last newer verified live checkpoints exist), and none went
  corrupt;
- at the end, that a last resume runs to its target and exits 0, and that the event log's
  live view (docs/events.md reader rule) is steps 1..N, each once.

Prints one line per kill and a summary with timings. ``--short`` makes 6 kills (the slow
test uses it); the default makes 39. Linux only (inotify). Example:

    python bench/torture.py            # 39 kills, ~3-4 min on 2 cores
    python bench/torture.py --short --json
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import hashlib
import json
import os
import random
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

# ------------------------------------------------------------------------- inotify

IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO = 0x2, 0x8, 0x40, 0x80
IN_CREATE, IN_DELETE, IN_Q_OVERFLOW, IN_ISDIR = 0x100, 0x200, 0x4000, 0x40000000
WATCH_MASK = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
_EVENT = struct.Struct("iIII")


class Inotify:
    """A thin inotify reader: ``callback(dir, name, mask)`` runs on its own thread."""

    def __init__(self, callback) -> None:
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._dirs: dict[int, Path] = {}
        self._cb = callback
        self._stop = False
        self.overflows = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, d: Path) -> None:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(d), WATCH_MASK)
        if wd >= 0:
            self._dirs[wd] = d

    def _run(self) -> None:
        while not self._stop:
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if not r:
                continue
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            i = 0
            while i + _EVENT.size <= len(buf):
                wd, mask, _cookie, n = _EVENT.unpack_from(buf, i)
                name = buf[i + _EVENT.size : i + _EVENT.size + n].rstrip(b"\0").decode()
                i += _EVENT.size + n
                if mask & IN_Q_OVERFLOW:
                    self.overflows += 1
                    continue
                d = self._dirs.get(wd)
                if d is not None:
                    self._cb(d, name, mask)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        os.close(self.fd)


# ------------------------------------------------------------------------- moments


def _in(d: Path, name: str) -> bool:
    return d.name == name


# Each stage: (description, predicate on (dir, name, mask), needs the run_start first).
STAGES: dict[str, tuple[str, Any, bool]] = {
    "startup.pid_written": (
        "start-up: PID file in place (lock held; cleanup, resume load next)",
        lambda d, n, m: n == "trainer.pid" and m & IN_MOVED_TO,
        False,
    ),
    "startup.run_start": (
        "start-up: first event-log append (run_start)",
        lambda d, n, m: n == "events.jsonl" and m & IN_MODIFY,
        False,
    ),
    "ckpt.pt_temp_created": (
        "save: .pt temp created (torch.save writing)",
        lambda d, n, m: _in(d, "checkpoints") and _tmp(n, ".pt") and m & IN_CREATE,
        True,
    ),
    "ckpt.pt_temp_written": (
        "save: .pt temp written and closed",
        lambda d, n, m: _in(d, "checkpoints") and _tmp(n, ".pt") and m & IN_CLOSE_WRITE,
        True,
    ),
    "ckpt.manifest_temp_created": (
        "save: manifest temp created",
        lambda d, n, m: _in(d, "checkpoints") and _tmp(n, ".json") and m & IN_CREATE,
        True,
    ),
    "ckpt.manifest_temp_written": (
        "save: manifest temp written and closed",
        lambda d, n, m: _in(d, "checkpoints") and _tmp(n, ".json") and m & IN_CLOSE_WRITE,
        True,
    ),
    "ckpt.pt_renamed": (
        "save: .pt renamed into place (manifest not yet)",
        lambda d, n, m: _in(d, "checkpoints") and _final(n, ".pt") and m & IN_MOVED_TO,
        True,
    ),
    "ckpt.manifest_renamed": (
        "save: manifest renamed into place (checkpoint event not yet written)",
        lambda d, n, m: _in(d, "checkpoints") and _final(n, ".json") and m & IN_MOVED_TO,
        True,
    ),
    "retention.manifest_renamed_away": (
        "retention: a doomed manifest renamed to a temp",
        lambda d, n, m: _in(d, "checkpoints") and _final(n, ".json") and m & IN_MOVED_FROM,
        True,
    ),
    "retention.pt_deleted": (
        "retention: a doomed .pt unlinked",
        lambda d, n, m: _in(d, "checkpoints") and _final(n, ".pt") and m & IN_DELETE,
        True,
    ),
    "sample.temp_created": (
        "sample WAV: temp created",
        lambda d, n, m: d.name.startswith("step_") and _tmp(n, ".wav") and m & IN_CREATE,
        True,
    ),
    "sample.renamed": (
        "sample WAV: renamed into place",
        lambda d, n, m: d.name.startswith("step_") and n.endswith(".wav") and m & IN_MOVED_TO,
        True,
    ),
    "events.append": (
        "event-log append mid-run (after 3-25 appends)",
        lambda d, n, m: n == "events.jsonl" and m & IN_MODIFY,
        True,
    ),
}
SHORT = [
    "ckpt.pt_temp_created",
    "ckpt.manifest_temp_written",
    "ckpt.pt_renamed",
    "ckpt.manifest_renamed",
    "retention.pt_deleted",
    "sample.renamed",
]


def _tmp(name: str, ext: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp") and f"{ext}." in name


def _final(name: str, ext: str) -> bool:
    return name.startswith("ckpt_") and name.endswith(ext)


@dataclass
class Armed:
    pid: int
    stage: str
    skip: int
    seen_start: bool = False
    fired_at: float | None = None
    what: str = ""
    done: threading.Event = field(default_factory=threading.Event)


class Killer:
    """Holds the one armed target; the inotify thread fires SIGKILL on its moment."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.armed: Armed | None = None
        self.lock = threading.Lock()
        self.ino = Inotify(self._on_event)
        for d in (run_dir, run_dir / "checkpoints", run_dir / "samples"):
            d.mkdir(parents=True, exist_ok=True)
            self.ino.watch(d)
        for d in sorted((run_dir / "samples").glob("step_*")):
            self.ino.watch(d)

    def _on_event(self, d: Path, name: str, mask: int) -> None:
        if d.name == "samples" and mask & IN_CREATE and mask & IN_ISDIR:
            self.ino.watch(d / name)
        with self.lock:
            a = self.armed
            if a is None or a.fired_at is not None:
                return
            if name == "events.jsonl" and mask & IN_MODIFY and not a.seen_start:
                a.seen_start = True
                if STAGES[a.stage][2]:
                    return  # that append was the run_start itself
            desc, pred, needs_start = STAGES[a.stage]
            if needs_start and not a.seen_start:
                return
            if not pred(d, name, mask):
                return
            if a.skip > 0:
                a.skip -= 1
                return
            try:
                os.kill(a.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            a.fired_at = time.monotonic()
            a.what = f"{d.name}/{name}"
            a.done.set()

    def arm(self, a: Armed) -> None:
        with self.lock:
            self.armed = a

    def disarm(self) -> None:
        with self.lock:
            self.armed = None


# ------------------------------------------------------------ the oracle (no trainer code)


def _sha(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def _manifest(path: Path) -> dict | None:
    try:
        d = json.loads(path.read_bytes())
        f = d["files"][0]
        return {"step": int(d["step"]), "name": f["name"], "sha256": f["sha256"]}
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def verified_in(d: Path) -> dict[int, str]:
    """step -> sha256 of every checkpoint in ``d`` whose .pt matches its manifest."""
    out = {}
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return out
    for n in names:
        if n.startswith("ckpt_") and n.endswith(".json"):
            m = _manifest(d / n)
            if m and _sha(d / m["name"]) == m["sha256"]:
                out[m["step"]] = m["sha256"]
    return out


def recoverable(ck: Path) -> dict[int, str]:
    """Saves whose manifest temp and .pt (final or temp) were both complete at the kill."""
    out = {}
    try:
        names = os.listdir(ck)
    except FileNotFoundError:
        return out
    for n in names:
        if n.startswith(".ckpt_") and ".json." in n and n.endswith(".tmp"):
            m = _manifest(ck / n)
            if m is None or (ck / f"ckpt_{m['step']:08d}.json").exists():
                continue
            cands = [ck / m["name"]] + [ck / x for x in names if x.startswith(f".{m['name']}.")]
            if any(_sha(c) == m["sha256"] for c in cands):
                out[m["step"]] = m["sha256"]
    return out


def all_verified(run_dir: Path) -> set[tuple[int, str]]:
    ck = run_dir / "checkpoints"
    seen = {(s, h) for s, h in verified_in(ck).items()}
    ab = ck / "abandoned"
    if ab.is_dir():
        for sub in ab.iterdir():
            seen |= {(s, h) for s, h in verified_in(sub).items()}
    return seen


def classify(run_dir: Path) -> str:
    """A short description of the checkpoint directory right after a kill."""
    ck = run_dir / "checkpoints"
    names = sorted(os.listdir(ck)) if ck.is_dir() else []
    tags = []
    if any(_tmp(n, ".pt") for n in names):
        tags.append("pt-temp")
    if any(_tmp(n, ".json") for n in names):
        tags.append("manifest-temp")
    pts = {n[:-3] for n in names if _final(n, ".pt")}
    jsons = {n[:-5] for n in names if _final(n, ".json")}
    if pts - jsons:
        tags.append("pt-without-manifest")
    if jsons - pts:
        tags.append("manifest-without-pt")
    return "+".join(tags) or "clean"


def live_view(events: Path) -> list[int]:
    """The reader rule: a run_start at S drops logged steps after S."""
    steps: list[int] = []
    for line in events.read_bytes().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("event") == "run_start":
            s = r.get("start_step", 0)
            steps = [x for x in steps if x <= s]
        elif r.get("event") == "step":
            steps.append(r["step"])
    return steps


def run_starts(events: Path) -> list[dict]:
    out = []
    if events.exists():
        for line in events.read_bytes().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("event") == "run_start":
                out.append(r)
    return out


# ----------------------------------------------------------------------------- main


def nal_train() -> list[str]:
    exe = Path(sys.executable).with_name("nal-train")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "trainer"]


def make_config(work: Path) -> Path:
    from trainer.demo_corpus import ensure_demo_corpus

    corpus = ensure_demo_corpus(work / "corpus", 16000)
    data = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    data["data"]["corpus_dir"] = str(corpus)
    data["log"] = {"log_every": 1, "val_every": 3, "val_samples": 1}
    data["checkpoint"] = {"every": 2, "keep_last": 2, "milestone_every": 0}
    path = work / "torture.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="6 kills (for the slow test)")
    ap.add_argument("--rounds", type=int, default=3, help="kills per stage (default 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, help="work dir (default: a temp dir, removed)")
    ap.add_argument("--timeout", type=float, default=180.0, help="per-kill ceiling (s)")
    ap.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="nal-torture-"))
    work.mkdir(parents=True, exist_ok=True)
    run_dir = work / "run"
    cfg = make_config(work)
    plan = SHORT if args.short else [s for _ in range(args.rounds) for s in STAGES]
    killer = Killer(run_dir)
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    ever: dict[tuple[int, str], int] = {}
    n_ever_set: set[tuple[int, str]] = set()
    n_ever = 0
    rows: list[dict] = []
    lost: list[str] = []
    judged = from_newest = missed = 0
    t_all = time.monotonic()
    out_log = open(work / "trainer.out", "ab")  # noqa: SIM115 - closed at the end
    try:
        # Warm-up: a first run with a few checkpoints (and one retention) to kill into.
        first = subprocess.run(
            nal_train()
            + ["train", "--config", str(cfg), "--run-dir", str(run_dir)]
            + ["--target-step", "6"],
            stdout=out_log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            timeout=600,
        )
        if first.returncode != 0:
            raise SystemExit(f"warm-up run failed (exit {first.returncode}); see {work}")
        for key in all_verified(run_dir):
            ever[key] = 0
        for i, stage in enumerate(plan):
            starts_before = len(run_starts(run_dir / "events.jsonl"))
            live = verified_in(run_dir / "checkpoints")
            live.update(recoverable(run_dir / "checkpoints"))
            expect = max(live) if live else None
            if expect is not None:
                cmd = ["train", "--run-dir", str(run_dir), "--resume", "latest"]
            else:  # nothing to resume (never happens after the warm-up; kept for safety)
                cmd = ["train", "--config", str(cfg), "--run-dir", str(run_dir), "--new-branch"]
            skip = rng.randint(3, 25) if stage == "events.append" else 0
            t0, t0_wall = time.monotonic(), time.time()
            p = subprocess.Popen(
                nal_train() + cmd + ["--target-step", "1000000"],
                stdout=out_log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
                start_new_session=True,
            )
            a = Armed(p.pid, stage, skip)
            killer.arm(a)
            fired = a.done.wait(args.timeout)
            killer.disarm()
            if not fired:
                missed += 1
                p.kill()
            code = p.wait()
            t_end = time.monotonic()
            state = classify(run_dir)
            starts = run_starts(run_dir / "events.jsonl")
            row: dict[str, Any] = {
                "kill": i + 1,
                "stage": stage,
                "event": a.what,
                "state": state,
                "exit": code,
                "kill_s": round((a.fired_at or t_end) - t0, 3),
            }
            if len(starts) > starts_before:
                got = starts[-1]["start_step"]
                row["resumed_from"] = got
                row["startup_s"] = round(starts[-1]["t"] - t0_wall, 3)
                if expect is not None:
                    judged += 1
                    row["expected"] = expect
                    from_newest += got == expect
            rows.append(row)
            # Lost checkpoints: every (step, sha) ever seen verified must still exist, unless
            # retention may have deleted it (keep_last = 2 newer verified live checkpoints).
            # Judged when it disappears, then forgotten (it may come back: a retention
            # killed half-way is undone at the next start).
            now = all_verified(run_dir)
            live_now = verified_in(run_dir / "checkpoints")
            for key in [k for k in ever if k not in now]:
                if len([x for x in live_now if x > key[0]]) < 2:
                    lost.append(f"step {key[0]} ({key[1][:8]}) after kill {i + 1}")
                del ever[key]
            for key in now:
                ever.setdefault(key, i)
            n_ever = len(set(ever) | n_ever_set)
            n_ever_set |= set(ever)
            say(
                f"kill {i + 1:2d}/{len(plan)} {stage:32s} at {a.what or '(missed)':38s} "
                f"-> {state:32s} resumed from {row.get('resumed_from', '-')!s:>4} "
                f"(expected {row.get('expected', '-')!s:>4})"
            )
        # A last resume runs to its end: it must complete and exit 0.
        live = verified_in(run_dir / "checkpoints")
        live.update(recoverable(run_dir / "checkpoints"))
        final_from = max(live) if live else 0
        t0 = time.monotonic()
        fin = subprocess.run(
            nal_train()
            + ["train", "--run-dir", str(run_dir), "--resume", "latest"]
            + ["--target-step", str(final_from + 3)],
            stdout=out_log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            timeout=600,
        )
        final_s = time.monotonic() - t0
        final_start = run_starts(run_dir / "events.jsonl")[-1]["start_step"]
        judged += 1
        from_newest += final_start == final_from
        view = live_view(run_dir / "events.jsonl")
        contiguous = bool(view) and view == list(range(1, final_from + 4))
        n_ever_set |= all_verified(run_dir)
        n_ever = len(n_ever_set)
        kept_aside = sum(
            1
            for d in (run_dir / "checkpoints" / "abandoned").glob("*no-manifest*")
            for n in os.listdir(d)
            if n.endswith(".pt")
        )
    finally:
        killer.ino.close()
        out_log.close()
    total = time.monotonic() - t_all
    kill_s = [r["kill_s"] for r in rows]
    startup = [r["startup_s"] for r in rows if "startup_s" in r]
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    summary = {
        "kills": len(rows),
        "missed_moments": missed,
        "resumes_judged": judged,
        "resumes_from_newest_verified": from_newest,
        "checkpoints_ever_verified": n_ever,
        "checkpoints_lost": len(lost),
        "lost": lost,
        "manifest_less_kept_aside": kept_aside,
        "final_exit": fin.returncode,
        "final_s": round(final_s, 2),
        "live_view_contiguous": contiguous,
        "live_view_steps": len(view),
        "states_after_kill": states,
        "kill_after_launch_s_median": round(sorted(kill_s)[len(kill_s) // 2], 3),
        "resume_startup_s_median": round(sorted(startup)[len(startup) // 2], 3)
        if startup
        else None,
        "inotify_overflows": killer.ino.overflows,
        "total_s": round(total, 1),
        "work_dir": str(work),
    }
    if args.json:
        print(json.dumps({"summary": summary, "kills": rows}))
    else:
        print()
        print(
            f"{summary['kills']} kills ({missed} moments missed), "
            f"{from_newest}/{judged} resumes continued from the newest verified checkpoint "
            f"of the live branch, {len(lost)} checkpoints lost of {n_ever} ever verified, "
            f"{kept_aside} manifest-less .pt kept aside"
        )
        print(
            f"final resume: exit {fin.returncode} in {final_s:.1f} s; live view steps 1..{len(view)} "
            f"{'contiguous' if contiguous else 'NOT contiguous'}"
        )
        print(f"states after kill: {states}")
        print(
            f"timings: median launch->kill {summary['kill_after_launch_s_median']} s, median "
            f"launch->run_start {summary['resume_startup_s_median']} s, total {total:.0f} s"
        )
    if args.work is None and not os.environ.get("NAL_TORTURE_KEEP"):
        shutil.rmtree(work, ignore_errors=True)
    ok = from_newest == judged and not lost and fin.returncode == 0 and contiguous and missed == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
