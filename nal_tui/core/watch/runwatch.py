"""One watched run dir: the dashboard's loader and follower feeding the dashboard's
``RunState``, and the notices its alerts and lifecycle give (each with a stable key)."""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

from nal_tui.core.control.proc import trainer_state
from nal_tui.core.control.rundir import events_file
from nal_tui.core.feed.follow import FollowStats, LogFollower, Records
from nal_tui.core.feed.loader import apply_batch, load_history
from nal_tui.core.reducer.state import RunState
from nal_tui.core.reducer.views import AlertRow
from nal_tui.core.text import clean
from nal_tui.core.vocab import LEVEL_ERROR, LEVEL_INFO, STATUS_CRASHED
from nal_tui.core.watch.notice import KIND_NEW_BEST, KIND_RUN_END, KIND_RUN_START, Notice
from nal_tui.core.watch.store import WatchStore
from trainer.events import schema as ev

PID_EVERY_S = 2.0  # how often the PID file and its process are looked at
# Alerts raised at the time they were noticed (not at a record's time): keyed by session.
_NOW_KINDS = (ev.ALERT_STALLED, ev.ALERT_CRASHED)
# The run_end notice says it (with the exit code): not sent twice.
_FOLDED = (ev.ALERT_RUN_FAILED,)


def alert_key(a: AlertRow, run_id: str) -> str:
    if a.kind in _NOW_KINDS or a.t is None:
        return f"{a.kind}|{run_id}|{a.step}"
    return f"{a.kind}|{a.source}|{a.step}|{a.t:.6f}"


class RunWatch:
    """Follows one run dir; ``poll`` returns the notices not told yet, oldest first."""

    def __init__(self, run_dir: Path, wake: threading.Event, *, polling: bool = False,
                 best: bool = False) -> None:  # fmt: skip
        self.run_dir = run_dir
        self.best = best
        self.state = RunState()
        self.store = WatchStore(run_dir)
        self.wake = wake
        self.follower = LogFollower(events_file(run_dir), self._on_batch, polling=polling)
        self._batches: deque[tuple[Records, FollowStats]] = deque()
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._pid_t = 0.0

    # ---- reading

    def _on_batch(self, records: Records, stats: FollowStats) -> None:  # the follower's thread
        with self._lock:
            self._batches.append((records, stats))
        self.wake.set()

    def catch_up(self, now: float) -> int:
        """Read the log as it is (the dashboard's fast loader); on a first watch (no state
        file), mark what it already holds as told. Returns how many were so marked."""
        first = not self.store.load()
        try:
            load_history(self.follower, self.state)
        except OSError as e:  # an unreadable log is reported as the dashboard does
            self.state.note_garbled(1, f"cannot read {events_file(self.run_dir)}: {e}")
        self.check_process(now, force=True)
        if not first:
            return 0
        self.store.dirty = True  # a first watch leaves its state file as soon as it can
        old = self._candidates()
        for n in old:
            self.store.mark(n.key)
        return len(old)

    def start(self) -> None:
        self.follower.start()

    def stop(self) -> None:
        self.follower.stop()

    def check_process(self, now: float, force: bool = False) -> None:
        if force or now - self._pid_t >= PID_EVERY_S:
            self._pid_t = now
            pid = trainer_state(self.run_dir)
            started = pid.info.started if pid.info is not None else None
            self.state.set_pid_state(pid.state, pid.pid, started)
        self.state.refresh(now)

    def poll(self, now: float) -> list[Notice]:
        """Apply what the follower read, look at the process, return new notices."""
        with self._lock:
            batches = list(self._batches)
            self._batches.clear()
        for records, stats in batches:
            apply_batch(self.state, records, stats)
        self.check_process(now)
        return self.new_notices()

    # ---- notices

    def new_notices(self) -> list[Notice]:
        out = []
        for n in self._candidates():
            if n.key in self._in_flight or self.store.has(n.key):
                continue
            out.append(n)
        return out

    def dispatched(self, key: str) -> None:
        self._in_flight.add(key)

    def _candidates(self) -> list[Notice]:
        s = self.state
        rd = self.run_dir
        out: list[Notice] = []
        pairs: set[tuple[str, int | None]] = set()
        for a in s.alerts.rows:
            if a.kind in _FOLDED:
                continue
            pair = (a.kind, a.step)
            key = alert_key(a, s.run_id)
            if pair in pairs:  # the trainer's alert and the dashboard's for one event
                self.store.mark(key)
                continue
            pairs.add(pair)
            end = a.kind == ev.ALERT_CRASHED
            out.append(Notice(key, rd, a.kind, a.level, a.step, a.message, a.t or 0.0, a.source,
                              end_status=STATUS_CRASHED if end else None))  # fmt: skip
        rs = s.run_start
        if rs is not None:
            start = rs["start_step"]
            what = f"resumed from step {start:,}" if start else "started from step 0"
            msg = f"{what}, target step {rs['target_step']:,}, on {clean(rs['device'], 40)}" + (
                f" x{rs['world_size']}" if rs["world_size"] > 1 else ""
            )
            out.append(Notice(f"run_start|{clean(rs['run_id'], 80)}|{rs[ev.K_TIME]}", rd,
                              KIND_RUN_START, LEVEL_INFO, start, msg, rs[ev.K_TIME]))  # fmt: skip
        if s.ended and s.end_t is not None:
            failed = s.end_status == ev.STATUS_FAILED
            out.append(Notice(
                f"run_end|{s.end_t}", rd, KIND_RUN_END, LEVEL_ERROR if failed else LEVEL_INFO,
                s.step, f"{s.end_status}: {s.end_reason} (exit code {s.exit_code})", s.end_t,
                end_status=s.end_status, exit_code=s.exit_code,
            ))  # fmt: skip
        if self.best:
            for rec in s.checkpoints.events:
                ledger = rec.get("best_steps") or []
                if rec.get("best") and ledger and ledger[0] == rec["step"]:
                    score = rec.get("score")
                    what = (
                        f"{clean(rec.get('metric') or 'score', 20)} {score:.4g}"
                        if isinstance(score, (int, float)) else "best"
                    )  # fmt: skip
                    out.append(Notice(
                        f"new_best|{rec['step']}|{rec[ev.K_TIME]}", rd, KIND_NEW_BEST, LEVEL_INFO,
                        rec["step"], f"new best checkpoint at step {rec['step']:,}: {what}",
                        rec[ev.K_TIME],
                    ))  # fmt: skip
        out.sort(key=lambda n: n.t)
        return out
