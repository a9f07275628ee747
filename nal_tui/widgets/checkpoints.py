"""Checkpoints table (step, time, size, verified) and the milestones list."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from nal_tui.widgets.base import TextPanel
from nal_tui.widgets.header import fmt_duration
from nal_tui.widgets.system import fmt_bytes
from trainer import rundir

DELETED = "deleted (retention)"


def verified_cell(ok: bool | None, reason: str = "") -> Text:
    """✔ verified, ✘ failed (with why), … still hashing / not checked."""
    if ok is None:
        return Text("… checking", style="dim")
    if ok:
        return Text("✔ sha256 ok", style="green")
    if reason == DELETED:
        return Text(f"– {reason}", style="dim")
    return Text(f"✘ {short_reason(reason)}", style="bold red")


def short_reason(reason: str) -> str:
    """A verification failure without the leading file path (the row already names it)."""
    if reason.startswith(("/", ".")) and ": " in reason:
        reason = reason.split(": ", 1)[1]
    return reason or "failed"


def _clock(t: float | None) -> str:
    if not t:
        return "--"
    return time.strftime("%m-%d %H:%M:%S", time.localtime(t))


def _step_cell(r: Any) -> Text:
    step = Text(f"{r.step:,}", style="bold" if r.milestone else "")
    if r.milestone:
        step.append(" ★", style="yellow")
    return step


class CheckpointTable(DataTable):
    """Rows keyed by checkpoint path; Enter on a row asks the app to resume from it."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._sig: tuple[Any, ...] | None = None
        self._keys: list[str] = []

    def on_mount(self) -> None:
        # Fixed widths: auto-width columns only grow when rows are added, so a verification
        # result that arrives later ("✘ sha256 mismatch ...") could be left cut to the width
        # of "… checking".
        self.add_column("step", key="step", width=8)
        self.add_column("saved", key="saved", width=14)
        self.add_column("size", key="size", width=9)
        self.add_column("verified", key="verified", width=22)

    def show(self, rows: Sequence[Any], verified: Mapping[str, tuple[bool, str]]) -> None:
        """Rebuild only when the rows or their verification changed; keep the cursor."""
        # A resume re-saves checkpoints at the same path; the newest event describes the file.
        rows = sorted({r.path: r for r in rows}.values(), key=lambda r: r.step)
        sig = tuple((r.step, r.path, r.bytes, verified.get(str(r.path))) for r in rows)
        if sig == self._sig:
            return
        self._sig = sig
        cells = [
            (
                str(r.path),
                _step_cell(r),
                _clock(r.t),
                fmt_bytes(r.bytes),
                verified_cell(*verified.get(str(r.path), (None, ""))),
            )
            for r in reversed(rows)  # newest first: that is the one people resume from
        ]
        if [c[0] for c in cells] == self._keys:
            # Same rows in the same order (typically a verification result): update in
            # place, which keeps the cursor and avoids a rebuild.
            for key, *values in cells:
                for col, value in zip(("step", "saved", "size", "verified"), values, strict=True):
                    self.update_cell(key, col, value)
            return
        keep = self.selected_path()
        self.clear()
        for key, *values in cells:
            self.add_row(*values, key=key)
        self._keys = [c[0] for c in cells]
        if keep is not None:
            try:
                self.move_cursor(row=self.get_row_index(keep), animate=False)
            except Exception:  # noqa: BLE001 - the selected checkpoint was pruned
                pass

    def selected_path(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - cursor outside the table
            return None


def milestones_text(milestones: Sequence[Any], now: float, eta: Any = None) -> Text:
    """Reached milestones with their time; the next one with its ETA when known."""
    t = Text()
    if not milestones:
        return Text("no milestones configured", style="dim")
    shown_next = False
    for m in milestones:
        if m.t is not None:
            t.append("● ", style="green")
            t.append(f"{m.step:>10,}", style="bold")
            t.append(f"  {_clock(m.t)}\n")
        elif not shown_next:
            shown_next = True
            t.append("○ ", style="yellow")
            t.append(f"{m.step:>10,}", style="bold")
            t.append(f"  next{'' if eta is None else ' in ' + fmt_duration(eta)}\n", style="yellow")
    pending = sum(1 for m in milestones if m.t is None) - (1 if shown_next else 0)
    if pending > 0:
        t.append(f"○ … {pending} more to the target", style="dim")
    return t


class MilestonesPanel(TextPanel):
    def show(self, state: Any, now: float) -> None:
        self.set_text(
            milestones_text(
                state.milestones,
                now,
                state.next_milestone_eta_s if hasattr(state, "next_milestone_eta_s") else None,
            )
        )


def resolve_checkpoint(path: str, run_dir: Path) -> Path:
    """Where a checkpoint event's path lies: absolute, relative to the run or to cwd."""
    p = Path(path)
    if p.is_absolute():
        return p
    for cand in (run_dir / p, run_dir / rundir.CHECKPOINTS_DIR / p.name, p):
        if cand.exists():
            return cand
    return run_dir / rundir.CHECKPOINTS_DIR / p.name


class CheckpointVerifier:
    """Hashes checkpoints one at a time in its own thread (never two big reads at once).

    Results are cached by (path, size, mtime), so re-checking an unchanged file is a stat.
    ``on_result(row_path, ok, reason)`` is called from the verifier thread.
    """

    def __init__(self, on_result: Callable[[str, bool, str], None]) -> None:
        self.on_result = on_result
        self._q: queue.Queue[tuple[str, Path] | None] = queue.Queue()
        self._cache: dict[tuple[str, int, int], tuple[bool, str]] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="nal-tui-verify", daemon=True)
        self._started = False

    def submit(self, row_path: str, resolved: Path) -> None:
        with self._lock:
            if row_path in self._pending:
                return
            self._pending.add(row_path)
        if not self._started:
            self._started = True
            self._thread.start()
        self._q.put((row_path, resolved))

    def stop(self) -> None:
        self._q.put(None)

    def check(self, resolved: Path) -> tuple[bool, str]:
        """Verify one file now (cached); used by the thread and by tests."""
        try:
            st = resolved.stat()
        except FileNotFoundError:
            return False, DELETED
        except OSError as e:
            return False, f"cannot stat ({e.strerror or e})"
        key = (str(resolved), st.st_size, st.st_mtime_ns)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        try:
            info = rundir.checkpoint_info(resolved)
            res = rundir.verify_checkpoint(info)
        except rundir.CheckpointError as e:
            res = (False, str(e))
        self._cache[key] = res
        return res

    def _loop(self) -> None:
        while (item := self._q.get()) is not None:
            row_path, resolved = item
            try:
                ok, why = self.check(resolved)
            except Exception as e:  # noqa: BLE001 - report, keep verifying the others
                ok, why = False, f"verify error: {e}"
            with self._lock:
                self._pending.discard(row_path)
            self.on_result(row_path, ok, why)
