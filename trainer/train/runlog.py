"""The run's event log as the trainer writes it, and the run's storage failure.

Rank 0 opens the log; a process without one emits nothing. A write that fails is the run's
storage failure: recorded once, said once, and the run is asked to stop. ``emit`` never
raises, so a full disk ends the run cleanly with exit 6 instead of a traceback.
"""

from __future__ import annotations

import logging
from pathlib import Path

from trainer.events import schema as ev
from trainer.events.writer import EventWriteError, EventWriter
from trainer.train.errors import StorageError, storage
from trainer.train.signals import StopFlag

log = logging.getLogger("nal-train")


class EventLog:
    """``events.jsonl`` for one trainer process, and the first storage failure of the run."""

    def __init__(self, stop: StopFlag) -> None:
        self.stop = stop
        self.writer: EventWriter | None = None
        self.failure: StorageError | None = None
        self._write_failed = False

    def open(self, path: Path) -> None:
        with storage("open the event log", path):
            self.writer = EventWriter(path)

    def emit(self, event: ev.Event) -> None:
        """Append an event; a failing log is a storage failure that stops the run."""
        if self.writer is None or self._write_failed:
            return
        try:
            self.writer.write(event)
        except EventWriteError as e:
            self._write_failed = True
            self.fail(StorageError(str(e)))

    def fail(self, err: StorageError) -> None:
        """Record the run's storage failure (the first one), say it once, and stop."""
        if self.failure is None:
            self.failure = err
            log.error("storage error: %s; stopping", err)
        self.stop.request(-1)

    def end(self, step: int, status: str, reason: str, code: int) -> None:
        """Write run_end if the log still takes it (never raises)."""
        if self.writer is None or self.writer.closed:
            return
        try:
            self.writer.write(ev.RunEnd(step=step, status=status, reason=reason, exit_code=code))
        except EventWriteError:
            pass  # already reported; a torn line was cut back by the writer

    def sync(self) -> None:
        if self.writer is not None:
            self.writer.sync()

    def close(self) -> None:
        if self.writer is None:
            return
        try:
            self.writer.close()
        except OSError as e:
            if self.failure is None:
                log.warning("%s", e)
