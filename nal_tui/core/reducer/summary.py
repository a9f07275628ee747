"""Two inputs of ``RunState`` besides plain records (mixed into it: ``self`` is the state):
block summaries of the binary index ``events.idx``, and validation records as views.

A block whose summary is enough (no restart, no milestone crossed, nothing an alert
detector must see row by row) is applied without its rows: its min/max bucket goes into
each loss series, its step/time span into progress, its sums into the G/D balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainer.events import schema as ev
from trainer.events.index import BlockInfo

from ..blocks import as_float
from ..text import clean
from ..views import ValidationView
from .present import LOSS_KEYS

MAX_METRICS = 32  # per validation set; a hostile record cannot grow the panel without end


def validation_view(rec: dict[str, Any]) -> ValidationView:
    """A ``val`` record as the validation panel shows it (strings cleaned, sizes capped).

    Every numeric metric is kept, known or not (non-finite ones as NaN/inf, null as NaN).
    """
    losses = tuple(
        (clean(k, 40), as_float(v)) for k, v in list(rec["losses"].items())[:MAX_METRICS]
    )
    metrics = rec.get("metrics") or {}
    group = clean(rec.get("set") or "val", 20) or "val"
    mets = tuple((clean(k, 40), as_float(v)) for k, v in list(metrics.items())[:MAX_METRICS])
    samples = tuple(clean(s, 200) for s in rec["samples"][:64])
    return ValidationView(
        rec["step"],
        float(rec.get("duration", 0.0)),
        losses,
        ((group, mets),) if mets else (),
        samples,
        group,
    )


def merge_sets(views: Sequence[ValidationView]) -> ValidationView | None:
    """The newest validation of each set, side by side ("val" first, then by name)."""
    if not views:
        return None
    newest: dict[str, ValidationView] = {}
    for v in views:
        newest[v.set] = v
    step = max(v.step for v in newest.values())
    order = sorted(newest, key=lambda k: (k != "val", k))
    main = newest.get("val") or views[-1]
    groups = []
    for name in order:
        v = newest[name]
        label = name if v.step == step else f"{name} @{v.step:,}"
        groups.append((label, v.metrics[0][1] if v.metrics else v.losses))
    return ValidationView(
        step,
        sum(v.duration for v in newest.values() if v.step == step),
        main.losses,
        tuple(groups) if any(v.metrics for v in newest.values()) else (),
        main.samples,
        main.set,
    )


class SummaryInput:
    """``summary_ok`` / ``feed_summary`` for the backlog loader (``core.loader``)."""

    def summary_ok(self, b: BlockInfo) -> bool:
        """Whether a block of the binary index can be applied from its summary alone."""
        p = self.progress
        if not b.n_steps:
            return True
        if p.step is not None and b.first_step <= p.step:
            return False  # a restart or a backwards jump: look at the rows
        if p.milestone_between(p.max_step or 0, b.last_step):
            return False
        return (
            self.nonfinite.summary_ok(b.finite)
            and not self.nonfinite.open
            and self.collapse.summary_ok(b.lo[LOSS_KEYS.index("d")])
        )

    def feed_summary(self, b: BlockInfo, before: Sequence[dict], after: Sequence[dict]) -> None:
        """Apply a block from its summary: ``before``/``after`` are its other records that
        come before its first / after its last step row (``summary_ok`` must hold)."""
        for rec in before:
            self._other(rec)
        if b.n_steps:
            self._after_start = False
            for k, tr in zip(LOSS_KEYS, self.losses.values(), strict=True):
                tr.clear_window()  # the newest values are in the summary, not the window
                i = LOSS_KEYS.index(k)
                bad = b.counts[i] < b.n_steps
                tr.series.add_bucket(b.first_step, b.last_step, b.lo[i], b.hi[i], bad, b.n_steps)
            self.progress.summary(b.first_step, b.last_step, b.t_first, b.t_last)
            self.nonfinite.summary()
            self.collapse.summary()
            adv, d = LOSS_KEYS.index("adv"), LOSS_KEYS.index("d")
            self.imbalance.add(
                b.window,
                (b.sums[adv], b.counts[adv], b.sums[d], b.counts[d]),
                (b.last_step, b.t_last),
            )
        for rec in after:
            self._other(rec)
        n = b.n_steps + len(before) + len(after)
        first = before[0][ev.K_TIME] if before else (b.t_first if b.n_steps else None)
        last = after[-1][ev.K_TIME] if after else (b.t_last if b.n_steps else first)
        self._seen(n, first, last)
