"""Delivering notices off the watching thread: one worker for the notifiers (retried with
backoff for a bounded time), one for the hooks (so a hung hook delays no notification).

A notice's key is marked told in its run's store when every part of its delivery is done
(delivered, or given up and reported): a watcher killed before that sends it again after
a restart rather than never.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nal_tui.core.watch.hooks import DEFAULT_HOOK_TIMEOUT_S, run_hook
from nal_tui.core.watch.notifiers import Notifier, SendError
from nal_tui.core.watch.store import WatchStore

DEFAULT_RETRY_S = 120.0
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0

Report = Callable[[str], None]


@dataclass
class Delivery:
    key: str
    store: WatchStore
    title: str
    body: str
    level: str
    payload: dict[str, Any]
    hooks: tuple[tuple[str, str], ...] = ()  # (name, command): --on-alert, --on-end
    _parts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def part_done(self) -> None:
        with self._lock:
            self._parts -= 1
            done = self._parts <= 0
        if done:
            self.store.mark(self.key)


class Sender:
    """Two worker threads; ``submit`` never blocks, ``drain`` waits for both queues."""

    def __init__(
        self,
        notifiers: list[Notifier],
        report: Report,
        *,
        retry_for_s: float = DEFAULT_RETRY_S,
        first_backoff_s: float = FIRST_BACKOFF_S,
        hook_timeout_s: float = DEFAULT_HOOK_TIMEOUT_S,
        sent: Report | None = None,
    ) -> None:
        self.notifiers = notifiers
        self.report = report
        self.sent = sent
        self.retry_for_s = retry_for_s
        self.first_backoff_s = first_backoff_s
        self.hook_timeout_s = hook_timeout_s
        self._notes: queue.Queue[Delivery | None] = queue.Queue()
        self._hooks: queue.Queue[Delivery | None] = queue.Queue()
        self._stop = threading.Event()
        self._failed_hooks: set[str] = set()
        self.hook_failures = 0
        self.delivered = 0
        self.given_up = 0
        self._threads = [
            threading.Thread(target=self._loop, args=(self._notes, self._notify), daemon=True,
                             name="nal-watch-notify"),
            threading.Thread(target=self._loop, args=(self._hooks, self._hook), daemon=True,
                             name="nal-watch-hooks"),
        ]  # fmt: skip
        for t in self._threads:
            t.start()

    def submit(self, d: Delivery) -> None:
        d._parts = (1 if self.notifiers else 0) + (1 if d.hooks else 0)
        if d._parts == 0:
            d.store.mark(d.key)
            return
        if self.notifiers:
            self._notes.put(d)
        if d.hooks:
            self._hooks.put(d)

    def drain(self, timeout_s: float) -> bool:
        """Wait until everything submitted is done; False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        for q in (self._notes, self._hooks):
            while q.unfinished_tasks:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        return True

    def stop(self) -> None:
        self._stop.set()
        self._notes.put(None)
        self._hooks.put(None)
        for t in self._threads:
            t.join(timeout=5)

    # ---- workers

    def _loop(self, q: queue.Queue, handle: Callable[[Delivery], None]) -> None:
        while True:
            d = q.get()
            try:
                if d is None:
                    return
                handle(d)
                d.part_done()
            finally:
                q.task_done()

    def _notify(self, d: Delivery) -> None:
        for n in self.notifiers:
            if self._send_with_retry(n, d):
                self.delivered += 1
                if self.sent is not None:
                    self.sent(f"sent to {n.name}: {d.title}")
            else:
                self.given_up += 1
                msg = (
                    f"notification to {n.name} failed for {self.retry_for_s:g} s, given up: "
                    f"{d.title}"
                )
                d.store.failed(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}")
                self.report(msg)

    def _send_with_retry(self, n: Notifier, d: Delivery) -> bool:
        deadline = time.monotonic() + self.retry_for_s
        wait = self.first_backoff_s
        while True:
            try:
                n.send(d.title, d.body, d.level)
                return True
            except SendError:
                pass
            except Exception as e:  # a notifier's own bug or a network library's error
                d.store.failed(f"{n.name}: {type(e).__name__}")
            if self._stop.is_set() or time.monotonic() + wait > deadline:
                return False
            self._stop.wait(wait)
            wait = min(wait * 2, MAX_BACKOFF_S)

    def _hook(self, d: Delivery) -> None:
        for name, cmd in d.hooks:
            res = run_hook(cmd, d.payload, self.hook_timeout_s)
            if res.ok:
                continue
            self.hook_failures += 1
            msg = f"hook {name} failed: {res.message}"
            d.store.failed(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}")
            if name not in self._failed_hooks:  # once per hook: no flood from a broken one
                self._failed_hooks.add(name)
                self.report(msg + " (later failures of this hook go to watch.json only)")
