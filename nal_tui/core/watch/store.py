"""The watcher's memory of one run dir: ``watch.json`` in it, written atomically.

It holds the keys of what was already told (a restarted watcher sends nothing twice and,
catching up from the log, misses nothing raised while it was down), the dedup windows in
progress and the last delivery failures. A run dir that does not exist yet is not created:
the memory stays in this process until the trainer makes it.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from nal_tui.core.text import clean
from trainer.rundir.layout import atomic_write_text

STATE_FILE = "watch.json"
STATE_VERSION = 1
MAX_KEYS = 4000  # more than the reducer keeps alerts (MAX_ALERTS), so none comes back
MAX_FAILURES = 20
MAX_BYTES = 1 << 20


class StoreError(Exception):
    """The state file is unreadable (it is set aside, not lost: see ``WatchStore.load``)."""


class WatchStore:
    """What was told about one run; thread-safe (the sender marks deliveries done)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / STATE_FILE
        self._lock = threading.Lock()
        self.seen: OrderedDict[str, float] = OrderedDict()
        self.windows: dict[str, dict[str, Any]] = {}  # kind -> {last_sent, pending, latest}
        self.failures: list[str] = []
        self.dirty = False
        self.write_error: str | None = None

    def load(self) -> bool:
        """Read the state file; False when there is none (a first watch). A garbled one is
        renamed to ``watch.json.bad`` (kept for a look) and raises StoreError."""
        try:
            if self.path.stat().st_size > MAX_BYTES:
                raise StoreError(f"{self.path} is larger than {MAX_BYTES} bytes")
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise StoreError(f"{self.path} is not a version {STATE_VERSION} watch state")
            seen = data.get("seen", [])
            windows = data.get("windows", {})
            if not isinstance(seen, list) or not isinstance(windows, dict):
                raise StoreError(f"{self.path}: 'seen' or 'windows' has the wrong type")
        except FileNotFoundError:
            return False
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, StoreError) as e:
            bad = self.path.with_name(STATE_FILE + ".bad")
            try:
                self.path.replace(bad)
            except OSError:
                pass
            raise StoreError(
                f"{clean(e if isinstance(e, StoreError) else f'{self.path}: {e}')}"
                f" (set aside as {bad.name}; starting from the log)"
            ) from None
        with self._lock:
            self.seen = OrderedDict((str(k), 0.0) for k in seen[-MAX_KEYS:])
            self.windows = {str(k): v for k, v in windows.items() if isinstance(v, dict)}
            self.failures = [str(f) for f in data.get("failures", [])][-MAX_FAILURES:]
        return True

    def has(self, key: str) -> bool:
        with self._lock:
            return key in self.seen

    def mark(self, key: str) -> None:
        with self._lock:
            if key in self.seen:
                return
            self.seen[key] = 0.0
            while len(self.seen) > MAX_KEYS:
                self.seen.popitem(last=False)
            self.dirty = True

    def window(self, kind: str) -> dict[str, Any]:
        with self._lock:
            return dict(self.windows.get(kind, {}))

    def set_window(self, kind: str, value: dict[str, Any]) -> None:
        with self._lock:
            self.windows[kind] = value
            self.dirty = True

    def failed(self, text: str) -> None:
        with self._lock:
            self.failures = (self.failures + [text])[-MAX_FAILURES:]
            self.dirty = True

    def save(self) -> None:
        """Write the state when it changed and the run dir exists (never created here)."""
        with self._lock:
            if not self.dirty or not self.path.parent.is_dir():
                return
            data = {
                "version": STATE_VERSION,
                "seen": list(self.seen),
                "windows": self.windows,
                "failures": self.failures,
            }
            self.dirty = False
        try:
            atomic_write_text(self.path, json.dumps(data, indent=0))
            self.write_error = None
        except OSError as e:
            with self._lock:
                self.dirty = True
            self.write_error = f"cannot write {self.path}: {e.strerror or e}"
