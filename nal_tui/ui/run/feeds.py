"""Keeping the dashboard's state current: the run's log (history, then follow), the
checkpoints on disk, system figures.

The history loads in a thread worker (opening another run cancels it): the log's end
first (a preview: the newest step on screen at once), then the whole run (through the
event index, built in a child process when the log has none); the follower and
the services run in their own threads and only post messages (``ui.messages``), which the
app routes here on the UI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.worker import get_current_worker

from nal_tui.core.control.proc import PidState
from nal_tui.core.control.rundir import events_file
from nal_tui.core.control.session import RunSession
from nal_tui.core.feed.follow import LogFollower, Records
from nal_tui.core.feed.loader import apply_batch, load_history, preview
from nal_tui.core.feed.reindex import build_in_child
from nal_tui.core.reducer.state import RunState
from nal_tui.core.reducer.views import CheckpointRow, SystemView
from nal_tui.core.services import CachedVerifier, CheckpointService, SystemSampler
from nal_tui.ui.host import WorkHost, in_thread
from nal_tui.ui.messages import (
    CheckpointsListed,
    HistoryLoaded,
    HistoryPreview,
    LogChanged,
    LogFeed,
    SystemSampled,
)

Measure = Callable[[], tuple[SystemView, PidState]]


class RunFeeds:
    """One run's ``RunState`` and what feeds it; ``changed()`` asks the app for a redraw."""

    def __init__(
        self, app: WorkHost, session: RunSession, changed: Callable[[], None], *, polling: bool
    ) -> None:
        self._app, self._changed = app, changed
        self.session, self.polling = session, polling
        self.state = RunState()
        """The run shown, fed on the UI thread."""
        self.rows: list[CheckpointRow] = []
        """The checkpoint table, as the checkpoint service last listed it."""
        self.system: SystemView | None = None
        self.pid: PidState | None = None
        self.loading = False
        """The history is being read (the follower starts once it is)."""
        self.feed = LogFeed()
        self.follower: LogFollower | None = None
        self.verifier = CachedVerifier()
        self.ckpt_service: CheckpointService | None = None
        self.sampler: SystemSampler | None = None
        self._last_ckpt_event: object = None

    def disk_path(self) -> Path:
        rd = self.session.run_dir
        return rd if rd is not None else self.session.logs_dir

    # ---- lifecycle

    def start_sampler(self, on: bool, measure: Measure | None) -> None:
        rd = self.session.run_dir
        self.sampler = SystemSampler(rd, self.disk_path(), self._sampled, measure=measure)
        if on:
            self.sampler.start()

    def stop(self) -> None:
        for svc in (self.follower, self.sampler, self.ckpt_service):
            if svc is not None:
                svc.stop()

    def close(self, run_dir: Path | None) -> None:
        """Stop following the run shown; a fresh state for ``run_dir`` (not loaded yet)."""
        for svc in (self.follower, self.ckpt_service):
            if svc is not None:
                svc.stop()
        self.follower = self.ckpt_service = None
        self.feed.drain()
        self.session.run_dir = run_dir
        self.state, self.rows = RunState(), []
        if self.sampler is not None:
            self.sampler.run_dir, self.sampler.disk_path = run_dir, self.disk_path()

    def load(self, run_dir: Path) -> None:
        """Read ``run_dir``'s history in a worker, then follow it; list its checkpoints."""
        self.loading = True
        self.ckpt_service = CheckpointService(run_dir, self._listed, self.verifier)
        self.ckpt_service.start()
        in_thread(self._app, "open", self.load_run, run_dir)

    def load_run(self, run_dir: Path) -> None:
        """Worker: the whole log into a fresh state; the follower goes on from there."""
        worker = get_current_worker()
        state = RunState()
        path = events_file(run_dir)
        follower = LogFollower(path, self._follower_batch(run_dir), polling=self.polling)
        stopped = lambda: worker.is_cancelled  # noqa: E731
        try:
            first = preview(path)
            if first.records and not stopped():
                self._app.post_message(HistoryPreview(run_dir, first))
            load_history(follower, state, stopped, build=build_in_child(stopped))
        except OSError as e:  # an unreadable log is shown, not fatal
            state.note_garbled(1, f"cannot read {events_file(run_dir)}: {e.strerror or e}")
        if not worker.is_cancelled:
            self._app.post_message(HistoryLoaded(run_dir, state, follower))

    def _follower_batch(self, run_dir: Path):
        def on_batch(records: Records, stats) -> None:  # the follower's thread
            if self.feed.put(records, stats):
                self._app.post_message(LogChanged(run_dir))

        return on_batch

    # ---- messages (the UI thread)

    def history_preview(self, msg: HistoryPreview) -> bool:
        """Show the log's end while the history loads; False when it no longer applies."""
        if msg.run_dir != self.session.run_dir or not self.loading:
            return False
        self.state = msg.state
        return True

    def history_loaded(self, msg: HistoryLoaded) -> bool:
        """Take the loaded state and start following; False when another run opened since."""
        if msg.run_dir != self.session.run_dir:
            return False
        self.state, self.follower, self.loading = msg.state, msg.follower, False
        msg.follower.start()
        return True

    def pid_to_state(self) -> None:
        """What the last system sample said of the PID file, into the state."""
        if self.pid is not None:
            self.state.set_pid_state(self.pid.state, self.pid.pid, self._pid_started())

    def log_changed(self, msg: LogChanged) -> None:
        if msg.run_dir != self.session.run_dir or self.loading:
            return
        for records, stats in self.feed.drain():
            apply_batch(self.state, records, stats)
        self._changed()

    def _pid_started(self) -> float | None:
        return self.pid.info.started if self.pid is not None and self.pid.info else None

    def _sampled(self, view: SystemView, pid: PidState) -> None:  # the sampler's thread
        rd = self.sampler.run_dir if self.sampler else None
        self._app.post_message(SystemSampled(view, pid, rd))

    def system_sampled(self, msg: SystemSampled) -> None:
        if msg.run_dir != self.session.run_dir:
            return
        first, pid_changed = self.system is None, msg.pid != self.pid
        self.system, self.pid = msg.view, msg.pid
        if not self.loading:
            self.state.set_pid_state(msg.pid.state, msg.pid.pid, self._pid_started())
        # The figures themselves are drawn by the app's next tick (each second, as they
        # are sampled): a redraw of its own for each sample doubled the idle CPU.
        if first or pid_changed:
            self._changed()

    def _listed(self, rows: list[CheckpointRow]) -> None:  # the checkpoint service's thread
        if self.ckpt_service is not None:
            self._app.post_message(CheckpointsListed(rows, self.ckpt_service.run_dir))

    def checkpoints_listed(self, msg: CheckpointsListed) -> None:
        if msg.run_dir == self.session.run_dir:
            self.rows = msg.rows
            self._changed()

    def new_checkpoint_seen(self) -> None:
        """A checkpoint event newer than the table: list and verify it now."""
        events = self.state.checkpoints.events
        if self.ckpt_service is not None and events and events[-1] is not self._last_ckpt_event:
            self._last_ckpt_event = events[-1]
            self.ckpt_service.poke()
