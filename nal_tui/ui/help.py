"""The `?` screen: every key the dashboard answers to, with what it does."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


def key_table(keys: Sequence[tuple[str, str]]) -> Table:
    """A two-column table of (key, description)."""
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column()
    for k, d in keys:
        t.add_row(k, d)
    return t


class HelpScreen(ModalScreen[None]):
    """Lists the keys it is given; any of Esc, q or ? closes it."""

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", show=False),
        Binding("q", "close", "Close", show=False),
    ]

    def __init__(self, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = list(keys)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="modal-box"):
            # The hint goes first: a long list scrolls, the way out stays in view.
            yield Static("[b]Keys[/b]  [dim]Esc / ? closes this help[/dim]", classes="modal-title")
            yield Static(key_table(self.keys), id="help-keys")

    def action_close(self) -> None:
        self.dismiss(None)
