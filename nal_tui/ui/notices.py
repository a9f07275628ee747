"""Toasts: new alerts as they arrive (and the bell), and dismissing toasts that a status
change made obsolete. Mixed into the app."""

from __future__ import annotations

import time

from nal_tui.core.reducer.detectors import AlertLog
from nal_tui.core.text import clean

ALERT_TOASTS_PER_BATCH = 3
TOAST_FRESH_S = 1.5  # a status change dismisses toasts older than this
_SEVERITY = {"error": "error", "warning": "warning"}


class NoticesMixin:
    """``toast`` for every message of the app; alerts toast once, when they are new."""

    def init_notices(self) -> None:
        self._alerts_seen = 0
        self._status = ""
        self._last_toast = 0.0

    def toast(self, message: str, title: str = "", severity: str = "information", timeout=8.0):
        self._last_toast = time.monotonic()
        self.notify(clean(message, 600, multiline=True), title=clean(title, 80),  # type: ignore[attr-defined]
                    severity=severity, timeout=timeout, markup=False)  # fmt: skip

    def alerts_seen(self, alerts: AlertLog) -> None:
        """Every alert so far is old news (a run just opened: no toasts for its history)."""
        self._alerts_seen = alerts.total

    def announce_alerts(self, alerts: AlertLog) -> None:
        total = alerts.total
        new, self._alerts_seen = total - self._alerts_seen, total
        if new <= 0:
            return
        fresh = alerts.recent(min(new, ALERT_TOASTS_PER_BATCH))
        for a in fresh:
            step = f" at step {a.step:,}" if a.step is not None else ""
            self.toast(a.message, f"{a.kind}{step}", _SEVERITY.get(a.level, "information"))
        if self.bell_on and fresh:  # type: ignore[attr-defined]
            self.bell()  # type: ignore[attr-defined]

    def status_changed(self, status: str) -> None:
        """Toasts about the old status no longer apply (fresh ones stay to be read)."""
        if status != self._status:
            if self._status and time.monotonic() - self._last_toast > TOAST_FRESH_S:
                self.clear_notifications()  # type: ignore[attr-defined]
            self._status = status
