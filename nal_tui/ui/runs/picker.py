"""Run picker: every run under the logs directory with its status; Enter opens one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from nal_tui.core.control.runs import RunInfo
from nal_tui.core.text import fmt_duration
from nal_tui.ui.run.header import STATUS_STYLES


class RunPickerScreen(ModalScreen[Path | None]):
    """Dismisses with the chosen run's path, or None on Esc."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, runs: Sequence[RunInfo], logs_dir: Path, current: Path | None) -> None:
        super().__init__()
        self.runs = list(runs)
        self.logs_dir = logs_dir
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="runs-box", classes="modal-box"):
            yield Static(f"[b]Runs under {self.logs_dir}[/b]", classes="modal-title")
            if not self.runs:
                yield Static("No runs yet. Press Esc, then [b]s[/b] to start one.")
            yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            yield Static("[dim]↑/↓ choose · Enter open · Esc cancel[/dim]")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("run", "status", "step", "target", "modified")
        now = time.time()
        for r in self.runs:
            style = STATUS_STYLES.get(r.status, "")
            name = f"▶ {r.name}" if self.current is not None and r.path == self.current else r.name
            table.add_row(
                name,
                f"[{style}]{r.status}[/]" if style else r.status,
                "-" if r.step is None else f"{r.step:,}",
                "-" if r.target_step is None else f"{r.target_step:,}",
                f"{fmt_duration(max(0.0, now - r.mtime))} ago",
                key=str(r.path),
            )
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(Path(event.row_key.value))

    def action_cancel(self) -> None:
        self.dismiss(None)
