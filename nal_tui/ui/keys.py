"""The dashboard's keys and the help text built from them."""

from __future__ import annotations

from textual.binding import Binding

from nal_tui.core.reducer.present import loss_label
from nal_tui.core.vocab import SERIES_KEYS

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
                tooltip="select a series: 1-5 the losses, 6-9 lr G, lr D, grad norm G, grad "
                "norm D; charted large (wider layouts), its group in the losses panel"
                if i == 0 else f"select {loss_label(k)}")
        for i, k in enumerate(SERIES_KEYS)
    ],
    Binding("tab", "cycle_loss(1)", "Next series", show=False, priority=True,
            tooltip="select the next / previous series"),
    Binding("shift+tab", "cycle_loss(-1)", "Prev series", show=False, priority=True,
            tooltip="select the previous series"),
    Binding("z", "zoom", "Zoom", show=False,
            tooltip="charts: whole run, last 1k, 10k, 100k steps (in turn)"),
    Binding("Z", "zoom_range", "Range", show=False, key_display="Z",
            tooltip="charts: show a range of steps you type (120k-130k)"),
    Binding("left_square_bracket", "pan(-1)", "Pan back", show=False, key_display="[",
            tooltip="charts: pan back / on by half a view (back stops following the "
            "newest steps; on up to them follows again)"),
    Binding("right_square_bracket", "pan(1)", "Pan on", show=False, key_display="]",
            tooltip="charts: pan on half a view (at the end: follows the tail again)"),
    Binding("f", "follow", "Follow", show=False,
            tooltip="charts: follow the run's newest steps again (the default)"),
    Binding("m", "smooth(1)", "Smooth+", show=False,
            tooltip="big chart: more / less smoothing (TensorBoard's EMA weight: 0, .6, .8, "
            ".9, .95, .99; the raw series faint behind; remembered for the run)"),
    Binding("M", "smooth(-1)", "Smooth-", show=False, key_display="M",
            tooltip="big chart: less smoothing (0: the raw series only)"),
    Binding("l", "toggle_log", "Log", show=False,
            tooltip="big chart: log scale on/off (remembered for the run)"),
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


# The big chart's keys: the compact layout (below 100x30) has no big chart (zoom, pan and
# the series keys act on the losses panel's charts there too).
BIG_CHART_ACTIONS = ("smooth", "toggle_log")


def key_help(bindings: list, big_chart: bool = True) -> list[tuple[str, str]]:
    """(key, what it does) for every binding (without the big chart's keys when the layout
    has none). Neighbours off the footer with the same action share a row (``1-9``,
    ``[ / ]``): the first one's text says what they do."""
    out: list[tuple[str, str]] = []
    names: list[list[str]] = []
    last = None
    for b in bindings:
        action = b.action.split("(")[0]
        if not big_chart and action in BIG_CHART_ACTIONS:
            continue
        if isinstance(b, Binding):
            name = b.key_display or _NAMES.get(b.key, b.key)
            if action == last:
                names[-1].append(name)
                continue
            out.append((name, b.tooltip or b.description))
            names.append([name])
            last = None if b.show else action  # a footer key keeps its own row
    return [(_join(n), d) for n, (_, d) in zip(names, out, strict=True)]


def _join(names: list[str]) -> str:
    if len(names) > 2 and all(n.isdigit() for n in names):
        return f"{names[0]}-{names[-1]}"
    return " / ".join(names)
