"""Start and resume confirmations: what will run, the preflight result, N processes, target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from nal_tui.core.control.nproc import NprocLimit, nproc_limit
from nal_tui.core.control.rundir import ASIDE_DIR, RunHistory
from nal_tui.core.text import clean

CHECK_STYLES = {
    "pass": ("✔", "green"),
    "warn": ("!", "yellow"),
    "fail": ("✘", "bold red"),
    "skip": ("-", "dim"),
}


@dataclass(frozen=True)
class LaunchRequest:
    """What the user confirmed: processes, target step, (for resume) the checkpoint, and (for
    a start) the run dir and whether it starts over there as a new branch."""

    nproc: int
    target_step: int | None
    checkpoint: str | None = None
    run_dir: Path | None = None
    new_branch: bool = False
    init_from: str | None = None
    init_generator_only: bool = False


def preflight_text(report: Any) -> Text:
    """One line per check (name, status, message) and the fix under each failure; failures
    first, so they are in view in a small terminal's dialog."""
    t = Text()
    checks = sorted(getattr(report, "checks", report) or [], key=lambda c: c.status != "fail")
    if not checks:
        return Text("no checks ran", style="dim")
    for c in checks:
        mark, style = CHECK_STYLES.get(c.status, ("?", "dim"))
        t.append(f"{mark} ", style=style)
        t.append(f"{c.name}: ", style="bold")
        t.append(f"{c.message}\n")
        for d in list(getattr(c, "details", []) or [])[:3]:
            t.append(f"    {d}\n", style="dim")
        fix = getattr(c, "fix", "")
        if fix and c.status != "pass":
            t.append(f"    fix: {fix}\n", style="cyan")
    return t


class NprocInput(Input):
    """The processes field: digits only; a refused key is said in the dialog, not only a
    bell (a path typed here by mistake would otherwise leave its digits behind)."""

    def restricted(self) -> None:
        super().restricted()
        screen = self.screen
        if isinstance(screen, LaunchScreen):
            screen.nproc_refused_key()


def failures(report: Any) -> int:
    return sum(1 for c in getattr(report, "checks", report) or [] if c.status == "fail")


class LaunchScreen(ModalScreen[LaunchRequest | None]):
    """Base of the start and resume confirmations; subclasses say what runs."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "confirm", "Launch", show=False),
        # Priority: the number inputs would swallow + and - (they accept digits only).
        Binding("plus,equals_sign", "nproc(1)", "+1 process", show=False, priority=True),
        Binding("minus", "nproc(-1)", "-1 process", show=False, priority=True),
    ]
    TITLE = "Launch"
    VERB = "start"
    AUTO_FOCUS = "#target"  # typing a number right away sets the target step
    RECHECK_S = 0.5  # typing pauses this long before the checks run again

    def __init__(
        self,
        *,
        check: Callable[[], Any] | None,
        nproc: int = 1,
        target_step: int | None = None,
        min_target: int = 0,
        report: Any = None,
        limit: NprocLimit | None = None,
    ) -> None:
        super().__init__()
        self._check_fn = check  # kept: a given report is not run again until a field changes
        self.check = check if report is None else None
        self.limit = limit if limit is not None else nproc_limit("auto")
        self.nproc = nproc  # the processes the current (or coming) preflight is for
        self._recheck_timer: Any = None
        self.target_step = target_step
        self.min_target = min_target
        self.report: Any = None
        self._given = report  # a preflight report that is still current (not run again)
        self.checking = self.check is not None
        self._confirm_pending = False
        self._gen = 0  # bumped when the checks run again: an older result is dropped

    def describe(self) -> Text:
        return Text()

    def extra_fields(self) -> ComposeResult:
        """Fields after the target step (the start dialog's fine-tune source)."""
        yield from ()

    def compose(self) -> ComposeResult:
        # Keys and fields first, the preflight report last: a long report scrolls, but what
        # to press stays in view on a small terminal.
        with Vertical(id="launch-box", classes="modal-box"):
            yield Static(
                f"[b]{self.TITLE}[/b]  [dim]Enter {self.VERB} · +/- processes · Esc cancel[/dim]",
                classes="modal-title",
            )
            yield Static(self.describe(), id="launch-what")
            with Horizontal(classes="field"):
                yield Label("processes (N) ")
                yield NprocInput(str(self.nproc), id="nproc", type="integer", restrict=r"[0-9]*")
            with Horizontal(classes="field"):
                yield Label("target step   ")
                yield Input(
                    "" if self.target_step is None else str(self.target_step),
                    id="target",
                    type="integer",
                    restrict=r"[0-9]*",
                    placeholder="from the config",
                )
            yield from self.extra_fields()
            yield Static("", id="launch-error")
            yield Static("[b]Preflight[/b]", classes="section")
            yield Static(
                "running preflight checks…" if self.check or self._given else "skipped",
                id="preflight",
            )

    def on_mount(self) -> None:
        self.query_one("#target", Input).focus()
        if self._given is not None:
            self._show_report(self._given)
        elif self.check is not None:
            self._run_check()

    def call_check(self) -> Any:
        """Run the checks (in the preflight worker); subclasses pass the fields' options."""
        return self.check(nproc=self.nproc)  # type: ignore[misc]

    def _recheck(self) -> None:
        """The checks again, a moment after the last change (Enter meanwhile waits)."""
        if self._check_fn is None:
            return
        self.check, self.report, self.checking = self._check_fn, None, True
        self._gen += 1
        self._error("")
        self.query_one("#preflight", Static).update("running preflight checks…")
        if self._recheck_timer is not None:
            self._recheck_timer.stop()
        self._recheck_timer = self.set_timer(
            self.RECHECK_S, lambda gen=self._gen: self._run_check(gen)
        )

    def _nproc_problem(self, value: str) -> str | None:
        """What is wrong with the processes field's text (the core's rule), or None."""
        v = value.strip()
        if not v.isdigit():
            return f"processes: a whole number from 1 to {self.limit.most}"
        return self.limit.refusal(int(v))

    def nproc_refused_key(self) -> None:
        self._error(f"processes: digits only, 1 to {self.limit.most} ({self.limit.why})")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "nproc":
            return
        event.stop()
        bad = self._nproc_problem(event.value)
        if bad is not None:
            self._error(bad)
            return
        self._error("")
        n = int(event.value.strip())
        if n != self.nproc:  # the checks depend on N (batch split, threads, memory)
            self.nproc = n
            self._recheck()

    @work(thread=True, exclusive=True, group="preflight")
    def _run_check(self, gen: int = 0) -> None:
        try:
            report = self.call_check()
        except Exception as e:  # noqa: BLE001 - a crashing check is shown, not raised
            self.app.call_from_thread(self._checked, None, f"preflight failed to run: {e}", gen)
            return
        self.app.call_from_thread(self._checked, report, "", gen)

    def _checked(self, report: Any, error: str, gen: int) -> None:
        if gen != self._gen:
            return  # the fields changed since: a newer run of the checks is on its way
        if report is None:
            self._show_error(error)
        else:
            self._show_report(report)

    def _show_report(self, report: Any) -> None:
        self.report, self.checking = report, False
        text = preflight_text(report)
        n = failures(report)
        summary = report.summary() if hasattr(report, "summary") else ""
        text.append(
            f"{summary}: {n} failed, fix before you {self.VERB}" if n else summary,
            style="bold red" if n else "bold green",
        )
        self.query_one("#preflight", Static).update(text)
        if self._confirm_pending:
            self._confirm_pending = False
            self.action_confirm()

    def _show_error(self, msg: str) -> None:
        self.checking, self._confirm_pending = False, False
        self.query_one("#preflight", Static).update(Text(msg, style="bold red"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A typed path holds '-' and '=': there they are text, not the process count keys.
        if action == "nproc" and isinstance(self.focused, Input) and self.focused.type == "text":
            return False
        return True

    def action_nproc(self, delta: int) -> None:
        box = self.query_one("#nproc", Input)
        n = (int(box.value) if box.value.isdigit() else self.nproc) + delta
        box.value = str(min(max(1, n), self.limit.most))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_confirm()

    def _error(self, msg: str) -> None:
        self.query_one("#launch-error", Static).update(Text(msg, style="bold red"))

    def action_confirm(self) -> None:
        # The fields first: a mistyped number is said at once, not after the checks.
        nv = self.query_one("#nproc", Input).value.strip()
        bad = self._nproc_problem(nv)
        if bad is not None:
            self._error(bad)
            return
        tv = self.query_one("#target", Input).value.strip()
        target = int(tv) if tv.isdigit() else None
        if tv and target is None:
            self._error("target step must be a whole number")
            return
        if target is not None and target <= self.min_target:
            self._error(f"target step must be beyond {self.min_target:,}")
            return
        if self.checking:
            # Confirmed early: launch as soon as the checks pass (not if they fail).
            self._confirm_pending = True
            self._error(f"preflight is still running; will {self.VERB} once it passes")
            return
        if self.report is not None and failures(self.report):
            bad = next(c for c in getattr(self.report, "checks", self.report) if c.status == "fail")
            self._error(
                f"preflight failed, fix it before you {self.VERB}: {bad.name}: "
                f"{clean(bad.message, 200)}"
            )
            return
        self.dismiss(self.request(int(nv), target))

    def request(self, nproc: int, target: int | None) -> LaunchRequest:
        return LaunchRequest(nproc, target)

    def action_cancel(self) -> None:
        self.dismiss(None)


class StartScreen(LaunchScreen):
    """Confirm starting a new run from a config (or, ``new_branch``, starting over from step
    0 in a run dir that holds a run: its checkpoints are moved aside).

    ``init from``: a checkpoint to fine-tune from (another run's, or an imported run's;
    empty: from scratch), ctrl+g its generator only. Preflight runs again (with its
    fine-tune check) a moment after either changes; ``check`` takes ``init_from`` and
    ``init_generator_only``."""

    BINDINGS = [
        Binding("ctrl+g", "generator_only", "Generator only", show=False, priority=True),
    ]
    TITLE = "Start training"
    VERB = "start"

    def __init__(
        self,
        config_path: Path,
        run_dir: Path | None,
        new_branch: RunHistory | None = None,
        *,
        init_from: str = "",
        init_generator_only: bool = False,
        **kw: Any,
    ) -> None:
        self.config_path, self.run_dir, self.branch_of = config_path, run_dir, new_branch
        self.init_from, self.generator_only = init_from, init_generator_only
        if new_branch is not None:
            self.TITLE = "Start over as a new branch"
        super().__init__(**kw)

    def extra_fields(self) -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label("init from     ")
            yield Input(
                self.init_from, id="init-from", placeholder="checkpoint path (empty: scratch)"
            )
            yield Static(self._gen_only_text(), id="gen-only")

    def _gen_only_text(self) -> Text:
        return Text.assemble(
            ("G only " + ("on" if self.generator_only else "off"), "bold"), (" ^g", "dim")
        )

    def _source(self) -> str | None:
        v = self.init_from.strip()
        return str(Path(v).expanduser()) if v else None

    def call_check(self) -> Any:
        src = self._source()
        if src is None:
            return self.check(nproc=self.nproc)  # type: ignore[misc]
        return self.check(  # type: ignore[misc]
            nproc=self.nproc, init_from=src, init_generator_only=self.generator_only
        )

    def on_input_changed(self, event: Input.Changed) -> None:
        # Textual calls LaunchScreen.on_input_changed too (each class in the MRO): the
        # processes field is handled there.
        if event.input.id != "init-from" or event.value == self.init_from:
            return
        event.stop()
        self.init_from = event.value
        self._recheck()

    def action_generator_only(self) -> None:
        self.generator_only = not self.generator_only
        self.query_one("#gen-only", Static).update(self._gen_only_text())
        if self._source() is not None:
            self._recheck()

    def describe(self) -> Text:
        t = Text()
        t.append("config   ", style="bold")
        t.append(f"{clean(self.config_path)}\n")
        t.append("run dir  ", style="bold")
        t.append(f"{clean(self.run_dir) if self.run_dir else '(logs/<config name>)'}\n")
        h = self.branch_of
        if h is not None:
            t.append("A new branch from step 0: ", style="bold yellow")
            t.append(
                f"the run's {h.n_checkpoints} checkpoint(s) (last step {h.last_step:,}) are "
                f"moved aside to {ASIDE_DIR}, not "
                "deleted; they stay in the table and can be resumed.\n"
            )
        t.append(
            "The trainer runs detached: quitting the dashboard leaves it running.", style="dim"
        )
        return t

    def request(self, nproc: int, target: int | None) -> LaunchRequest:
        src = self._source()
        return LaunchRequest(
            nproc, target, run_dir=self.run_dir, new_branch=self.branch_of is not None,
            init_from=src, init_generator_only=src is not None and self.generator_only,
        )  # fmt: skip


class ResumeScreen(LaunchScreen):
    """Confirm resuming a run from a checkpoint, maybe with a new target step.

    ``later``: the live checkpoints (run-dir relative paths) that resuming from this one
    moves aside (the trainer's plan: a new branch); ``abandoned``: the checkpoint lies on an
    abandoned branch (resuming brings it back and moves those live ones aside).
    """

    TITLE = "Resume training"
    VERB = "resume"

    def __init__(
        self,
        run_dir: Path,
        checkpoint: str,
        checkpoint_step: int | None,
        verified: str,
        *,
        later: tuple[str, ...] = (),
        abandoned: bool = False,
        **kw: Any,
    ) -> None:
        self.run_dir, self.checkpoint = run_dir, checkpoint
        self.checkpoint_step, self.verified = checkpoint_step, verified
        self.later, self.abandoned = later, abandoned
        if abandoned:
            self.TITLE = "Resume from an abandoned branch"
        elif later:
            self.TITLE = "Resume from an older checkpoint (new branch)"
        super().__init__(min_target=checkpoint_step or 0, **kw)

    def describe(self) -> Text:
        t = Text()
        t.append("run dir     ", style="bold")
        t.append(f"{clean(self.run_dir)}\n")
        t.append("checkpoint  ", style="bold")
        cp = self.checkpoint
        name = clean(cp if self.abandoned else Path(cp).name) if cp != "latest" else "latest"
        step = f" (step {self.checkpoint_step:,})" if self.checkpoint_step is not None else ""
        t.append(f"{name}{step}  ")
        t.append(self.verified, style="green" if self.verified.startswith("✔") else "yellow")
        aside = ASIDE_DIR
        names = ", ".join(Path(clean(p)).name for p in self.later[:8])
        more = f" and {len(self.later) - 8} more" if len(self.later) > 8 else ""
        if self.abandoned:
            t.append("\nThis checkpoint is on an abandoned branch. ", style="bold yellow")
            t.append(
                "Resuming moves it (and the checkpoints it descends from) back onto the live "
                "branch; "
                + (
                    f"these live checkpoints, not its ancestors, are moved aside to {aside}, "
                    f"not deleted: {names}{more}."
                    if self.later
                    else "no live checkpoint is moved aside."
                )
            )
        elif self.later:
            t.append("\nThis starts a new branch: ", style="bold yellow")
            t.append(
                f"these live checkpoints are moved aside to {aside}, not deleted (they stay "
                f"in the table and can be resumed): {names}{more}."
            )
        t.append(
            "\nThe trainer checks the checkpoint again (hash and load test) before it starts.",
            style="dim",
        )
        return t

    def request(self, nproc: int, target: int | None) -> LaunchRequest:
        return LaunchRequest(nproc, target, self.checkpoint)
