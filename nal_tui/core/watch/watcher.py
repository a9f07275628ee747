"""``Watcher``: run dirs followed, notices deduplicated, filtered and delivered, state kept.

A plain foreground loop (systemd, tmux, nohup): it sleeps until the follower reads
something or a second passes (the process check, stall detection, dedup windows). ``once``
reads, delivers what is new, reports and returns a health code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nal_tui.core.reducer.state import RunState
from nal_tui.core.text import clean
from nal_tui.core.vocab import (
    LEVEL_ERROR,
    LEVEL_WARNING,
    STATUS_CRASHED,
    STATUS_RUNNING,
    STATUS_STOPPING,
)
from nal_tui.core.watch.dedup import DEFAULT_WINDOW_S, Dedup
from nal_tui.core.watch.hooks import DEFAULT_HOOK_TIMEOUT_S
from nal_tui.core.watch.notice import KIND_RUN_END, Notice, describe, settle
from nal_tui.core.watch.notifiers import Notifier
from nal_tui.core.watch.runwatch import RunWatch
from nal_tui.core.watch.sender import DEFAULT_RETRY_S, FIRST_BACKOFF_S, Delivery, Sender
from nal_tui.core.watch.store import StoreError
from trainer.events import schema as ev

# --once health codes (documented in the CLI's help and the README).
HEALTHY, WARNINGS, ERRORS, NOT_RUNNING = 0, 1, 2, 3
_SEVERITY = (HEALTHY, NOT_RUNNING, WARNINGS, ERRORS)  # the most severe of several runs wins
TICK_S = 1.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class WatchOptions:
    on_alert: str | None = None
    on_end: str | None = None
    level: str = "info"
    window_s: float = DEFAULT_WINDOW_S
    best: bool = False
    polling: bool = False
    retry_for_s: float = DEFAULT_RETRY_S
    first_backoff_s: float = FIRST_BACKOFF_S
    hook_timeout_s: float = DEFAULT_HOOK_TIMEOUT_S


def health(state: RunState) -> tuple[int, list[str]]:
    """(code, why): 3 not running (2 when it crashed or failed); while running, 2 when the
    current session raised an error alert, 1 a warning, else 0."""
    if state.status == STATUS_CRASHED:
        return ERRORS, [state.status_reason]
    if state.status not in (STATUS_RUNNING, STATUS_STOPPING):
        return NOT_RUNNING, [f"{state.status}: {state.status_reason}"]
    since = state.run_start[ev.K_TIME] if state.run_start else None
    rows = [a for a in state.alerts.rows if since is None or (a.t or 0) >= since]
    errors = [a for a in rows if a.level == LEVEL_ERROR]
    warnings = [a for a in rows if a.level == LEVEL_WARNING]
    worst = errors or warnings
    why = [f"{a.kind} at step {a.step}: {a.message}" for a in worst[-5:]]
    return (ERRORS if errors else WARNINGS if warnings else HEALTHY), why


def worst(codes: list[int]) -> int:
    return max(codes, key=_SEVERITY.index) if codes else NOT_RUNNING


class Watcher:
    """Watches ``run_dirs`` and tells ``notifiers`` and the hooks what happens in them."""

    def __init__(self, run_dirs: list[Path], notifiers: list[Notifier], opts: WatchOptions,
                 *, say: Say, warn: Say) -> None:  # fmt: skip
        self.opts = opts
        self.say, self.warn = say, warn
        self.wake = threading.Event()
        self.runs = [
            RunWatch(rd, self.wake, polling=opts.polling, best=opts.best) for rd in run_dirs
        ]
        self.dedup = Dedup(opts.window_s, opts.level)
        self.sender = Sender(
            notifiers, warn, retry_for_s=opts.retry_for_s, first_backoff_s=opts.first_backoff_s,
            hook_timeout_s=opts.hook_timeout_s, sent=say,
        )  # fmt: skip
        self._write_errors: dict[Path, str] = {}

    # ---- the loop

    def catch_up(self) -> None:
        now = time.time()
        for rw in self.runs:
            try:
                n = rw.catch_up(now)
            except StoreError as e:
                self.warn(f"watch state: {e}")
                n = rw.catch_up(now)
            if n:
                self.say(
                    f"{rw.run_dir}: first watch; {n} earlier notice(s) in its log not sent "
                    "(they are on the dashboard)"
                )

    def run(self, stop: threading.Event) -> None:
        """Catch up, then follow until ``stop`` is set."""
        self.catch_up()
        for rw in self.runs:
            rw.start()
            self.say(f"watching {rw.run_dir}")
        try:
            while not stop.is_set():
                self.tick(time.time())
                self.wake.wait(TICK_S)
                self.wake.clear()
        finally:
            for rw in self.runs:
                rw.stop()
            self.sender.drain(5.0)
            self.sender.stop()
            self.save()

    def tick(self, now: float) -> None:
        for rw in self.runs:
            for n in rw.poll(now):
                self.dispatch(rw, n, now)
            template = Notice("", rw.run_dir, "", LEVEL_WARNING, None, "", now)
            for n, count in self.dedup.due(rw.store, template, now):
                self._deliver(rw, settle(n, rw.state), count)
        self.save()

    def dispatch(self, rw: RunWatch, n: Notice, now: float) -> None:
        if not self.dedup.wanted(n) or not self.dedup.offer(rw.store, n, now):
            rw.store.mark(n.key)
            return
        rw.dispatched(n.key)
        self._deliver(rw, n, 0)

    def _deliver(self, rw: RunWatch, n: Notice, suppressed: int) -> None:
        title, body, payload = describe(n, rw.state, suppressed)
        end = n.kind == KIND_RUN_END or n.end_status == STATUS_CRASHED
        hooks = []
        if self.opts.on_alert and n.kind != KIND_RUN_END:  # a crash is an alert and an end
            hooks.append(("--on-alert", self.opts.on_alert))
        if self.opts.on_end and end:
            hooks.append(("--on-end", self.opts.on_end))
        self.sender.submit(Delivery(n.key, rw.store, title, body, n.level, payload, tuple(hooks)))

    def save(self) -> None:
        for rw in self.runs:
            rw.store.save()
            err = rw.store.write_error
            if err and self._write_errors.get(rw.run_dir) != err:
                self.warn(f"watch state: {clean(err)} (kept in memory)")
            self._write_errors[rw.run_dir] = err or ""

    # ---- --once

    def once(self, wait_s: float) -> tuple[int, list[str]]:
        """Read each run, deliver what is new, report: (health code, report lines)."""
        self.catch_up()
        now = time.time()
        for rw in self.runs:
            for n in rw.new_notices():
                self.dispatch(rw, n, now)
        self.sender.drain(wait_s)
        self.sender.stop()
        self.save()
        codes, lines = [], []
        for rw in self.runs:
            code, why = health(rw.state)
            s = rw.state
            step = "no steps" if s.step is None else f"step {s.step:,}"
            if s.step is not None and s.target_step:
                step += f"/{s.target_step:,}"
            lines.append(f"{clean(str(rw.run_dir), 200)}: {s.status}, {step} (health {code})")
            lines += [f"  {w}" for w in why]
            codes.append(code)
        return worst(codes), lines
