"""Records in column form: a stretch of the log as step columns plus the other records.

Step records are most of a log. The reducer folds them as ``array`` columns (step, time,
the five losses, the optimiser's figures) rather than one dict at a time; the other records (run_start, val,
checkpoint, ...) keep their position among the steps.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from trainer.events import schema as ev

TAIL = 20  # newest step records a block keeps whole (epoch, rates, recon name)
_STEP = ev.Step.EVENT
_G_STEP, _G_T = itemgetter("step"), itemgetter(ev.K_TIME)
_G_LOSSES = tuple(itemgetter(k) for k in ev.LOSS_KEYS)
_G_OPT = tuple(itemgetter(k) for k in ev.OPT_KEYS)
_NLOSS = len(ev.LOSS_KEYS)
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def as_float(v: Any) -> float:
    """``trainer.events.float_field`` for a bare value."""
    if v.__class__ in (float, int):
        return float(v)
    return _NONFINITE.get(v, math.nan) if isinstance(v, str) else math.nan


@dataclass
class StepBlock:
    """A stretch of validated records in log order: step rows as columns plus the rest."""

    steps: array = field(default_factory=lambda: array("q"))
    ts: array = field(default_factory=lambda: array("d"))
    losses: list[array] = field(default_factory=lambda: [array("d") for _ in ev.LOSS_KEYS])
    # By OPT_KEYS: learning rates and gradient norms (NaN where a norm is absent).
    opt: list[array] = field(default_factory=lambda: [array("d") for _ in ev.OPT_KEYS])
    finite: bool = True  # every loss value is finite
    others: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (rows before, rec)
    tail: list[dict[str, Any]] = field(default_factory=list)  # newest step records
    records: int = 0
    first_t: float | None = None
    last_t: float | None = None

    def __len__(self) -> int:
        return len(self.steps)


def _add_steps(b: StepBlock, recs: Sequence[dict[str, Any]]) -> None:
    b.steps.extend(map(_G_STEP, recs))
    b.ts.extend(map(float, map(_G_T, recs)))
    for out, get in zip(b.losses, _G_LOSSES, strict=True):
        try:
            a = array("d", map(get, recs))
        except TypeError:  # "nan"/"inf" strings from the writer
            a = array("d", map(as_float, map(get, recs)))
        s = sum(a)
        if s - s != 0.0:
            b.finite = False
        out.extend(a)
    for out, k, get in zip(b.opt, ev.OPT_KEYS, _G_OPT, strict=True):
        try:
            out.extend(array("d", map(get, recs)))
        except (TypeError, KeyError):  # an absent gradient norm (None or no key)
            out.extend(array("d", (as_float(r.get(k)) for r in recs)))
    b.tail = (b.tail + list(recs[-TAIL:]))[-TAIL:]


def block_from_records(records: Sequence[dict[str, Any]]) -> StepBlock:
    """Validated records (``trainer.events.parse_line``) as one block, in their order."""
    b = StepBlock()
    recs = list(records)
    if not recs:
        return b
    run_start = 0
    for i, rec in enumerate(recs):
        if rec[ev.K_EVENT] != _STEP:
            if i > run_start:
                _add_steps(b, recs[run_start:i])
            b.others.append((len(b.steps), rec))
            run_start = i + 1
    if run_start < len(recs):
        _add_steps(b, recs[run_start:])
    b.records = len(recs)
    b.first_t = float(recs[0][ev.K_TIME])
    b.last_t = float(recs[-1][ev.K_TIME])
    return b


def columns_block(
    steps: array, ts: array, series: list[array], finite: bool | None = None
) -> StepBlock:
    """A block of step rows only, from columns (the binary index's payload: one column
    per ``SERIES_KEYS``, the losses first)."""
    losses, opt = series[:_NLOSS], series[_NLOSS:]
    if finite is None:
        finite = all((s := sum(c)) - s == 0.0 for c in losses)
    b = StepBlock(steps=steps, ts=ts, losses=losses, opt=opt, finite=finite)
    b.records = len(steps)
    if len(ts):
        b.first_t, b.last_t = ts[0], ts[-1]
    return b
