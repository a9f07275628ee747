"""The app's control keys: start, resume, stop (and SIGKILL when asked), open another run.

Each key confirms in a dialog, then calls the ``RunSession`` in a Textual worker (the
session waits on processes; the UI must not). Results come back as toasts. ``s`` on a run
dir that already holds a run asks first: resume it, a new run in a fresh directory, or a
new branch there (its checkpoints moved aside, nothing deleted).
"""

from __future__ import annotations

import time
from pathlib import Path

from textual import work
from textual.widgets import DataTable
from textual.worker import Worker, WorkerState

from nal_tui import preflight
from nal_tui.core.defaults import default_run_dir
from nal_tui.core.results import StartResult, StopResult
from nal_tui.core.rundir import RunHistory, config_file, run_history, suggest_run_dir
from nal_tui.core.runs import find_runs
from nal_tui.core.session import RunSession
from nal_tui.core.text import clean
from nal_tui.core.vocab import STOP_TIMEOUT
from nal_tui.ui.screens.holds import NEW_BRANCH, NEW_RUN, RESUME, RunHoldsRunScreen
from nal_tui.ui.screens.launch import LaunchRequest, ResumeScreen, StartScreen
from nal_tui.ui.screens.runs import RunPickerScreen
from nal_tui.ui.screens.stop import KillScreen, StopScreen
from nal_tui.ui.widgets.checkpoints import CheckpointTable, verified_cell


class ControlMixin:
    """Actions of ``NalTuiApp`` that change the run (mixed into the app: ``self`` is it)."""

    # ---- start (s)

    def action_start(self) -> None:
        if self.session.trainer().live:
            self.toast(
                "a trainer is already running in this run; stop it first (x)", severity="warning"
            )
            return
        rd = self._new_run_dir()
        hist = run_history(rd) if rd is not None and rd.is_dir() else None
        if hist is not None:  # the trainer would refuse a fresh start there: ask instead
            holds = RunHoldsRunScreen(rd, hist, suggest_run_dir(rd))
            self.push_screen(holds, lambda choice: self._holds_answer(choice, rd, hist))
            return
        self._confirm_start(rd)

    def _holds_answer(self, choice: str | None, rd: Path, hist: RunHistory) -> None:
        if choice == RESUME:
            if self.run_dir is None or rd.resolve() != self.run_dir.resolve():
                self.open_run(rd)
            self.action_resume()
        elif choice == NEW_RUN:
            self._confirm_start(suggest_run_dir(rd))
        elif choice == NEW_BRANCH:
            self._confirm_start(rd, hist)

    def _confirm_start(self, rd: Path | None, branch_of: RunHistory | None = None) -> None:
        """The start confirmation, with the welcome screen's preflight when it still holds."""
        new_branch = branch_of is not None
        check = lambda: preflight.run_checks(  # noqa: E731
            self.config_path, rd, build_models=self.build_models,
            logs_dir=self.session.logs_dir, new_branch=new_branch,
        )  # fmt: skip
        report = self.welcome_report(rd) if not new_branch else None
        screen = StartScreen(self.config_path, rd, branch_of, check=check, report=report)
        self.push_screen(screen, self._start_confirmed)

    def _new_run_dir(self) -> Path | None:
        """Where a start from here puts the run: the run shown (or a --run-dir that does
        not exist yet), else ``<logs>/<config name>`` (None when the config cannot be read;
        preflight says why)."""
        rd = self.run_dir
        if rd is not None and (not rd.exists() or self.session.problem() is None):
            return rd
        try:
            return default_run_dir(self.config_path, self.session.logs_dir)
        except Exception:  # noqa: BLE001 - a bad config is preflight's to report
            return None

    def _start_confirmed(self, req: LaunchRequest | None) -> None:
        if req is not None:
            what = "starting over as a new branch" if req.new_branch else "starting the trainer"
            self.toast(f"{what} with {req.nproc} process(es)…")
            self._launch(None, req)

    # ---- resume (r, Enter in the table)

    def action_resume(self, checkpoint: str | None = None) -> None:
        rd = self.run_dir
        if rd is None or self.session.problem() is not None:
            self.toast("no run to resume; start one with s", severity="warning")
            return
        if self.session.trainer().live:
            if self.state.ended:  # run_end is written; the process is still exiting
                self._resume_after_exit(checkpoint)
                return
            self.toast("the trainer is running; stop it (x) before resuming", severity="warning")
            return
        table = self.query_one(CheckpointTable)
        if checkpoint is None:
            # "latest" by the one definition (the checkpoint service marks it); before the
            # service has verified the table, the session resolves "latest" at launch.
            latest = next((r for r in self.rows if r.latest), None)
            checkpoint = latest.path if latest is not None else None
        row = table.row_for(checkpoint) if checkpoint is not None else None
        verified = verified_cell(row).plain if row is not None else "verified when it starts"
        target = str(rd / checkpoint) if checkpoint is not None else "latest"
        later: tuple[int, ...] = ()
        if row is not None and not row.abandoned:
            later = tuple(r.step for r in self.rows if not r.abandoned and r.step > row.step)
        check = lambda: preflight.run_checks(  # noqa: E731
            config_file(rd), run_dir=rd, resume=target, build_models=False,
            logs_dir=self.session.logs_dir,
        )  # fmt: skip
        screen = ResumeScreen(
            rd, target, row.step if row else None, verified, check=check,
            target_step=self.state.target_step, later=later,
            abandoned=row is not None and row.abandoned,
        )  # fmt: skip
        self.push_screen(screen, self._resume_confirmed)

    @work(thread=True, exclusive=True, group="resume-wait", exit_on_error=False)
    def _resume_after_exit(self, checkpoint: str | None, wait_s: float = 60.0) -> None:
        """``r`` right after a stop: the trainer has written run_end but not exited yet;
        open the resume dialog once it has (it must not be resumed while it holds the run)."""
        deadline = time.monotonic() + wait_s
        while self.session.trainer().live and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.session.trainer().live:
            msg = "the trainer wrote run_end but is still running; stop it (x) before resuming"
            self.call_from_thread(self.toast, msg, severity="warning")
        else:
            self.call_from_thread(self.action_resume, checkpoint)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A background action that raised is said, not swallowed (its workers run with
        ``exit_on_error=False`` so the dashboard outlives it)."""
        if event.state == WorkerState.ERROR:
            what = event.worker.group or event.worker.name or "a background task"
            self.toast(f"{what} failed: {clean(str(event.worker.error), 300)}", "error", "error",
                       timeout=20)  # fmt: skip

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, CheckpointTable):
            event.stop()
            self.action_resume(str(event.row_key.value))

    def _resume_confirmed(self, req: LaunchRequest | None) -> None:
        if req is not None:
            self.toast(f"resuming from {Path(req.checkpoint or 'latest').name}…")
            self._launch(req.checkpoint or "latest", req)

    @work(thread=True, exclusive=True, group="control", exit_on_error=False)
    def _launch(self, checkpoint: str | None, req: LaunchRequest) -> None:
        s = self.session
        if checkpoint is None:
            rd = req.run_dir if req.run_dir is not None else self._new_run_dir()
            fresh = RunSession(rd, logs_dir=s.logs_dir, trainer_base=s.trainer_base, env=s.env)
            res = fresh.start(
                self.config_path, target_step=req.target_step, nproc=req.nproc,
                new_branch=req.new_branch,
            )  # fmt: skip
        else:
            res = s.resume(checkpoint, target_step=req.target_step, nproc=req.nproc,
                           verify=self.verifier)  # fmt: skip
        self.call_from_thread(self._launched, res)

    def _launched(self, res: StartResult) -> None:
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
            self.open_run(rd)

    def action_stop(self) -> None:
        st = self.session.trainer()
        if self.run_dir is None or not st.live:
            self.toast("no trainer is running in this run", severity="warning")
            return
        self.push_screen(StopScreen(self.run_dir, st.pid, self.stop_grace_s), self._stop_confirmed)

    def _stop_confirmed(self, yes: bool | None) -> None:
        if yes:
            self.state.set_stopping()
            self._changed()
            self._stop(None)

    @work(thread=True, exclusive=True, group="control", exit_on_error=False)
    def _stop(self, kill_after_s: float | None) -> None:
        res = self.session.stop(grace_s=self.stop_grace_s, kill_after_s=kill_after_s)
        self.call_from_thread(self._stopped, res)

    def _stopped(self, res: StopResult) -> None:
        if res.status == STOP_TIMEOUT:
            self.push_screen(KillScreen(res.pid, res.waited_s, res.message), self._kill_answer)
            return
        self.state.set_stopping(False)
        self.toast(res.message, f"stop: {res.status}", "information" if res.ok else "error")

    def _kill_answer(self, kill: bool | None) -> None:
        # "Keep waiting" re-sends SIGTERM, which the trainer treats like the first one.
        self._stop(0.0 if kill else None)

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def action_pick_run(self) -> None:
        found = find_runs(self.session.logs_dir)
        self.call_from_thread(
            self.push_screen,
            RunPickerScreen(found, self.session.logs_dir, self.run_dir),
            self._run_picked,
        )

    def _run_picked(self, path: Path | None) -> None:
        if path is not None and path != self.run_dir:
            self.open_run(path)
