"""The compare screen (the ``nal-tui compare`` app, or pushed by the dashboard's run picker on
the runs marked there): one series (a validation metric, a loss, a learning rate or a
gradient norm) of every run on one chart,
each run its own colour with a legend naming its directory, against step or (``t``)
wall-clock time since each run's start; the configs' differing keys and each run's best
score and step below; ``v`` opens the samples view across the runs (A/B: the same
utterance in two runs)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from nal_tui.core.compare.runs import (
    KIND_OPT,
    KIND_VAL,
    RunInfo,
    best_of,
    compare_series,
    config_diff,
    elapsed,
    series_points,
)
from nal_tui.core.reducer.present import loss_label
from nal_tui.core.reducer.validation import value_label
from nal_tui.core.samples.catalog import list_validations
from nal_tui.core.text import fmt_duration
from nal_tui.ui.quality.plot import Line, plot_rows, y_range
from nal_tui.ui.quality.screen import LABEL_W, QualityPlot
from nal_tui.ui.run.lazyseries import build_aside
from nal_tui.ui.samples.screen import SamplesScreen, Source
from nal_tui.ui.widgets.fmt import fmt_value

RUN_STYLES = ("bold cyan", "bold magenta", "bold yellow", "bold green", "bold red", "bold blue")
MAX_DIFF_ROWS = 12
KIND_WORDS = {KIND_VAL: "validation", KIND_OPT: "optimiser"}  # else "loss"


class CompareScreen(Screen[None]):
    DEFAULT_CSS = """
    #cmp-head { height: 2; }
    #cmp-table { height: auto; max-height: 50%; }
    #cmp-keys { height: 1; }
    """
    BINDINGS = [
        Binding("q", "close", "Quit"),
        Binding("escape", "close", "Back", show=False),
        Binding("up", "series(-1)", "Prev series", key_display="↑"),
        Binding("down", "series(1)", "Next series", key_display="↓"),
        Binding("t", "time_axis", "Step/time"),
        Binding("v", "samples", "A/B samples"),
    ]

    def __init__(self, runs: Sequence[RunInfo]) -> None:
        super().__init__()
        self.runs = list(runs)
        self.series = 0
        self.by_time = False
        """The x axis: wall-clock time since each run's start (else the step)."""
        self.building = 0
        """Series being built on a worker (the optimiser's are built on first use)."""

    # ---- what is compared

    def series_names(self) -> list[tuple[str, str]]:
        """(kind, name): every validation metric any run reported, then the dashboard's
        series (losses, learning rates, gradient norms)."""
        return compare_series(self.runs)

    def current(self) -> tuple[str, str]:
        names = self.series_names()
        return names[self.series % len(names)]

    def lines(self) -> list[Line]:
        kind, name = self.current()
        out = []
        for i, r in enumerate(self.runs):
            out.append(Line(*series_points(r.state, kind, name), RUN_STYLES[i % len(RUN_STYLES)]))
        if self.by_time:  # each run's steps to seconds since its own start
            timed = []
            for r, ln in zip(self.runs, out, strict=True):
                xs = elapsed(r.state, ln.steps)  # [] for a run with no step logged
                timed.append(Line(xs, ln.values if xs else [], ln.style))
            out = timed
        return out

    # ---- layout

    def compose(self) -> ComposeResult:
        yield Static(id="cmp-head")
        yield QualityPlot(self._rows, id="cmp-plot")
        yield Static(id="cmp-table")
        yield Static(id="cmp-keys")

    def on_mount(self) -> None:
        self.draw()

    @property
    def standalone(self) -> bool:
        """The ``nal-tui compare`` app's own screen (else pushed over the dashboard)."""
        return self.app.screen_stack[:1] == [self]

    def action_close(self) -> None:
        if self.standalone:
            self.app.exit()
        else:
            self.dismiss()

    def _rows(self, width: int, height: int) -> list[Text]:
        if self.building:
            return [Text("building the series…", style="dim")]
        lines = self.lines()
        steps = [s for ln in lines for s in ln.steps]
        if not steps:
            return [Text("no points of this series in any run", style="dim")]
        x0, x1 = min(steps), max(steps)
        w = max(1, width - LABEL_W)
        rows = plot_rows(lines, w, max(1, height - 1), x0, x1)
        lo, hi = y_range(lines) or (0.0, 0.0)
        out = []
        for i, r in enumerate(rows):
            label = fmt_value(hi) if i == 0 else fmt_value(lo) if i == len(rows) - 1 else ""
            out.append(Text(f"{label:>{LABEL_W - 1}} ", style="dim") + r)
        if self.by_time:
            a, b = f"time since start {fmt_duration(x0)}", fmt_duration(x1)
        else:
            a, b = f"step {x0:,}", f"{x1:,}"
        out.append(Text(" " * LABEL_W + a + " " * max(1, w - len(a) - len(b)) + b, style="dim"))
        return out

    def draw(self) -> None:
        kind, name = self.current()
        n = len(self.series_names())
        head = Text(f"compare · {len(self.runs)} runs · ", style="bold")
        label = value_label(name)[0] if kind == KIND_VAL else loss_label(name)
        head.append(f"{KIND_WORDS.get(kind, 'loss')} {label}", style="bold")
        axis = "wall-clock time" if self.by_time else "step"
        head.append(f" ({self.series % n + 1}/{n}) · against {axis}\n", style="dim")
        for i, r in enumerate(self.runs):
            head.append(f"━ {r.label}  ", style=RUN_STYLES[i % len(RUN_STYLES)])
        self.query_one("#cmp-head", Static).update(head)
        self.query_one("#cmp-table", Static).update(self._table(kind, name))
        self.query_one("#cmp-keys", Static).update(
            Text(
                f"↑/↓ series  t x axis: {'step' if self.by_time else 'time'}  "
                "v A/B samples across runs  " + ("q quit" if self.standalone else "q/Esc back"),
                style="dim",
            )
        )
        self.query_one(QualityPlot).refresh()

    def _table(self, kind: str, name: str) -> Table:
        t = Table(box=None, padding=(0, 1), show_edge=False, expand=False)
        t.add_column("", style="bold", no_wrap=True)
        for i, r in enumerate(self.runs):
            t.add_column(r.label, style=RUN_STYLES[i % len(RUN_STYLES)], no_wrap=True)
        metric = name if kind == KIND_VAL else "mel_l1"
        best = []
        for r in self.runs:
            st = best_of(r.state, metric)
            best.append("-" if st.best is None else f"{fmt_value(st.best)} @{st.best_step:,}")
        t.add_row(f"best {metric}", *best)
        t.add_row("last step", *[f"{r.state.step:,}" if r.state.step else "-" for r in self.runs])
        problems = [r.config_problem for r in self.runs]
        if any(problems):
            t.add_row("config", *[p or "ok" for p in problems])
        diff = config_diff([r.config for r in self.runs])
        for k, vals in diff[:MAX_DIFF_ROWS]:
            t.add_row(k, *vals)
        if len(diff) > MAX_DIFF_ROWS:
            t.add_row(f"… {len(diff) - MAX_DIFF_ROWS} more differing keys", *[""] * len(self.runs))
        if not diff and not any(problems):
            t.add_row("config", *["same"] * len(self.runs))
        return t

    # ---- keys

    def action_series(self, delta: int) -> None:
        self.series += delta
        kind, name = self.current()
        tracks = [] if kind == KIND_VAL else [r.state.track(name) for r in self.runs]
        lazy = [t for t in tracks if t is not None and not t.ready]
        if lazy:  # off the UI thread: ~25 ms per run of 500k steps
            self.building += 1
            build_aside(self.app, lazy, self._built, group=f"compare {name}")
        self.draw()

    def _built(self) -> None:
        self.building -= 1
        self.draw()

    def action_time_axis(self) -> None:
        self.by_time = not self.by_time
        self.draw()

    def action_samples(self) -> None:
        sources = [
            Source(r.run_dir, r.label, tuple(list_validations(r.run_dir, upto=r.state.step)),
                   tuple(r.state.validation.views))
            for r in self.runs
        ]  # fmt: skip
        screen = SamplesScreen(sources)
        screen.mode = "ab"  # B: the same utterance in the second run
        self.app.push_screen(screen)


class CompareApp(App[None]):
    """``nal-tui compare``: the compare screen as the whole app."""

    TITLE = "nal-tui compare"
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, runs: Sequence[RunInfo]) -> None:
        super().__init__()
        self.runs = list(runs)

    def get_default_screen(self) -> Screen:
        return CompareScreen(self.runs)
