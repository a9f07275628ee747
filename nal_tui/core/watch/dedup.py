"""One notification per alert kind per run within a window; the rest become "and N more".

The windows live in the run's ``WatchStore``, so a restarted watcher keeps them.
"""

from __future__ import annotations

import time
from dataclasses import replace

from nal_tui.core.watch.notice import (
    KIND_RUN_END,
    KIND_RUN_START,
    Notice,
    level_rank,
    step_span,
)
from nal_tui.core.watch.store import WatchStore

DEFAULT_WINDOW_S = 600.0
UNDEDUPED = (KIND_RUN_START, KIND_RUN_END)  # each happens once per session anyway


class Dedup:
    """Decides, per notice, whether it goes out now; ``due`` gives the summaries."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, min_level: str = "info") -> None:
        self.window_s = window_s
        self.min_rank = level_rank(min_level)

    def wanted(self, n: Notice) -> bool:
        return level_rank(n.level) >= self.min_rank

    def offer(self, store: WatchStore, n: Notice, now: float) -> bool:
        """True: send ``n`` now. False: it is counted in its kind's window."""
        if n.kind in UNDEDUPED or self.window_s <= 0:
            return True
        w = store.window(n.kind)
        last = w.get("last_sent")
        if isinstance(last, (int, float)) and now - last < self.window_s:
            latest = {"step": n.step, "message": n.message, "level": n.level, "t": n.t}
            first = w.get("first_step")
            if isinstance(n.step, int) and (not isinstance(first, int) or n.step < first):
                first = n.step
            store.set_window(n.kind, {**w, "pending": int(w.get("pending", 0)) + 1,
                                      "latest": latest, "first_step": first})  # fmt: skip
            return False
        store.set_window(n.kind, {"last_sent": now, "pending": 0})
        return True

    def due(self, store: WatchStore, template: Notice, now: float) -> list[tuple[Notice, int]]:
        """Summaries of the windows that closed with notices held back: (notice, count)."""
        out = []
        for kind, w in list(store.windows.items()):
            pending = int(w.get("pending", 0) or 0)
            last = w.get("last_sent")
            if not pending or not isinstance(last, (int, float)) or now - last < self.window_s:
                continue
            latest = w.get("latest") or {}
            step = latest.get("step") if isinstance(latest.get("step"), int) else None
            first = w.get("first_step") if isinstance(w.get("first_step"), int) else step
            since = time.strftime("%H:%M", time.localtime(last))
            msg = (
                f"{pending} more {kind} alert{'s' if pending > 1 else ''}"
                + (f" at {step_span(first, step)}" if step is not None else "")
                + f" since {since} (the latest: {latest.get('message', '')})"
            )
            n = replace(
                template,
                key=f"summary|{kind}|{now:.3f}",
                kind=kind,
                level=str(latest.get("level", template.level)),
                step=step,
                message=msg,
                t=now,
                extra={"summary": {"count": pending, "first_step": first, "last_step": step,
                                   "latest_t": latest.get("t")}},
            )  # fmt: skip
            store.set_window(kind, {"last_sent": now, "pending": 0})
            out.append((n, pending))
        return out
