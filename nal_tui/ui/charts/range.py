"""The ``Z`` dialog: type a range of steps for the charts (``120k-130k``)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from nal_tui.core.reducer.chartview import parse_range


class RangeScreen(ModalScreen[tuple[int, int] | None]):
    """Dismisses with (first, last) step, or None on Esc."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="range-box", classes="modal-box"):
            yield Static("[b]Show steps[/b]  [dim]e.g. 120000-130000 or 120k-130k[/dim]",
                         classes="modal-title")  # fmt: skip
            yield Input(placeholder="FROM-TO", id="range-input")
            yield Static("", id="range-error")
            yield Static("[dim]Enter show · Esc cancel · f follows the newest steps again[/dim]")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        got = parse_range(event.value)
        if got is None:
            self.query_one("#range-error", Static).update(
                "[red]not a range of steps: two numbers, the first below the second[/red]"
            )
            return
        self.dismiss(got)

    def action_cancel(self) -> None:
        self.dismiss(None)
