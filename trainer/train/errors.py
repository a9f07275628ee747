"""The trainer's failures: a user-facing message and the exit code to leave with."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from trainer.events import schema as ev
from trainer.events.writer import EventWriteError


class TrainerError(RuntimeError):
    """A failure with a user-facing message and the exit code to leave with."""

    def __init__(self, message: str, exit_code: int = ev.EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class StorageError(TrainerError):
    """A write to the run directory failed (disk full, I/O error): exit 6."""

    def __init__(self, message: str, during_save: bool = False) -> None:
        super().__init__(message, ev.EXIT_STORAGE)
        self.during_save = during_save


@contextlib.contextmanager
def storage(op: str, path: str | os.PathLike[str], during_save: bool = False) -> Iterator[None]:
    """Turn an OSError while writing ``path`` into one StorageError line naming both."""
    try:
        yield
    except EventWriteError as e:
        raise StorageError(str(e), during_save) from None
    except OSError as e:
        raise StorageError(f"cannot {op} {path}: {e.strerror or e}", during_save) from None
