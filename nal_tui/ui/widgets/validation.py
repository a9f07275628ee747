"""Validation panel: the latest validation losses and metrics, and the sample files."""

from __future__ import annotations

import os

from rich.text import Text

from nal_tui.core.views import ValidationView
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fmt import fmt_value


def validation_text(v: ValidationView | None, max_samples: int = 4) -> Text:
    if v is None:
        return Text("no validation yet", style="dim")
    t = Text()
    t.append(f"step {v.step:,}", style="bold")
    if v.duration:
        t.append(f"  ({v.duration:.1f}s)", style="dim")
    rows = list(v.losses) + [(f"{g}:{k}", x) for g, mets in v.metrics for k, x in mets]
    for k, x in rows:
        t.append(f"\n{k[:20]:<14}", style="bold")
        t.append(f"{fmt_value(x):>10}", style="bold red" if x != x else "")
    t.append(f"\n{len(v.samples)} sample(s)", style="bold")
    for s in v.samples[:max_samples]:
        t.append(f"\n  {os.path.basename(s)}", style="cyan")
    if len(v.samples) > max_samples:
        t.append(f"\n  … +{len(v.samples) - max_samples} more", style="dim")
    return t


class ValidationPanel(TextPanel):
    def show(self, v: ValidationView | None) -> None:
        self.set_text(validation_text(v))
