"""The validation chart: one metric at a time, every set overlaid, against step.

Best-K checkpoints are starred under the chart, over-training spans shaded; ``←``/``→``
move a cursor over the validations and ``Enter`` opens that validation's samples.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from nal_tui.core.reducer.quality import QualityHistory, SeriesStats, overtraining_spans
from nal_tui.core.reducer.state import RunState
from nal_tui.core.vocab import ALERT_OVERTRAINING
from nal_tui.ui.quality.plot import Line, marker_row, plot_rows, y_range
from nal_tui.ui.widgets.fmt import fmt_value

SET_STYLES = ("bold cyan", "bold magenta", "bold yellow", "bold green")
LABEL_W = 9  # the y axis labels' column


def stats_text(label: str, st: SeriesStats, style: str = "bold") -> Text:
    """``label  now 0.41 @4,000  min … @…  max … @…  best … @…`` (one series)."""

    def at(v: float | None, s: int | None) -> str:
        return "-" if v is None else f"{fmt_value(v)} @{s:,}"

    t = Text(f"{label:<8}", style=style)
    for name, v, s in (("now", st.current, st.current_step), ("min", st.min, st.min_step),
                       ("max", st.max, st.max_step), ("best", st.best, st.best_step)):  # fmt: skip
        t.append(f" {name} ", style="dim")
        t.append(at(v, s), style="bold green" if name == "best" else "")
    return t


class QualityPlot(Widget):
    """Draws whatever its ``make(width, height)`` returns, at its own size."""

    DEFAULT_CSS = "QualityPlot { height: 1fr; }"

    def __init__(self, make: Callable[[int, int], list[Text]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.make = make

    def render(self) -> Text:
        w, h = self.content_size.width, self.content_size.height
        return Text("\n").join(self.make(w, h)) if w > 0 and h > 0 else Text("")


class QualityScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("g", "close", "Back", show=False),
        Binding("q", "close", "Back", show=False),
        Binding("up", "metric(-1)", "Prev metric", key_display="↑"),
        Binding("down", "metric(1)", "Next metric", key_display="↓"),
        Binding("left", "move(-1)", "Earlier", key_display="←"),
        Binding("right", "move(1)", "Later", key_display="→"),
        Binding("enter", "open", "Samples"),
    ]

    def __init__(self, state: RunState, open_samples: Callable[[int], None]) -> None:
        super().__init__()
        self.state = state
        self.open_samples = open_samples
        self.metric = 0
        self.cursor: int | None = None  # index into the first set's steps (None: the last)
        self._seen = -1

    @property
    def history(self) -> QualityHistory:
        return self.state.validation.history

    def compose(self) -> ComposeResult:
        yield Static(id="quality-head")
        yield QualityPlot(self._rows, id="quality-plot")
        yield Static(id="quality-info")
        yield Static(id="quality-keys")

    def on_mount(self) -> None:
        self.draw()
        self.set_interval(1.0, self._poll)

    def _poll(self) -> None:
        if self.history.version != self._seen:
            self.draw()

    # ---- what is shown

    def metric_name(self) -> str | None:
        names = self.history.metrics()
        return names[self.metric % len(names)] if names else None

    def lines(self) -> list[Line]:
        m = self.metric_name()
        if m is None:
            return []
        return [Line(*self.history.points(s, m), SET_STYLES[i % len(SET_STYLES)])
                for i, s in enumerate(self.history.sets(m))]  # fmt: skip

    def cursor_step(self) -> int | None:
        lines = self.lines()
        if not lines or not lines[0].steps:
            return None
        steps = lines[0].steps
        i = len(steps) - 1 if self.cursor is None else max(0, min(len(steps) - 1, self.cursor))
        return steps[i]

    def spans(self, metric: str, lines: list[Line]) -> list[tuple[int, int]]:
        alerts = [a.step for a in self.state.alerts.rows
                  if a.kind == ALERT_OVERTRAINING and a.step is not None]  # fmt: skip
        if not alerts or not lines:
            return []
        st = self.history.stats(self.history.sets(metric)[0], metric)
        return overtraining_spans(alerts, lines[0].steps, lines[0].values, st.higher_is_better)

    def _rows(self, width: int, height: int) -> list[Text]:
        m = self.metric_name()
        lines = self.lines()
        steps = [s for ln in lines for s in ln.steps]
        if m is None or not steps:
            return [Text("no validation yet: the chart fills at each validation "
                         "(log.val_every)", style="dim")]  # fmt: skip
        x0, x1 = min(steps), max(steps)
        w = max(1, width - LABEL_W)
        rows = plot_rows(lines, w, max(1, height - 2), x0, x1,
                         spans=self.spans(m, lines), cursor=self.cursor_step())  # fmt: skip
        lo, hi = y_range(lines) or (0.0, 0.0)
        out = []
        for i, r in enumerate(rows):
            label = fmt_value(hi) if i == 0 else fmt_value(lo) if i == len(rows) - 1 else ""
            out.append(Text(f"{label:>{LABEL_W - 1}} ", style="dim") + r)
        best = [s for s in self.state.checkpoints.best_steps]
        out.append(Text(f"{'best ★':>{LABEL_W - 1}} ", style="dim")
                   + marker_row(best, x0, x1, w))  # fmt: skip
        axis = f"{x0:,}"
        end = f"{x1:,}"
        out.append(Text(" " * LABEL_W + axis + " " * max(1, w - len(axis) - len(end)) + end,
                        style="dim"))  # fmt: skip
        return out

    def draw(self) -> None:
        self._seen = self.history.version
        m = self.metric_name()
        names = self.history.metrics()
        head = Text("validation chart", style="bold")
        if m is not None:
            better = "higher" if self.history.stats(self.history.sets(m)[0], m).higher_is_better \
                else "lower"  # fmt: skip
            head.append(f" · {m} ({better} is better) · metric {self.metric % len(names) + 1}"
                        f"/{len(names)}\n")  # fmt: skip
            for i, s in enumerate(self.history.sets(m)):
                head.append(f"━ {s}  ", style=SET_STYLES[i % len(SET_STYLES)])
            head.append("★ best checkpoints", style="bold magenta")
            if self.spans(m, self.lines()):
                head.append("  ")
                head.append("over-training", style="on #3a2020")
        self.query_one("#quality-head", Static).update(head)
        info = Text()
        cur = self.cursor_step()
        if m is not None and cur is not None:
            info.append(f"◆ step {cur:,}:", style="bold")
            for s in self.history.sets(m):
                steps, vals = self.history.points(s, m)
                v = dict(zip(steps, vals, strict=False)).get(cur)
                info.append(f"  {s} {fmt_value(v) if v is not None else '-'}")
            info.append("   Enter: its samples", style="dim")
            for i, s in enumerate(self.history.sets(m)):
                info.append("\n")
                info.append_text(stats_text(s, self.history.stats(s, m),
                                            SET_STYLES[i % len(SET_STYLES)]))  # fmt: skip
        self.query_one("#quality-info", Static).update(info)
        self.query_one("#quality-keys", Static).update(Text(
            "↑/↓ metric  ←/→ validation  Enter samples  Esc back", style="dim"))  # fmt: skip
        self.query_one(QualityPlot).refresh()

    # ---- keys

    def action_close(self) -> None:
        self.dismiss(None)

    def action_metric(self, delta: int) -> None:
        self.metric += delta
        self.draw()

    def action_move(self, delta: int) -> None:
        lines = self.lines()
        n = len(lines[0].steps) if lines else 0
        if n:
            i = n - 1 if self.cursor is None else self.cursor
            self.cursor = max(0, min(n - 1, i + delta))
            self.draw()

    def action_open(self) -> None:
        step = self.cursor_step()
        if step is not None:
            self.open_samples(step)
