"""Block summaries of the binary index ``events.idx`` as an input of the run state.

A block whose summary is enough (no restart, no milestone crossed, nothing an alert
detector must see row by row) is applied without its rows: its min/max bucket goes into
each loss series, its step/time span into progress, its sums into the G/D balance.
"""

from __future__ import annotations

from typing import Protocol

from nal_tui.core.reducer.detectors import (
    CollapseDetector,
    GradSpikeDetector,
    ImbalanceDetector,
    NonfiniteDetector,
)
from nal_tui.core.reducer.losses import LossTrack
from nal_tui.core.reducer.progress import Progress
from trainer.events.index import BlockInfo
from trainer.events.schema import LOSS_KEYS, SERIES_KEYS

_D, _ADV = LOSS_KEYS.index("d"), LOSS_KEYS.index("adv")
_GN_G, _GN_D = SERIES_KEYS.index("grad_norm_g"), SERIES_KEYS.index("grad_norm_d")


class Tracks(Protocol):
    """The run state's series: ``losses`` by LOSS_KEYS and ``opt`` by OPT_KEYS, and the
    gradient-spike detector."""

    losses: dict[str, LossTrack]
    opt: dict[str, LossTrack]
    spike: GradSpikeDetector


def summary_ok(
    b: BlockInfo,
    progress: Progress,
    nonfinite: NonfiniteDetector,
    collapse: CollapseDetector,
    spike: GradSpikeDetector,
) -> bool:
    """Whether a block of the binary index can be applied from its summary alone."""
    p = progress
    if not b.n_steps:
        return True
    if p.step is not None and b.first_step <= p.step:
        return False  # a restart or a backwards jump: look at the rows
    if p.milestone_between(p.max_step or 0, b.last_step):
        return False
    return (
        nonfinite.summary_ok(b.finite)
        and not nonfinite.open
        and collapse.summary_ok(b.lo[_D])
        and spike.summary_ok(b.hi[_GN_G], b.hi[_GN_D])
    )


def apply_summary(
    b: BlockInfo,
    tracks: Tracks,
    progress: Progress,
    nonfinite: NonfiniteDetector,
    collapse: CollapseDetector,
    imbalance: ImbalanceDetector,
) -> None:
    """A block's step rows, from its summary (``summary_ok`` must hold; ``b.n_steps`` > 0)."""
    for i, k in enumerate(SERIES_KEYS):
        tr = tracks.losses.get(k) or tracks.opt[k]
        tr.clear_window()  # the newest values are in the summary, not the window
        if k in tracks.losses:
            bad = b.counts[i] < b.n_steps
            tr.add_bucket(b.first_step, b.last_step, b.lo[i], b.hi[i], bad, b.n_steps)
        elif b.counts[i]:  # an optimiser figure: its absent values are no points
            tr.add_bucket(b.first_step, b.last_step, b.lo[i], b.hi[i], False, b.counts[i])
    progress.summary(b.first_step, b.last_step, b.t_first, b.t_last)
    nonfinite.summary()
    collapse.summary()
    imbalance.add(
        b.window,
        (b.sums[_ADV], b.counts[_ADV], b.sums[_D], b.counts[_D]),
        (b.last_step, b.t_last),
    )
    tracks.spike.summary(
        b.window, ((b.sums[_GN_G], b.counts[_GN_G]), (b.sums[_GN_D], b.counts[_GN_D]))
    )
