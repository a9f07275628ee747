"""Validation panel: the latest validation losses and the sample files written."""

from __future__ import annotations

import os
from typing import Any

from rich.text import Text

from nal_tui.widgets.base import TextPanel
from nal_tui.widgets.chart import fmt_value


def validation_text(val: Any, max_samples: int = 4) -> Text:
    """Text for the latest validation record (None before the first one)."""
    if val is None:
        return Text("no validation yet", style="dim")
    t = Text()
    t.append(f"step {val.step:,}", style="bold")
    dur = getattr(val, "duration", None)
    if dur:
        t.append(f"  ({dur:.1f}s)", style="dim")
    t.append("\n")
    for k, v in sorted(val.losses.items()):
        bad = v is None or v != v
        t.append(f"{k:<12}", style="bold")
        t.append(
            f"{fmt_value(v) if v is not None else '--':>10}\n", style="bold red" if bad else ""
        )
    samples = list(val.samples)
    t.append(f"{len(samples)} sample(s)", style="bold")
    for s in samples[:max_samples]:
        t.append(f"\n  {os.path.basename(str(s))}", style="cyan")
    if len(samples) > max_samples:
        t.append(f"\n  … +{len(samples) - max_samples} more", style="dim")
    if samples:
        t.append(f"\n  in {os.path.dirname(str(samples[0])) or '.'}", style="dim")
    return t


class ValidationPanel(TextPanel):
    def show(self, state: Any) -> None:
        self.set_text(validation_text(state.val))
