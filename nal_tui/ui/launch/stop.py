"""Stop confirmation, and the SIGKILL offer shown only after the grace period ran out."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class StopScreen(ModalScreen[bool]):
    """y / Enter: send SIGTERM; n / Esc: keep training."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Stop"),
        Binding("n,escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, run_dir: Path, pid: int | None, grace_s: float) -> None:
        super().__init__()
        self.run_dir, self.pid, self.grace_s = run_dir, pid, grace_s

    def compose(self) -> ComposeResult:
        with Vertical(id="stop-box", classes="modal-box"):
            yield Static("[b]Stop training?[/b]", classes="modal-title")
            yield Static(
                f"Run [b]{self.run_dir.name}[/b], trainer pid [b]{self.pid or '?'}[/b].\n"
                "SIGTERM goes to the trainer (and the ranks it started, nothing else): it "
                "finishes the current step, saves a checkpoint and writes run_end. Nothing "
                "is killed.\n"
                f"If it is still running after {self.grace_s:.0f} s you will be offered SIGKILL."
            )
            yield Static("[dim]y / Enter stop · n / Esc keep training[/dim]")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class KillScreen(ModalScreen[bool]):
    """Offered after the grace period: k sends SIGKILL, w / Esc keeps waiting."""

    BINDINGS = [
        Binding("k", "answer(True)", "SIGKILL"),
        Binding("w,escape", "answer(False)", "Keep waiting"),
    ]

    def __init__(self, pid: int | None, waited_s: float, message: str) -> None:
        super().__init__()
        self.pid, self.waited_s, self.message = pid, waited_s, message

    def compose(self) -> ComposeResult:
        with Vertical(id="kill-box", classes="modal-box"):
            yield Static("[b red]Trainer still running[/b red]", classes="modal-title")
            yield Static(
                f"pid {self.pid or '?'} has not exited {self.waited_s:.0f} s after SIGTERM.\n"
                f"{self.message}\n\n"
                "[b]k[/b]: SIGKILL now. Checkpoints already on disk are kept and stay "
                "verified; steps since the last one are lost.\n"
                "[b]w[/b] / Esc: keep waiting."
            )

    def action_answer(self, kill: bool) -> None:
        self.dismiss(kill)
