"""The trainer's log handlers: the console and ``train.log``, both immune to dead outputs.

A closed SSH session leaves stderr a hung-up terminal (every write: EIO) or a closed pipe
(EPIPE); a full disk fails ``train.log``. Python's stock handlers answer each failed record
with a "--- Logging error ---" traceback on stderr, and a failed flush of stdout/stderr at
interpreter exit turns exit code 0 into 120. These handlers write with ``os.write`` (no
Python buffer left holding half a record), report a failing ``train.log`` once, silence a
dead console for good, and :func:`quiet_exit` makes the final flush harmless.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from pathlib import Path
from typing import IO

LOGGER = "nal-train"
TRAIN_LOG = "train.log"
FORMAT = "%(asctime)s %(levelname)s %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"
# A console answering these is gone for good (hung-up tty, closed pipe, closed fd).
_DEAD = {errno.EIO, errno.EPIPE, errno.EBADF, errno.ENXIO, errno.ECONNRESET}


def _write_all(fd: int, data: bytes) -> None:
    done = 0
    while done < len(data):
        done += os.write(fd, data[done:])


class ConsoleHandler(logging.Handler):
    """stderr; on a dead console (EIO, EPIPE) it goes quiet and points fds 1, 2 at /dev/null."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        try:
            self._fd: int | None = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None  # e.g. a test's captured stream: write through it
        self.dead = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.dead:
            return
        try:
            data = self.format(record) + "\n"
            if self._fd is not None:
                _write_all(self._fd, data.encode("utf-8", "backslashreplace"))
            else:
                self.stream.write(data)
                self.stream.flush()
        except RecursionError:  # pragma: no cover - as logging.StreamHandler
            raise
        except OSError as e:
            if e.errno in _DEAD:
                self.dead = True
                silence_console()
            # Any other error (ENOSPC when stderr is a file): drop this record only.
        except (ValueError, RuntimeError):  # closed stream, reentrant write
            self.dead = True
        except Exception:  # pragma: no cover - a formatting bug: logging's own report
            self.handleError(record)


class LogFileHandler(logging.Handler):
    """Appends to ``train.log``; a failed write is cut back and reported once, not per record."""

    def __init__(self, path: str | os.PathLike[str], report: logging.Handler | None) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        self._report = report
        self.failed: str | None = None
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
        except Exception:  # pragma: no cover - a formatting bug
            self.handleError(record)
            return
        try:
            start = os.fstat(self._fd).st_size
            try:
                _write_all(self._fd, data)
            except OSError:
                try:
                    os.ftruncate(self._fd, start)  # no half line left for readers
                except OSError:
                    pass
                raise
        except OSError as e:
            self.dropped += 1
            if self.failed is None:
                self.failed = e.strerror or str(e)
                self._tell(
                    f"cannot write {self.path}: {self.failed}; its log lines are "
                    f"dropped until writes succeed again"
                )
            return
        if self.failed is not None:
            self.failed = None
            note = f"{self.dropped} log line(s) were dropped while {self.path} failed"
            self.dropped = 0
            self.emit(
                logging.makeLogRecord(
                    {
                        "msg": note,
                        "levelno": logging.WARNING,
                        "levelname": "WARNING",
                        "name": LOGGER,
                    }
                )
            )

    def _tell(self, text: str) -> None:
        if self._report is not None:
            rec = logging.makeLogRecord(
                {"msg": text, "levelno": logging.ERROR, "levelname": "ERROR", "name": LOGGER}
            )
            self._report.handle(rec)

    def close(self) -> None:
        try:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        finally:
            super().close()


def setup_logging(run_dir: Path | None, rank: int = 0) -> logging.Logger:
    """Console logging, plus train.log in the run dir unless stderr already goes there."""
    fmt = logging.Formatter(FORMAT, DATEFMT)
    if rank:
        fmt = logging.Formatter(f"%(asctime)s %(levelname)s [rank {rank}] %(message)s", DATEFMT)
    root = logging.getLogger(LOGGER)
    # Under torchrun only rank 0 narrates; other ranks speak up for warnings and errors.
    root.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    console = ConsoleHandler()
    console.setFormatter(fmt)
    root.addHandler(console)
    if run_dir is None:
        return root
    log_path = run_dir / TRAIN_LOG
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        same = log_path.exists() and os.path.samestat(
            os.fstat(sys.stderr.fileno()), os.stat(log_path)
        )
    except (OSError, ValueError, AttributeError):
        same = False
    if not same:
        try:
            fh = LogFileHandler(log_path, console)
        except OSError as e:
            root.error("cannot open %s: %s; logging to the console only", log_path, e.strerror)
        else:
            fh.setFormatter(fmt)
            root.addHandler(fh)
    return root


def silence_console() -> None:
    """Point stdout and stderr at /dev/null (their terminal or pipe is gone)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:  # pragma: no cover
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            try:
                os.dup2(null, stream.fileno())
            except (AttributeError, OSError, ValueError):
                pass
    finally:
        os.close(null)


def quiet_exit() -> None:
    """Flush stdout/stderr now; if their terminal or pipe is gone, silence them instead.

    Python flushes both at exit and turns a failure into exit code 120 (with a message on
    the dead stream): the run's own exit code must survive a closed terminal.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            silence_console()
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
