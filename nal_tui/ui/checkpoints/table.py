"""Checkpoints table (step, verified, size, saved: what is on disk) and the milestones list.

The live branch comes first (newest first), then the checkpoints of abandoned branches
(dimmed, tagged "abandoned"); the row ``r`` resumes from is tagged "latest", the best
checkpoints of the live branch "best"."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable

from nal_tui.core.reducer.views import CheckpointRow, MilestonesView
from nal_tui.core.text import fmt_duration
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fit import shorten
from nal_tui.ui.widgets.fmt import fmt_bytes, fmt_clock

PAD = 1  # DataTable's cell padding, each side
REASON_LONG, REASON_SHORT = 30, 20  # cells of a failed check's reason in the table


def row_tags(r: CheckpointRow) -> list[str]:
    return [
        t for t, on in (("latest", r.latest), ("best", r.best), ("abandoned", r.abandoned)) if on
    ]


def verified_cell(r: CheckpointRow, short: bool = False, limit: int | None = None) -> Text:
    """✔ verified, ✘ failed (with why, shortened to ``limit`` cells), … still hashing; then
    the row's tags (latest, best, abandoned)."""
    tags = row_tags(r)
    sep = " " if short else " · "
    tail = "".join(sep + t for t in tags)
    if r.verified is None:
        return Text("… checking" + tail, style="dim")
    if r.verified:
        t = Text("✔ ok" if short else "✔ sha256 ok", style="dim green" if r.abandoned else "green")
        for tag in tags:
            style = {"latest": "bold cyan", "best": "bold magenta"}.get(tag, "dim")
            t.append(sep + tag, style=style)
        return t
    why = f"✘ {r.reason}"
    why = why if limit is None else shorten(why, max(4, limit - len(tail)))
    t = Text(why, style="bold red")
    if tail:
        t.append(tail, style="dim")
    return t


def _step_cell(r: CheckpointRow) -> Text:
    step = Text(f"{r.step:,}", style="dim" if r.abandoned else ("bold" if r.milestone else ""))
    if r.milestone:
        step.append(" ★", style="yellow")
    return step


def saved_cell(t: float | None, now: float | None, fmt: str) -> str:
    """When a checkpoint was saved: ``full``, ``medium`` or ``short`` (a time today, else a
    date)."""
    if not t or t > 1e11:
        return "--"
    lt = time.localtime(t)
    if fmt == "full":
        return time.strftime("%m-%d %H:%M:%S", lt)
    if fmt == "medium":
        return time.strftime("%m-%d %H:%M", lt)
    today = now is not None and time.localtime(now)[:3] == lt[:3]
    return time.strftime("%H:%M" if today else "%m-%d", lt)


@dataclass(frozen=True)
class Column:
    key: str
    width: int


# Plans from the most detailed to the leanest: the first that fits the table is used, so
# every column shown is whole (no horizontal scrolling, nothing cut mid-word).
_PLANS = (
    (("step", None), ("verified", "long"), ("size", None), ("saved", "full")),
    (("step", None), ("verified", "short"), ("size", None), ("saved", "full")),
    (("step", None), ("verified", "short"), ("size", None), ("saved", "medium")),
    (("step", None), ("verified", "short"), ("size", None), ("saved", "short")),
    (("step", None), ("verified", "short"), ("saved", "short")),
    (("step", None), ("verified", "short")),
)


def _cell(key: str, fmt: str | None, r: CheckpointRow, now: float | None) -> Text:
    if key == "step":
        return _step_cell(r)
    if key == "verified":
        short = fmt == "short"
        return verified_cell(r, short, limit=REASON_SHORT if short else REASON_LONG)
    dim = "dim" if r.abandoned else ""
    if key == "size":
        return Text(fmt_bytes(r.bytes), style=dim)
    return Text(saved_cell(r.t, now, fmt or "full"), style=dim)


def plan_table(
    rows: Sequence[CheckpointRow], width: int, now: float | None
) -> tuple[tuple[Column, ...], list[tuple[str, tuple[Text, ...]]]]:
    """The columns (and their cells) that fit ``width`` cells, by the first plan that fits.

    When even the leanest plan is too wide, the verified cells are shortened at a space.
    """
    for plan in _PLANS:
        cells = [(r.path, tuple(_cell(k, f, r, now) for k, f in plan)) for r in rows]
        cols = tuple(
            Column(k, max([len(k)] + [c[i].cell_len for _, c in cells]))
            for i, (k, _) in enumerate(plan)
        )
        if sum(c.width + 2 * PAD for c in cols) <= width:
            return cols, cells
    step_w = cols[0].width + 2 * PAD
    room = max(len("verified"), width - step_w - 2 * PAD)
    cells = [(p, (c[0], Text(shorten(c[1].plain, room), style=c[1].style))) for p, c in cells]
    return (cols[0], Column("verified", room)), cells


class CheckpointTable(DataTable):
    """Rows keyed by checkpoint path, newest first; Enter asks the app to resume from one.

    The columns follow the table's width (``plan_table``) and are re-planned on resize.
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cell_padding=PAD)
        self._rows: list[CheckpointRow] = []
        self._now: float | None = None
        self._keys: list[str] = []
        self._cols: tuple[Column, ...] = ()
        self._shown: object = None

    def show(self, rows: Sequence[CheckpointRow], now: float | None = None) -> None:
        self._rows, self._now = list(rows), now
        self._redraw()

    def on_resize(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        width = self.content_size.width
        if width <= 0:
            return
        if len(self._rows) >= self.content_size.height:  # room for the scrollbar
            width -= self.styles.scrollbar_size_vertical
        cols, cells = plan_table(self._rows, width, self._now)
        if (cols, cells) == self._shown:
            return
        self._shown = (cols, cells)
        keys = [k for k, _ in cells]
        if cols == self._cols and keys == self._keys:
            for key, values in cells:  # same rows: update in place (keeps the cursor)
                for col, value in zip(cols, values, strict=True):
                    self.update_cell(key, col.key, value)
            return
        keep = self.selected_path()
        self.clear(columns=cols != self._cols)
        if cols != self._cols:
            for c in cols:
                self.add_column(c.key, key=c.key, width=c.width)
            self._cols = cols
        for key, values in cells:
            self.add_row(*values, key=key)
        self._keys = keys
        if keep in keys:
            self.move_cursor(row=keys.index(keep), animate=False)

    def selected_path(self) -> str | None:
        if not self._keys or not 0 <= self.cursor_row < len(self._keys):
            return None
        return self._keys[self.cursor_row]

    def row_for(self, path: str) -> CheckpointRow | None:
        return next((r for r in self._rows if r.path == path), None)

    @property
    def headers(self) -> list[str]:
        """The column headers shown now (whole words, see ``plan_table``)."""
        return [c.key for c in self._cols]


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
