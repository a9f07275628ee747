"""Messages that background threads post to the app (``post_message`` is thread-safe).

High-rate sources coalesce: the log follower posts one ``LogChanged`` while earlier
batches are still waiting (the app drains them all at once), and a newer system sample
or checkpoint table replaces an older one still in the queue.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message

from nal_tui.core.control.proc import PidState
from nal_tui.core.feed.follow import FollowStats
from nal_tui.core.reducer.views import CheckpointRow, SystemView


class LogFeed:
    """Batches from the follower thread, drained by the UI thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[list[dict[str, Any]], FollowStats]] = []

    def put(self, records: list[dict[str, Any]], stats: FollowStats) -> bool:
        """Queue a batch; True when the queue was empty (post a LogChanged then)."""
        with self._lock:
            self._items.append((records, stats))
            return len(self._items) == 1

    def drain(self) -> list[tuple[list[dict[str, Any]], FollowStats]]:
        with self._lock:
            items, self._items = self._items, []
        return items


@dataclass
class LogChanged(Message):
    """New batches wait in the app's LogFeed for ``run_dir``."""

    run_dir: Path


@dataclass
class HistoryPreview(Message):
    """The open worker read the log's end into ``state`` (the history follows)."""

    run_dir: Path
    state: Any


@dataclass
class HistoryLoaded(Message):
    """The open worker read the whole log into ``state``; ``follower`` goes on from there."""

    run_dir: Path
    state: Any
    follower: Any


@dataclass
class SystemSampled(Message):
    view: SystemView
    pid: PidState
    run_dir: Path | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SystemSampled)


@dataclass
class CheckpointsListed(Message):
    rows: list[CheckpointRow]
    run_dir: Path

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CheckpointsListed)
