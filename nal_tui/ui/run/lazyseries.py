"""Selecting a series whose group is not built yet (the optimiser's: learning rates and
gradient norms are lazy in ``RunState``): their series are built on a worker thread from a
snapshot of what they were fed, put in place on the UI thread (with whatever the run
appended meanwhile), and only then is the selection moved, so the UI never waits on it."""

from __future__ import annotations

from collections.abc import Callable

from nal_tui.core.reducer.losses import LossTrack, build_pending
from nal_tui.core.reducer.state import RunState
from nal_tui.core.vocab import SERIES_KEYS
from nal_tui.ui.host import WorkHost, in_thread
from nal_tui.ui.run.dashboard import group_keys


def build_aside(
    host: WorkHost, tracks: list[LossTrack], done: Callable[[], None], group: str = "series"
) -> None:
    """Build ``tracks``' series on a worker thread, put them in place on the UI thread (with
    what was appended meanwhile), then call ``done`` there."""
    snaps = [(t, t.pending()) for t in tracks]

    def build() -> None:
        built = [(t, build_pending(ops), len(ops)) for t, ops in snaps]
        host.call_from_thread(install, built)

    def install(built: list) -> None:
        for track, series, used in built:
            track.install(series, used)
        done()

    in_thread(host, group, build)


def unbuilt(state: RunState, i: int) -> list[LossTrack]:
    """The tracks shown with series ``i`` (its group) whose series are not built yet."""
    tracks = (state.track(k) for k in group_keys(SERIES_KEYS[i]))
    return [t for t in tracks if t is not None and not t.ready]


class SeriesBuilder:
    """Builds a selection's group off the UI thread, then calls ``select(i)``."""

    def __init__(
        self, host: WorkHost, state: Callable[[], RunState], select: Callable[[int], None]
    ):
        self.host, self.state, self.select = host, state, select
        self.wanted: int | None = None
        """The selection waiting for its series (the newest key pressed), None when idle."""

    def request(self, i: int) -> bool:
        """Select ``i`` once its group is built; False when it is built already (select now)."""
        tracks = unbuilt(self.state(), i)
        if not tracks:
            self.wanted = None
            return False
        busy, self.wanted = self.wanted is not None, i
        if not busy:
            build_aside(self.host, tracks, self._built)
        return True

    def _built(self) -> None:
        i, self.wanted = self.wanted, None
        if i is not None and not self.request(i):  # another state meanwhile: built for it too
            self.select(i)
