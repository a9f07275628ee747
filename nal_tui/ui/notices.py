"""Toasts: new alerts as they arrive (and the bell), and dismissing toasts that a status
change made obsolete."""

from __future__ import annotations

import time

from nal_tui.core.reducer.detectors import AlertLog
from nal_tui.core.text import clean
from nal_tui.ui.host import Toaster

ALERT_TOASTS_PER_BATCH = 3
TOAST_FRESH_S = 1.5  # a status change dismisses toasts older than this
_SEVERITY = {"error": "error", "warning": "warning"}


class Notices:
    """``toast`` for every message of the app; alerts toast once, when they are new."""

    def __init__(self, app: Toaster) -> None:
        self._app = app
        self.alerts_total = 0
        """Alerts already announced (or old news)."""
        self.status = ""
        """The run status the toasts on screen are about."""
        self.last_toast = 0.0
        """When the newest toast went up (monotonic)."""

    def toast(self, message: str, title: str = "", severity: str = "information", timeout=8.0):
        self.last_toast = time.monotonic()
        self._app.notify(clean(message, 600, multiline=True), title=clean(title, 80),
                         severity=severity, timeout=timeout, markup=False)  # fmt: skip

    def alerts_seen(self, alerts: AlertLog) -> None:
        """Every alert so far is old news (a run just opened: no toasts for its history)."""
        self.alerts_total = alerts.total

    def announce_alerts(self, alerts: AlertLog, bell: bool) -> None:
        """A toast for each new alert (the newest few), and the bell when ``bell``."""
        total = alerts.total
        new, self.alerts_total = total - self.alerts_total, total
        if new <= 0:
            return
        fresh = alerts.recent(min(new, ALERT_TOASTS_PER_BATCH))
        for a in fresh:
            step = f" at step {a.step:,}" if a.step is not None else ""
            self.toast(a.message, f"{a.kind}{step}", _SEVERITY.get(a.level, "information"))
        if bell and fresh:
            self._app.bell()

    def status_changed(self, status: str) -> None:
        """Toasts about the old status no longer apply (fresh ones stay to be read)."""
        if status != self.status:
            if self.status and time.monotonic() - self.last_toast > TOAST_FRESH_S:
                self._app.clear_notifications()
            self.status = status
