"""`s` on a run dir that already holds a run: the trainer would refuse a fresh start there
(it would mix two runs), so the dashboard asks what to do instead.

Every choice leads to its own confirmation (nothing starts from this dialog), and none
deletes anything: resume continues the run, a new run goes to a fresh sibling directory,
and a new branch moves the run's checkpoints aside to ``checkpoints/abandoned/``.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from nal_tui.core.control.rundir import ASIDE_DIR, RunHistory
from nal_tui.core.text import clean

RESUME, NEW_RUN, NEW_BRANCH = "resume", "new-run", "new-branch"


class RunHoldsRunScreen(ModalScreen[str | None]):
    """r: resume it · n / Enter: a new run in a fresh directory · b: a new branch here ·
    Esc: cancel. Dismisses with RESUME, NEW_RUN, NEW_BRANCH or None."""

    BINDINGS = [
        Binding("r", f"choose('{RESUME}')", "Resume"),
        Binding("n,enter", f"choose('{NEW_RUN}')", "New run"),
        Binding("b", f"choose('{NEW_BRANCH}')", "New branch"),
        Binding("escape", "choose(None)", "Cancel"),
    ]

    def __init__(self, run_dir: Path, hist: RunHistory, suggested: Path) -> None:
        super().__init__()
        self.run_dir, self.hist, self.suggested = run_dir, hist, suggested

    def describe(self) -> Text:
        h, rd = self.hist, clean(self.run_dir)
        t = Text()
        newest = f", newest checkpoint at step {h.latest.step:,}" if h.latest else ""
        t.append(f"{rd}", style="bold")
        t.append(f" already holds a run (last step {h.last_step:,}{newest}). Starting from ")
        t.append("step 0 there would mix two runs, so choose:\n\n")
        if h.latest is not None:
            t.append(" r ", style="bold reverse")
            t.append("  resume it from its latest verified checkpoint\n")
        else:  # a start killed before its first checkpoint: there is nothing to resume
            t.append(" r ", style="dim reverse")
            t.append("  (no checkpoint yet: nothing to resume from)\n", style="dim")
        t.append(" n ", style="bold reverse")
        t.append("  start a new run in ")
        t.append(clean(self.suggested), style="bold")
        t.append(" (Enter)\n")
        t.append(" b ", style="bold reverse")
        t.append(f"  start over from step 0 in {rd} as a new branch: its ")
        t.append(f"{h.n_checkpoints} checkpoint(s)")
        t.append(" are moved aside to ")
        t.append(ASIDE_DIR, style="bold")
        t.append(", not deleted (they stay listed and resumable)\n")
        t.append(" Esc ", style="bold reverse")
        t.append(" cancel\n\n")
        t.append("Each choice asks you to confirm before anything starts.", style="dim")
        return t

    def compose(self) -> ComposeResult:
        keys = "r resume · " if self.hist.latest is not None else ""
        with Vertical(id="holds-box", classes="modal-box"):
            yield Static(
                "[b]This run directory already holds a run[/b]  "
                f"[dim]{keys}n / Enter new run · b new branch · Esc cancel[/dim]",
                classes="modal-title",
            )
            yield Static(self.describe(), id="holds-what")

    def action_choose(self, choice: str | None) -> None:
        if choice == RESUME and self.hist.latest is None:
            self.app.bell()  # not offered: no checkpoint to resume from
            return
        self.dismiss(choice)
