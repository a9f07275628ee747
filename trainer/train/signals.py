"""Stop requests: SIGTERM, SIGINT and SIGHUP set a flag that the trainer checks.

Stdlib only, so ``nal-train`` installs the handlers before it imports torch: a signal that
lands during start-up (imports, corpus checks, model building) is seen at the next phase
boundary and the trainer exits cleanly instead of dying with a half-opened run directory.
SIGHUP is what a foreground trainer gets when its SSH session closes: a request to stop.

The handler never touches Python's buffered streams or the logging module (a handler that
runs in the middle of a write to the same stream raises "reentrant call"); it only writes a
short notice straight to file descriptor 2 and ignores any error from it (a hung-up
terminal answers EIO).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopRequested(Exception):
    """Raised at a start-up phase boundary once a stop was asked for."""

    def __init__(self, signum: int | None) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal_name(signum)} before training started")


def signal_name(signum: int | None) -> str:
    if signum is None or signum <= 0:
        return "another rank"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopFlag:
    """Set by SIGTERM/SIGINT/SIGHUP; the loop finishes its step, saves and exits."""

    def __init__(self, notice: bool = True) -> None:
        self.signum: int | None = None
        self.notice = notice
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}

    def install(self) -> StopFlag:
        if threading.current_thread() is not threading.main_thread():
            return self  # signal.signal only works in the main thread
        for sig in STOP_SIGNALS:
            if sig not in self._previous:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
        self._previous.clear()

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.signum is None or self.signum <= 0
        if first:
            self.signum = signum
            self._event.set()
            if self.notice:
                _notice(
                    f"received {signal_name(signum)}: finishing the current step, "
                    f"then saving and stopping"
                )

    def request(self, signum: int = -1) -> None:
        """Ask for a stop without a signal (another rank's, or a failure)."""
        if self.signum is None:
            self.signum = signum
        self._event.set()

    @property
    def set(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        """Raise StopRequested when a stop was asked for (a start-up phase boundary)."""
        if self.signum is not None:
            raise StopRequested(self.signum)

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


def _notice(text: str) -> None:
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} WARNING {text}\n".encode()
    try:
        os.write(2, line)
    except OSError:
        pass  # stderr may be a hung-up terminal or a closed pipe: nothing to tell anyone


def ignore_stop_signals() -> None:
    """Ignore further stop signals (the run is over and saved; a late one must not kill)."""
    for sig in STOP_SIGNALS:
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (ValueError, OSError):  # pragma: no cover - not the main thread
            pass
