"""Texts of the app itself: the welcome screen and the facts line of a small terminal."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from nal_tui.core.text import clean
from nal_tui.core.views import AlertsView, CheckpointRow, MilestonesView, SystemView, ValidationView
from nal_tui.ui.widgets.fmt import fmt_bytes, fmt_value


def welcome_text(problem: str, config: Path, checks: Text | str) -> Text:
    t = Text()
    p = clean(problem)
    t.append(f"{p[:1].upper()}{p[1:]}.", style="bold")
    t.append("\n\nConfig  ", style="bold")
    t.append(f"{clean(config)}\n\n")
    t.append("Preflight\n", style="bold")
    t.append_text(checks if isinstance(checks, Text) else Text(str(checks), style="dim"))
    t.append("\n\nPress ")
    t.append(" s ", style="bold reverse")
    t.append(" to start training with this config (you confirm first), ")
    t.append(" o ", style="bold reverse")
    t.append(" to open another run, ")
    t.append(" ? ", style="bold reverse")
    t.append(" for every key.")
    return t


def facts_text(
    val: ValidationView | None,
    rows: list[CheckpointRow],
    ms: MilestonesView,
    sysv: SystemView | None,
    alerts: AlertsView,
) -> Text:
    """The key facts of the panels a small terminal has no room for, one line each."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("val  ", style="bold")
    if val is None:
        t.append("none yet", style="dim")
    else:
        t.append(f"step {val.step:,} ")
        t.append("  ".join(f"{k} {fmt_value(v)}" for k, v in val.losses[:3]))
        t.append(f"  {len(val.samples)} samples", style="dim")
    t.append("\nckpt ", style="bold")
    ok = [r for r in rows if r.verified and not r.abandoned]
    t.append(f"{len(rows)} on disk, latest verified " + (f"@{ok[0].step:,}" if ok else "none"))
    nxt = next((m for m in ms.rows if m.t is None), None)
    if nxt is not None:
        t.append(f"  next milestone @{nxt.step:,}", style="dim")
    t.append("\nsys  ", style="bold")
    if sysv is not None:
        t.append(f"CPU {sysv.cpu_pct:.0f}%  mem {fmt_bytes(sysv.mem_used)}")
        if sysv.disk_free is not None:
            t.append(f"  disk {fmt_bytes(sysv.disk_free)} free")
    n = len(alerts.rows) + alerts.dropped
    t.append("  alerts ", style="bold")
    t.append(str(n), style="bold red" if n else "green")
    if alerts.rows:
        a = alerts.rows[-1]
        t.append(f" last: {a.kind}", style="yellow")
    return t
