"""Checkpoints table (step, time, size, verified: what is on disk) and the milestones list."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from nal_tui.core.views import CheckpointRow, MilestonesView
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fmt import fmt_bytes, fmt_clock, fmt_duration

COLUMNS = (("step", 10), ("verified", 16), ("size", 9), ("saved", 14))


def verified_cell(r: CheckpointRow) -> Text:
    """✔ verified, ✘ failed (with why), … still hashing."""
    if r.verified is None:
        return Text("… checking", style="dim")
    if r.verified:
        return Text("✔ sha256 ok" + (" (branch)" if r.abandoned else ""), style="green")
    return Text(f"✘ {r.reason}", style="bold red")


def _step_cell(r: CheckpointRow) -> Text:
    step = Text(f"{r.step:,}", style="bold" if r.milestone else ("dim" if r.abandoned else ""))
    if r.milestone:
        step.append(" ★", style="yellow")
    return step


class CheckpointTable(DataTable):
    """Rows keyed by checkpoint path, newest first; Enter asks the app to resume from one."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._rows: list[CheckpointRow] | None = None
        self._keys: list[str] = []

    def on_mount(self) -> None:
        # Fixed widths: a verification result that arrives later must not be cut to the
        # width of "… checking".
        for name, width in COLUMNS:
            self.add_column(name, key=name, width=width)

    def show(self, rows: Sequence[CheckpointRow]) -> None:
        rows = list(rows)
        if rows == self._rows:
            return
        self._rows = rows
        cells = [
            (r.path, (_step_cell(r), verified_cell(r), fmt_bytes(r.bytes), fmt_clock(r.t)))
            for r in rows
        ]
        if [c[0] for c in cells] == self._keys:
            for key, values in cells:  # same rows: update in place (keeps the cursor)
                for (col, _), value in zip(COLUMNS, values, strict=True):
                    self.update_cell(key, col, value)
            return
        keep = self.selected_path()
        self.clear()
        for key, values in cells:
            self.add_row(*values, key=key)
        self._keys = [c[0] for c in cells]
        if keep in self._keys:
            self.move_cursor(row=self._keys.index(keep), animate=False)

    def selected_path(self) -> str | None:
        if not self._keys or not 0 <= self.cursor_row < len(self._keys):
            return None
        return self._keys[self.cursor_row]

    def row_for(self, path: str) -> CheckpointRow | None:
        return next((r for r in self._rows or [] if r.path == path), None)


def milestones_text(v: MilestonesView) -> Text:
    if not v.rows:
        return Text("no milestones configured", style="dim")
    t = Text()
    for m in v.rows:
        if m.t is not None:
            t.append("● ", style="green")
            t.append(f"{m.step:>10,}", style="bold")
            t.append(f"  {fmt_clock(m.t)}\n")
        else:
            t.append("○ ", style="yellow")
            t.append(f"{m.step:>10,}", style="bold")
            eta = "" if v.next_eta_s is None else " in " + fmt_duration(v.next_eta_s)
            t.append(f"  next{eta}\n", style="yellow")
    if v.pending > 0:
        t.append(f"○ … {v.pending:,} more to the target", style="dim")
    return t


class MilestonesPanel(TextPanel):
    def show(self, v: MilestonesView) -> None:
        self.set_text(milestones_text(v))
