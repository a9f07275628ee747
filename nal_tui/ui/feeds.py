"""Keeping the dashboard's state current: the run's log (history, then follow), the
checkpoints on disk, system figures. Mixed into the app (``self`` is it).

The history loads in a Textual worker (opening another run cancels it); the follower and
the services run in their own threads and only post messages (``ui.messages``), handled
here on the UI thread.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.worker import get_current_worker

from nal_tui.core.follow import LogFollower
from nal_tui.core.loader import apply_batch, load_history
from nal_tui.core.proc import PidState
from nal_tui.core.reducer.state import RunState
from nal_tui.core.rundir import events_file
from nal_tui.core.services import CheckpointService
from nal_tui.core.views import CheckpointRow, SystemView
from nal_tui.ui.messages import CheckpointsListed, HistoryLoaded, LogChanged, SystemSampled


class FeedsMixin:
    """Opening a run and the message handlers that feed its ``RunState``."""

    # ---- opening a run

    def open_run(self, run_dir: Path | None) -> None:
        """Follow ``run_dir`` (or show the welcome screen when there is no usable run)."""
        for svc in (self.follower, self.ckpt_service):
            if svc is not None:
                svc.stop()
        self.follower = self.ckpt_service = None
        self.feed.drain()
        self.session.run_dir = run_dir
        self.state, self.rows = RunState(), []
        self.alerts_seen(self.state.alerts)
        if self.sampler is not None:
            self.sampler.run_dir, self.sampler.disk_path = run_dir, self._disk_path()
        self.clear_notifications()
        problem = self.session.problem()
        welcome = problem is not None and (run_dir is None or not run_dir.exists())
        self.query_one("#welcome").display = welcome
        self.dashboard.display = not welcome
        if welcome:
            self.loading = False
            self._welcome(problem or "")
        else:
            self.loading = True
            self.ckpt_service = CheckpointService(run_dir, self._listed, self.verifier)
            self.ckpt_service.start()
            self.load_run(run_dir)
        self._changed()

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def load_run(self, run_dir: Path) -> None:
        """Worker: the whole log into a fresh state; the follower goes on from there."""
        worker = get_current_worker()
        state = RunState()
        follower = LogFollower(
            events_file(run_dir), self._follower_batch(run_dir), polling=self.polling
        )
        try:
            load_history(follower, state, stopped=lambda: worker.is_cancelled)
        except OSError as e:  # an unreadable log is shown, not fatal
            state.note_garbled(1, f"cannot read {events_file(run_dir)}: {e.strerror or e}")
        if not worker.is_cancelled:
            self.post_message(HistoryLoaded(run_dir, state, follower))

    def _follower_batch(self, run_dir: Path):
        def on_batch(records, stats) -> None:  # the follower's thread
            if self.feed.put(records, stats):
                self.post_message(LogChanged(run_dir))

        return on_batch

    def on_history_loaded(self, msg: HistoryLoaded) -> None:
        if msg.run_dir != self.run_dir:
            return
        self.state, self.follower, self.loading = msg.state, msg.follower, False
        msg.follower.start()
        self.alerts_seen(self.state.alerts)  # toasts are for new alerts only
        if self.pid is not None:
            self.state.set_pid_state(self.pid.state, self.pid.pid, self._pid_started())
        self._tick()  # time-based status ("stale") now, not at the next tick
        self._draw_charts()  # the whole-run charts at once, not at the next chart tick

    def on_log_changed(self, msg: LogChanged) -> None:
        if msg.run_dir != self.run_dir or self.loading:
            return
        for records, stats in self.feed.drain():
            apply_batch(self.state, records, stats)
        self._changed()

    # ---- services

    def _pid_started(self) -> float | None:
        return self.pid.info.started if self.pid is not None and self.pid.info else None

    def _sampled(self, view: SystemView, pid: PidState) -> None:  # the sampler's thread
        self.post_message(SystemSampled(view, pid, self.sampler.run_dir if self.sampler else None))

    def on_system_sampled(self, msg: SystemSampled) -> None:
        if msg.run_dir != self.run_dir:
            return
        self.system, self.pid = msg.view, msg.pid
        if not self.loading:
            self.state.set_pid_state(msg.pid.state, msg.pid.pid, self._pid_started())
        self._changed()

    def _listed(self, rows: list[CheckpointRow]) -> None:  # the checkpoint service's thread
        if self.ckpt_service is not None:
            self.post_message(CheckpointsListed(rows, self.ckpt_service.run_dir))

    def on_checkpoints_listed(self, msg: CheckpointsListed) -> None:
        if msg.run_dir == self.run_dir:
            self.rows = msg.rows
            self._changed()
