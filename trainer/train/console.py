"""The foreground trainer's console: a live progress line on a terminal, log lines otherwise.

Fed by the records the trainer writes (an ``EventWriter`` observer), so it shows exactly
what the event log says. On a terminal (stderr is a TTY) one line is redrawn in place:
step/target, G/D/recon losses, steps/s and ETA; log messages print above it. Elsewhere
(train.log, a pipe, a batch job) a plain progress line is logged every ``every_s``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from typing import IO, Any

from trainer.events import schema as ev
from trainer.events.units import fmt_duration
from trainer.events.writer import add_observer
from trainer.train import logsetup

LOG_EVERY_S = 30.0
REDRAW_S = 0.2


def _num(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f"{f:.4g}"


class Console:
    """Turns records into a progress line (terminal) or periodic log lines (elsewhere)."""

    def __init__(self, stream: IO[str], tty: bool, every_s: float = LOG_EVERY_S) -> None:
        self.stream, self.tty, self.every_s = stream, tty, every_s
        self.target: int | None = None
        self.times: deque[tuple[int, float]] = deque(maxlen=50)
        self.shown = False
        self.parts: list[str] = []
        self._last = 0.0
        self.log = logging.getLogger("nal-train")

    def line(self, rec: dict[str, Any]) -> str:
        step = rec["step"]
        self.times.append((step, time.monotonic()))
        rate = None
        if len(self.times) > 1:
            (s0, t0), (s1, t1) = self.times[0], self.times[-1]
            if t1 > t0 and s1 > s0:
                rate = (s1 - s0) / (t1 - t0)
        target = f"/{self.target:,}" if self.target else ""
        pct = f" {100 * step / self.target:4.1f}%" if self.target else ""
        eta = fmt_duration((self.target - step) / rate) if rate and self.target else "--"
        # Most important first; a narrow terminal drops whole parts from the end of this
        # list (never cuts one): recon, then D, then G.
        self.parts = [
            f"step {step:,}{target}{pct}", f"{rate or 0:.2f} steps/s", f"ETA {eta}",
            f"G {_num(rec['g'])}", f"D {_num(rec['d'])}", f"recon {_num(rec['stft'])}",
        ]  # fmt: skip
        return self.fit(10**6)

    def fit(self, width: int) -> str:
        """The last line's parts that fit ``width`` cells, in display order."""
        keep = list(self.parts)
        while len(keep) > 1 and len(_join(keep)) > width:
            keep.pop()
        return _join(keep)[:width]

    def __call__(self, rec: dict[str, Any]) -> None:
        name = rec.get(ev.K_EVENT)
        if name == ev.RunStart.EVENT:
            self.target = rec.get("target_step") or None
            self.times.clear()
            return
        if name == ev.RunEnd.EVENT:
            self.clear()
            return
        if name != ev.Step.EVENT:
            return
        now = time.monotonic()
        text = self.line(rec)
        if self.tty:
            if now - self._last >= REDRAW_S or rec["step"] == self.target:
                self._last = now
                self.redraw()
        elif now - self._last >= self.every_s or rec["step"] == self.target:
            self._last = now
            self.log.info("%s", text)

    def redraw(self) -> None:
        """Draw the last progress line again, in place (after a log message, say)."""
        if self.tty and self.parts:
            self.shown = self._write("\r\x1b[2K" + self.fit(_width(self.stream) - 1))

    def clear(self) -> None:
        """Erase the progress line (before a log message, or at the end)."""
        if self.tty and self.shown:
            self._write("\r\x1b[2K")
            self.shown = False

    def _write(self, text: str) -> bool:
        """Write to the terminal; a terminal that has gone away (SIGHUP, a closed SSH
        session) silences the console for good instead of failing the step that logged."""
        try:
            self.stream.write(text)
            self.stream.flush()
            return True
        except (OSError, ValueError):
            self.tty = False
            logsetup.silence_console()
            return False


def _join(parts: list[str]) -> str:
    head, *rest = parts
    return "  ".join([head, *(rest[2:] + rest[:2])]) if rest else head


def _width(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 100


class _ClearingHandler(logging.Handler):
    """Wraps a console log handler: the progress line is erased before each message."""

    def __init__(self, inner: logging.Handler, console: Console) -> None:
        super().__init__(inner.level)
        self.inner, self.console = inner, console

    def emit(self, record: logging.LogRecord) -> None:
        shown = self.console.shown
        self.console.clear()
        self.inner.emit(record)
        if shown:  # the line comes back under the message at once, not at the next step
            self.console.redraw()


def attach(rank: int = 0, stream: IO[str] | None = None) -> Console | None:
    """Show progress for this process's EventWriter records (rank 0 only)."""
    if rank != 0:
        return None
    stream = stream if stream is not None else sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    con = Console(stream, tty)
    if tty:
        root = logging.getLogger("nal-train")
        for i, h in enumerate(root.handlers):
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is stream:
                root.handlers[i] = _ClearingHandler(h, con)
    add_observer(con)
    return con
