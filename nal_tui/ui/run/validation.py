"""Validation panel: the newest validation of each set (val, unseen, ...) side by side,
every numeric metric it reports (known or not), and the sample files."""

from __future__ import annotations

import os

from nal_tui.core.reducer.validation import HIGHER, LOWER, value_label
from nal_tui.core.reducer.views import ValidationView
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fit import FitLines, Line, Part
from nal_tui.ui.widgets.fmt import fmt_value

# Known metrics first, in this order (trainer.events METRIC_*); any other after, by name.
ORDER = ("mel_l1", "mstft", "pesq", "stoi", "composite")
MAX_SETS = 4
NAME_W = 10  # at least; the longest label in use sets it


def _order(names: list[str]) -> list[str]:
    known = [n for n in ORDER if n in names]
    return known + sorted(n for n in names if n not in ORDER)


def _cell(x: float | None, w: int) -> Part:
    bad = x is None or x != x or x in (float("inf"), float("-inf"))
    return Part(f"{fmt_value(x):>{w}}", "bold red" if bad else "")


def validation_lines(v: ValidationView | None, max_samples: int = 4) -> FitLines:
    if v is None:
        return FitLines.of([[Part("no validation yet", "dim")]])
    head = [Part(f"step {v.step:,}", "bold")]
    if v.duration:
        head.append(Part(f"  ({v.duration:.1f}s)", "dim", drop=1))
    lines: list[Line | list[Part]] = [head]
    groups = list(v.metrics[:MAX_SETS]) or [(v.set, v.losses)]
    values = [dict(mets) for _, mets in groups]
    if v.metrics:  # losses the metrics do not already show (the reconstruction loss)
        extra = [(k, x) for k, x in v.losses if k not in values[0]]
        values[0].update(extra)
    names = _order(list(dict.fromkeys(k for d in values for k in d)))
    metric_keys = {k for _, mets in v.metrics for k, _ in mets}
    loss_keys = {k for k, _ in v.losses} - metric_keys
    labels = {}
    for k in names:
        label, better = value_label(k, is_loss=k in loss_keys)
        labels[k] = f"{label} {better}" if better else label
    name_w = max([NAME_W] + [len(x) + 1 for x in labels.values()])
    w = max([9] + [len(label) for label, _ in groups])
    if len(groups) > 1 or v.metrics:
        lines.append(
            [Part(" " * name_w)]
            + [
                Part(f" {label:>{w}}", "bold cyan", drop=1 + i)
                for i, (label, _) in enumerate(groups)
            ]
        )
    for k in names:
        row = [Part(f"{labels[k]:<{name_w}}", "bold")]
        for i, d in enumerate(values):
            row.append(Part(" ", drop=1 + i))
            row.append(
                _cell(d.get(k), w) if k in d else Part(f"{'-':>{w}}", "dim")
            )  # fmt: skip
            if i:
                row[-1] = Part(row[-1].text, row[-1].style, drop=1 + i)
        lines.append(row)
    if any(b for b in labels.values() if b.endswith((LOWER, HIGHER))):
        lines.append([Part(f"{LOWER} lower is better  {HIGHER} higher is better", "dim", drop=3)])
    lines.append([Part(f"{len(v.samples)} sample(s)", "bold")])
    for s in v.samples[:max_samples]:
        # Generated and ground-truth clips share names: their folder tells them apart.
        folder = os.path.basename(os.path.dirname(s))
        name = os.path.basename(s)
        lines.append([Part(f"  {folder}/" if folder else "  ", "dim"), Part(name, "cyan")])
    if len(v.samples) > max_samples:
        lines.append([Part(f"  … +{len(v.samples) - max_samples} more", "dim")])
    return FitLines.of(lines)


class ValidationPanel(TextPanel):
    def show(self, v: ValidationView | None) -> None:
        self.set_text(validation_lines(v))
