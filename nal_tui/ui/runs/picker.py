"""Run picker: every run under the logs directory with its status; Enter opens one, Space
marks runs and ``c`` compares the marked ones (2 to 6)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from nal_tui.core.compare.limits import MAX_RUNS, MIN_RUNS
from nal_tui.core.control.runs import RunInfo
from nal_tui.core.text import clean, fmt_duration
from nal_tui.ui.run.header import STATUS_STYLES

MARK = "●"
CURRENT = "▶"
KEYS = "↑/↓ choose · Space mark · c compare marked · Enter open · Esc cancel"


@dataclass(frozen=True)
class CompareRuns:
    """The picker's answer when the marked runs are to be compared (in the table's order)."""

    paths: tuple[Path, ...]


class RunPickerScreen(ModalScreen[Path | CompareRuns | None]):
    """Dismisses with the chosen run's path, the marked runs to compare, or None on Esc."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("q", "cancel", "Cancel", show=False),  # as q backs out of every other view
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare marked"),
    ]

    def __init__(self, runs: Sequence[RunInfo], logs_dir: Path, current: Path | None) -> None:
        super().__init__()
        self.runs = list(runs)
        self.logs_dir = logs_dir
        self.current = current
        self.marked: list[Path] = []
        """The marked runs, in the order they were marked."""

    def compose(self) -> ComposeResult:
        with Vertical(id="runs-box", classes="modal-box"):
            yield Static(f"[b]Runs under {self.logs_dir}[/b]", classes="modal-title")
            if not self.runs:
                yield Static("No runs yet. Press Esc, then [b]s[/b] to start one.")
            yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="runs-note")
            yield Static(f"[dim]{KEYS}[/dim]")

    def _run_cell(self, r: RunInfo) -> str:
        mark = MARK if r.path in self.marked else " "
        cur = CURRENT if self.current is not None and r.path == self.current else " "
        return f"{mark}{cur} {r.name}"

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        self._name_col, *_ = table.add_columns("run", "status", "step", "target", "modified")
        now = time.time()
        for r in self.runs:
            style = STATUS_STYLES.get(r.status, "")
            table.add_row(
                self._run_cell(r),
                f"[{style}]{r.status}[/]" if style else r.status,
                "-" if r.step is None else f"{r.step:,}",
                "-" if r.target_step is None else f"{r.target_step:,}",
                f"{fmt_duration(max(0.0, now - r.mtime))} ago",
                key=str(r.path),
            )
        table.focus()

    def _note(self, text: str, style: str = "dim") -> None:
        self.query_one("#runs-note", Static).update(f"[{style}]{clean(text, 200)}[/]")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(Path(event.row_key.value))

    def action_mark(self) -> None:
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row is None:
            return
        r = self.runs[table.cursor_row]
        if r.path in self.marked:
            self.marked.remove(r.path)
        else:
            self.marked.append(r.path)
        table.update_cell(str(r.path), self._name_col, self._run_cell(r))
        n = len(self.marked)
        self._note(f"{n} marked" + (" · c compares them" if MIN_RUNS <= n <= MAX_RUNS else ""))
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def action_compare(self) -> None:
        n = len(self.marked)
        if not MIN_RUNS <= n <= MAX_RUNS:
            self.app.bell()
            self._note(
                f"compare takes {MIN_RUNS} to {MAX_RUNS} runs: {n} marked "
                "(Space marks the run under the cursor)",
                "bold red",
            )
            return
        order = [r.path for r in self.runs if r.path in self.marked]
        self.dismiss(CompareRuns(tuple(order)))

    def action_cancel(self) -> None:
        self.dismiss(None)
