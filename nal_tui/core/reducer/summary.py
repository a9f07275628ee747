"""Block summaries of the binary index ``events.idx`` as an input of the run state.

A block whose summary is enough (no restart, no milestone crossed, nothing an alert
detector must see row by row) is applied without its rows: its min/max bucket goes into
each loss series, its step/time span into progress, its sums into the G/D balance.
"""

from __future__ import annotations

from collections.abc import Mapping

from nal_tui.core.reducer.detectors import CollapseDetector, ImbalanceDetector, NonfiniteDetector
from nal_tui.core.reducer.losses import LossTrack
from nal_tui.core.reducer.progress import Progress
from trainer.events.index import BlockInfo
from trainer.events.schema import LOSS_KEYS

_D, _ADV = LOSS_KEYS.index("d"), LOSS_KEYS.index("adv")


def summary_ok(
    b: BlockInfo, progress: Progress, nonfinite: NonfiniteDetector, collapse: CollapseDetector
) -> bool:
    """Whether a block of the binary index can be applied from its summary alone."""
    p = progress
    if not b.n_steps:
        return True
    if p.step is not None and b.first_step <= p.step:
        return False  # a restart or a backwards jump: look at the rows
    if p.milestone_between(p.max_step or 0, b.last_step):
        return False
    return nonfinite.summary_ok(b.finite) and not nonfinite.open and collapse.summary_ok(b.lo[_D])


def apply_summary(
    b: BlockInfo,
    losses: Mapping[str, LossTrack],
    progress: Progress,
    nonfinite: NonfiniteDetector,
    collapse: CollapseDetector,
    imbalance: ImbalanceDetector,
) -> None:
    """A block's step rows, from its summary (``summary_ok`` must hold; ``b.n_steps`` > 0)."""
    for i, k in enumerate(LOSS_KEYS):
        tr = losses[k]
        tr.clear_window()  # the newest values are in the summary, not the window
        bad = b.counts[i] < b.n_steps
        tr.series.add_bucket(b.first_step, b.last_step, b.lo[i], b.hi[i], bad, b.n_steps)
    progress.summary(b.first_step, b.last_step, b.t_first, b.t_last)
    nonfinite.summary()
    collapse.summary()
    imbalance.add(
        b.window,
        (b.sums[_ADV], b.counts[_ADV], b.sums[_D], b.counts[_D]),
        (b.last_step, b.t_last),
    )
