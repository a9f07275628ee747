"""The dashboard's keys and the help text built from them."""

from __future__ import annotations

from textual.binding import Binding

from nal_tui.core.reducer.present import loss_label
from nal_tui.core.vocab import LOSS_KEYS

BINDINGS = [
    Binding("q", "quit", "Quit", tooltip="quit; the trainer keeps running"),
    Binding("ctrl+c", "quit", "Quit", show=False, priority=True,
            tooltip="quit cleanly; the trainer keeps running"),
    Binding("question_mark", "help", "Keys", key_display="?", tooltip="show every key"),
    Binding("s", "start", "Start", tooltip="start training from the config (confirm); on a "
            "run dir that holds a run: resume it, a new run elsewhere, or a new branch"),
    Binding("x", "stop", "Stop", tooltip="stop the trainer: SIGTERM, it saves a checkpoint"),
    Binding("r", "resume", "Resume",
            tooltip="resume from the latest verified checkpoint (confirm, new target)"),
    Binding("o", "pick_run", "Runs", tooltip="open another run under the logs directory"),
    *[
        Binding(str(i + 1), f"select_loss({i})", loss_label(k), show=False,
                tooltip=f"show the {loss_label(k)} loss in the big chart")
        for i, k in enumerate(LOSS_KEYS)
    ],
    Binding("tab", "cycle_loss(1)", "Next loss", show=False, priority=True,
            tooltip="big chart: next loss"),
    Binding("shift+tab", "cycle_loss(-1)", "Prev loss", show=False, priority=True,
            tooltip="big chart: previous loss"),
    Binding("m", "toggle_smooth", "Smooth", tooltip="big chart: smoothing on/off"),
    Binding("l", "toggle_log", "Log", tooltip="big chart: log scale on/off"),
    Binding("b", "toggle_bell", "Bell", tooltip="ring the terminal bell on alerts on/off"),
    Binding("v", "samples", "Samples", show=False, tooltip="validation samples: spectrograms (generated "
            "above ground truth, difference, A/B across steps), play, copy the path"),
    Binding("g", "quality", "Quality", show=False, tooltip="validation chart: every metric "
            "of every set against step, best checkpoints, over-training; Enter: samples"),
]  # fmt: skip

# Keys of focused widgets, shown by `?` too.
EXTRA_KEYS = [
    ("↑ / ↓", "move in the checkpoint table"),
    (
        "Enter",
        "resume from the checkpoint selected in the table (an older or abandoned one: "
        "the dialog says what is moved aside; nothing is deleted)",
    ),
]

_NAMES = {"question_mark": "?", "ctrl+c": "Ctrl+C", "shift+tab": "Shift+Tab", "tab": "Tab"}


# The big chart's keys: the compact layout (below 100x30) has no big chart.
BIG_CHART_ACTIONS = ("select_loss", "cycle_loss", "toggle_smooth", "toggle_log")


def key_help(bindings: list, big_chart: bool = True) -> list[tuple[str, str]]:
    """(key, what it does) for every binding (without the big chart's keys when the layout
    has none)."""
    out = []
    for b in bindings:
        if not big_chart and b.action.split("(")[0] in BIG_CHART_ACTIONS:
            continue
        if isinstance(b, Binding):
            out.append((b.key_display or _NAMES.get(b.key, b.key), b.tooltip or b.description))
    return out
