"""Validation panel: the latest validation losses and metrics, and the sample files."""

from __future__ import annotations

import os

from nal_tui.core.views import ValidationView
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fit import FitLines, Line, Part
from nal_tui.ui.widgets.fmt import fmt_value


def validation_lines(v: ValidationView | None, max_samples: int = 4) -> FitLines:
    if v is None:
        return FitLines.of([[Part("no validation yet", "dim")]])
    head = [Part(f"step {v.step:,}", "bold")]
    if v.duration:
        head.append(Part(f"  ({v.duration:.1f}s)", "dim", drop=1))
    lines: list[Line | list[Part]] = [head]
    rows = list(v.losses) + [(f"{g}:{k}", x) for g, mets in v.metrics for k, x in mets]
    for k, x in rows:
        lines.append(
            [Part(f"{k:<14}", "bold"),
             Part(f"{fmt_value(x):>10}", "bold red" if x != x else "")]
        )  # fmt: skip
    lines.append([Part(f"{len(v.samples)} sample(s)", "bold")])
    for s in v.samples[:max_samples]:
        lines.append([Part(f"  {os.path.basename(s)}", "cyan")])
    if len(v.samples) > max_samples:
        lines.append([Part(f"  … +{len(v.samples) - max_samples} more", "dim")])
    return FitLines.of(lines)


class ValidationPanel(TextPanel):
    def show(self, v: ValidationView | None) -> None:
        self.set_text(validation_lines(v))
