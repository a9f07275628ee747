"""The app's control keys: start, resume, stop (and SIGKILL when asked), open another run.

Each key confirms in a dialog, then calls the ``RunSession`` in a thread worker (the
session waits on processes; the UI must not). Results come back as toasts. ``s`` on a run
dir that already holds a run asks first: resume it, a new run in a fresh directory, or a
new branch there (its checkpoints moved aside, nothing deleted). Before a run exists, the
welcome screen shows the preflight of a start from here (the start dialog reuses it).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.worker import get_current_worker

from nal_tui.core.control.results import StartResult, StopResult
from nal_tui.core.control.rundir import (
    RunHistory,
    config_file,
    moved_aside_by,
    run_history,
    suggest_run_dir,
)
from nal_tui.core.control.runs import find_runs
from nal_tui.core.control.session import RunSession
from nal_tui.core.defaults import default_run_dir
from nal_tui.core.vocab import STOP_TIMEOUT
from nal_tui.ui.checkpoints.table import CheckpointTable, verified_cell
from nal_tui.ui.host import ScreenHost, in_thread
from nal_tui.ui.run.feeds import RunFeeds

if TYPE_CHECKING:
    from nal_tui.preflight.report import PreflightReport
    from nal_tui.ui.launch.confirm import LaunchRequest
    from nal_tui.ui.runs.picker import CompareRuns

# The dialogs, preflight and compare are imported where first used: the dashboard's
# first paint does not wait for them (bench/bench_dashboard.py's open time).

Toast = Callable[..., None]


def _empty_dir(path: Path) -> bool:
    """A directory with nothing in it (made for the run): a start may put the run there."""
    try:
        return path.is_dir() and next(path.iterdir(), None) is None
    except OSError:
        return False


class RunControl:
    """Start, resume, stop and open runs for the app (``app``: its dialogs and workers)."""

    def __init__(
        self,
        app: ScreenHost,
        session: RunSession,
        feeds: RunFeeds,
        *,
        config_path: Path,
        build_models: bool,
        stop_grace_s: float,
        toast: Toast,
        open_run: Callable[[Path | None], None],
        changed: Callable[[], None],
        table: Callable[[], CheckpointTable],
        show_welcome: Callable[[str | Text], None],
        read_only: bool = False,
    ) -> None:
        self._app, self.session, self.feeds = app, session, feeds
        self.read_only = read_only
        """Start, stop, resume and kill are refused (nal-tui serve without --allow-control)."""
        self.config_path, self.build_models = Path(config_path), build_models
        self.stop_grace_s = stop_grace_s
        self.toast, self._open_run, self._changed = toast, open_run, changed
        self._table, self._show_welcome = table, show_welcome
        self.launching = False
        """A start or resume is under way (its worker has not answered yet)."""
        self.stop_wanted = False
        """``x`` was pressed while launching: the stop dialog opens once the trainer runs."""
        self.welcome_result: tuple[object, PreflightReport] | None = None
        """The welcome screen's preflight and what it depended on (``_preflight_key``)."""

    @property
    def run_dir(self) -> Path | None:
        return self.session.run_dir

    # ---- welcome (no run yet)

    def welcome(self, problem: str) -> None:
        in_thread(self._app, "welcome", self._welcome, problem)

    def _welcome(self, problem: str) -> None:
        """Worker: the preflight of a start from here (where it would put the run)."""
        from nal_tui import preflight  # lazy: see the top
        from nal_tui.ui.launch.confirm import preflight_text  # lazy: see the top
        from nal_tui.ui.launch.welcome import welcome_text  # lazy: see the top

        cfg, rd = self.config_path, self.new_run_dir()
        show = lambda checks: self._app.call_from_thread(  # noqa: E731
            self._show_welcome, welcome_text(problem, cfg, checks, rd)
        )
        show("running preflight checks…")
        try:
            key = self._preflight_key(rd)
            report = preflight.run_checks(
                cfg, rd, build_models=self.build_models, logs_dir=self.session.logs_dir
            )
            if key is not None and key == self._preflight_key(rd):
                self.welcome_result = (key, report)
            text = preflight_text(report)
            text.append(report.summary(), style="bold green" if report.ok else "bold red")
        except Exception as e:  # noqa: BLE001 - shown in place of the report
            text = f"preflight could not run: {e}"
        if not get_current_worker().is_cancelled:
            show(text)

    def _preflight_key(self, rd: Path | None) -> tuple | None:
        """What a preflight result depends on that can change under it: the config's
        bytes, the run dir, whether the models are built."""
        try:
            data = self.config_path.read_bytes()
        except OSError:
            return None
        return (str(self.config_path), hashlib.sha256(data).digest(), str(rd), self.build_models)

    def welcome_report(self, rd: Path | None) -> PreflightReport | None:
        """The welcome screen's preflight report when it still holds for a start in ``rd``
        (same config bytes, same run dir), else None: the start dialog reuses it."""
        got = self.welcome_result
        if got is None or got[0] != self._preflight_key(rd):
            return None
        return got[1]

    # ---- start (s)

    def refused(self, what: str) -> bool:
        """In a read-only dashboard: say so (a toast) and return True."""
        if self.read_only:
            self.toast(
                f"{what}: refused, this dashboard is read-only "
                "(nal-tui serve --allow-control allows it)",
                severity="warning",
            )
        return self.read_only

    def start(self) -> None:
        from nal_tui.ui.launch.holds import RunHoldsRunScreen  # lazy: see the top

        if self.refused("start"):
            return
        if self.session.trainer().live:
            self.toast(
                "a trainer is already running in this run; stop it first (x)", severity="warning"
            )
            return
        rd = self.new_run_dir()
        hist = run_history(rd) if rd is not None and rd.is_dir() else None
        if hist is not None:  # the trainer would refuse a fresh start there: ask instead
            holds = RunHoldsRunScreen(rd, hist, suggest_run_dir(rd))
            self._app.push_screen(holds, lambda choice: self._holds_answer(choice, rd, hist))
            return
        self._confirm_start(rd)

    def _holds_answer(self, choice: str | None, rd: Path, hist: RunHistory) -> None:
        from nal_tui.ui.launch.holds import NEW_BRANCH, NEW_RUN, RESUME  # lazy: see the top

        if choice == RESUME:
            if self.run_dir is None or rd.resolve() != self.run_dir.resolve():
                self._open_run(rd)
            self.resume()
        elif choice == NEW_RUN:
            self._confirm_start(suggest_run_dir(rd))
        elif choice == NEW_BRANCH:
            self._confirm_start(rd, hist)

    def _confirm_start(self, rd: Path | None, branch_of: RunHistory | None = None) -> None:
        """The start confirmation, with the welcome screen's preflight when it still holds."""
        from nal_tui import preflight  # lazy: see the top
        from nal_tui.ui.launch.confirm import StartScreen  # lazy: see the top

        new_branch = branch_of is not None
        check = lambda nproc=1, init_from=None, init_generator_only=False: preflight.run_checks(  # noqa: E731
            self.config_path, rd, build_models=self.build_models, nproc=nproc,
            logs_dir=self.session.logs_dir, new_branch=new_branch,
            init_from=init_from, init_generator_only=init_generator_only,
        )  # fmt: skip
        report = self.welcome_report(rd) if not new_branch else None
        limit = self.session.nproc_limit(self.config_path)
        screen = StartScreen(
            self.config_path, rd, branch_of, check=check, report=report, limit=limit
        )
        self._app.push_screen(screen, self._start_confirmed)

    def new_run_dir(self) -> Path | None:
        """Where a start from here puts the run: the run shown (or a --run-dir that does
        not exist yet, or is an empty directory), else ``<logs>/<config name>`` (None when
        the config cannot be read; preflight says why)."""
        rd = self.run_dir
        if rd is not None and (not rd.exists() or _empty_dir(rd) or self.session.problem() is None):
            return rd
        try:
            return default_run_dir(self.config_path, self.session.logs_dir)
        except Exception:  # noqa: BLE001 - a bad config is preflight's to report
            return None

    def _start_confirmed(self, req: LaunchRequest | None) -> None:
        if req is not None:
            what = "starting over as a new branch" if req.new_branch else "starting the trainer"
            if req.init_from:
                only = " (generator only)" if req.init_generator_only else ""
                what += f", fine-tuning from {Path(req.init_from).name}{only},"
            self.toast(f"{what} with {req.nproc} process(es)…")
            self.launching = True
            in_thread(self._app, "control", self._launch, None, req)

    # ---- resume (r, Enter in the table)

    def resume(self, checkpoint: str | None = None) -> None:
        from nal_tui import preflight  # lazy: see the top
        from nal_tui.ui.launch.confirm import ResumeScreen  # lazy: see the top

        if self.refused("resume"):
            return
        rd, st, rows = self.run_dir, self.feeds.state, self.feeds.rows
        problem = self.session.problem()
        if rd is None or problem is not None:
            # The session's own words name a mistyped run dir's neighbours ("did you mean").
            why = f"{problem}; " if rd is not None and problem else ""
            self.toast(f"{why}no run to resume; start one with s", severity="warning")
            return
        if self.session.trainer().live:
            if st.ended:  # run_end is written; the process is still exiting
                in_thread(self._app, "resume-wait", self._resume_after_exit, checkpoint)
                return
            self.toast("the trainer is running; stop it (x) before resuming", severity="warning")
            return
        table = self._table()
        if checkpoint is None:
            # "latest" by the one definition (the checkpoint service marks it); before the
            # service has verified the table, the session resolves "latest" at launch.
            latest = next((r for r in rows if r.latest), None)
            checkpoint = latest.path if latest is not None else None
        row = table.row_for(checkpoint) if checkpoint is not None else None
        verified = verified_cell(row).plain if row is not None else "verified when it starts"
        target = str(rd / checkpoint) if checkpoint is not None else "latest"
        # Every checkpoint the trainer will move aside, by its own plan (for an abandoned
        # one: the live checkpoints that are not its ancestors, whatever their step).
        later = moved_aside_by(rd, checkpoint) if row is not None else ()
        check = lambda nproc=1: preflight.run_checks(  # noqa: E731
            config_file(rd), run_dir=rd, resume=target, build_models=False, nproc=nproc,
            logs_dir=self.session.logs_dir,
        )  # fmt: skip
        screen = ResumeScreen(
            rd, target, row.step if row else None, verified, check=check,
            target_step=st.target_step, later=later,
            abandoned=row is not None and row.abandoned,
            limit=self.session.nproc_limit(config_file(rd)),
        )  # fmt: skip
        self._app.push_screen(screen, self._resume_confirmed)

    def _resume_after_exit(self, checkpoint: str | None, wait_s: float = 60.0) -> None:
        """Worker: ``r`` right after a stop: the trainer has written run_end but not exited
        yet; open the resume dialog once it has (it must not be resumed while it holds the
        run)."""
        deadline = time.monotonic() + wait_s
        while self.session.trainer().live and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.session.trainer().live:
            msg = "the trainer wrote run_end but is still running; stop it (x) before resuming"
            self._app.call_from_thread(self.toast, msg, severity="warning")
        else:
            self._app.call_from_thread(self.resume, checkpoint)

    def _resume_confirmed(self, req: LaunchRequest | None) -> None:
        if req is not None:
            self.toast(f"resuming from {Path(req.checkpoint or 'latest').name}…")
            self.launching = True
            in_thread(self._app, "control", self._launch, req.checkpoint or "latest", req)

    def _launch(self, checkpoint: str | None, req: LaunchRequest) -> None:
        """Worker: start (``checkpoint`` None) or resume, as the dialog asked."""
        s = self.session
        try:
            if checkpoint is None:
                rd = req.run_dir if req.run_dir is not None else self.new_run_dir()
                fresh = RunSession(rd, logs_dir=s.logs_dir, trainer_base=s.trainer_base, env=s.env)
                res = fresh.start(
                    self.config_path, target_step=req.target_step, nproc=req.nproc,
                    new_branch=req.new_branch, init_from=req.init_from,
                    init_generator_only=req.init_generator_only,
                )  # fmt: skip
            else:
                res = s.resume(checkpoint, target_step=req.target_step, nproc=req.nproc,
                               verify=self.feeds.verifier)  # fmt: skip
        except BaseException:  # said by the worker's error toast; x must work again
            self._app.call_from_thread(self._launch_over)
            raise
        self._app.call_from_thread(self._launched, res)

    def _launch_over(self) -> bool:
        """The launch has answered: whether ``x`` was pressed meanwhile (cleared)."""
        self.launching = False
        stop_wanted, self.stop_wanted = self.stop_wanted, False
        return stop_wanted

    def _launched(self, res: StartResult) -> None:
        stop_wanted = self._launch_over()
        if not res.ok:
            title = (
                "not started: the run dir holds a run" if res.refused else "trainer did not start"
            )
            self.toast(res.message, title, "error", timeout=20)
            return
        self.toast(res.message, "trainer started")
        rd = Path(res.run_dir)
        if (
            self.run_dir is None
            or not self.run_dir.exists()
            or rd.resolve() != self.run_dir.resolve()
        ):
            self._open_run(rd)
        if stop_wanted:  # x during the launch: now there is a trainer to stop
            self.stop()

    # ---- stop (x)

    def stop(self) -> None:
        if self.refused("stop"):
            return
        if self.launching:
            self.stop_wanted = True
            self.toast("the trainer is starting: the stop dialog opens once it runs")
            return
        st = self.session.trainer()
        if self.run_dir is None or not st.live:
            self.toast("no trainer is running in this run", severity="warning")
            return
        from nal_tui.ui.launch.stop import StopScreen  # lazy: see the top

        screen = StopScreen(self.run_dir, st.pid, self.stop_grace_s)
        self._app.push_screen(screen, self._stop_confirmed)

    def _stop_confirmed(self, yes: bool | None) -> None:
        if yes:
            self.feeds.state.set_stopping()
            self._changed()
            in_thread(self._app, "control", self._stop, None)

    def _stop(self, kill_after_s: float | None) -> None:
        """Worker: SIGTERM (SIGKILL after ``kill_after_s``) and wait."""
        res = self.session.stop(grace_s=self.stop_grace_s, kill_after_s=kill_after_s)
        self._app.call_from_thread(self._stopped, res)

    def _stopped(self, res: StopResult) -> None:
        from nal_tui.ui.launch.stop import KillScreen  # lazy: see the top

        if res.status == STOP_TIMEOUT:
            self._app.push_screen(KillScreen(res.pid, res.waited_s, res.message), self._kill_answer)
            return
        self.feeds.state.set_stopping(False)
        self.toast(res.message, f"stop: {res.status}", "information" if res.ok else "error")

    def _kill_answer(self, kill: bool | None) -> None:
        # "Keep waiting" re-sends SIGTERM, which the trainer treats like the first one.
        in_thread(self._app, "control", self._stop, 0.0 if kill else None)

    # ---- open another run (o)

    def pick_run(self) -> None:
        in_thread(self._app, "runs", self._pick_run)

    def _pick_run(self) -> None:
        """Worker: list the runs, then the picker."""
        from nal_tui.ui.runs.picker import RunPickerScreen  # lazy: see the top

        found = find_runs(self.session.logs_dir)
        self._app.call_from_thread(
            self._app.push_screen,
            RunPickerScreen(found, self.session.logs_dir, self.run_dir),
            self._run_picked,
        )

    def _run_picked(self, choice: Path | CompareRuns | None) -> None:
        from nal_tui.ui.runs.picker import CompareRuns  # lazy: see the top

        if isinstance(choice, CompareRuns):
            self.toast(f"loading {len(choice.paths)} runs to compare…", "compare")
            in_thread(self._app, "compare", self._compare, choice.paths)
        elif choice is not None and choice != self.run_dir:
            self._open_run(choice)

    # ---- compare the runs marked in the picker

    def _compare(self, paths: tuple[Path, ...]) -> None:
        """Worker: each run loaded as ``nal-tui compare`` loads it, then the compare screen."""
        from nal_tui.core.compare.runs import CompareError, load_runs  # lazy: see the top
        from nal_tui.ui.compare.app import CompareScreen  # lazy: see the top

        try:
            runs = load_runs(list(paths))
        except CompareError as e:
            self._app.call_from_thread(self.toast, str(e), "compare", "error")
            return
        if not get_current_worker().is_cancelled:
            self._app.call_from_thread(self._app.push_screen, CompareScreen(runs))
