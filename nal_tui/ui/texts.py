"""Texts of the app itself: the welcome screen and the facts line of a small terminal."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from nal_tui.core.text import clean
from nal_tui.core.views import AlertsView, CheckpointRow, MilestonesView, SystemView, ValidationView
from nal_tui.ui.widgets.fit import FitLines, Part
from nal_tui.ui.widgets.fmt import fmt_bytes, fmt_value


def welcome_text(
    problem: str, config: Path, checks: Text | str, run_dir: Path | None = None
) -> Text:
    """No run to show: why, what a start would do (config, run dir, preflight), the keys."""
    t = Text()
    p = clean(problem)
    # Capitalise a sentence, never a path ("logs/x does not exist").
    first = p.split(" ", 1)[0]
    t.append(f"{p if '/' in first else p[:1].upper() + p[1:]}.", style="bold")
    # The keys first, so they stay in view on a small terminal above a long preflight.
    t.append("\nPress ")
    t.append(" s ", style="bold reverse")
    t.append(" to start training with this config (you confirm first), ")
    t.append(" o ", style="bold reverse")
    t.append(" to open another run, ")
    t.append(" ? ", style="bold reverse")
    t.append(" for every key.\n")
    t.append("\nConfig  ", style="bold")
    t.append(f"{clean(config)}\n")
    if run_dir is not None:
        t.append("Run dir ", style="bold")
        t.append(f"{clean(run_dir)} (a start creates it)\n")
    t.append("\nPreflight\n", style="bold")
    t.append_text(checks if isinstance(checks, Text) else Text(str(checks), style="dim"))
    return t


def facts_lines(
    val: ValidationView | None,
    rows: list[CheckpointRow],
    ms: MilestonesView,
    sysv: SystemView | None,
    alerts: AlertsView,
) -> FitLines:
    """The key facts of the panels a small terminal has no room for, one line each."""
    v: list[Part] = [Part("val  ", "bold")]
    if val is None:
        v.append(Part("none yet", "dim"))
    else:
        v.append(Part(f"step {val.step:,}"))
        shown = val.metrics[0][1] if val.metrics else val.losses
        v += [Part(f"  {k} {fmt_value(x)}", drop=1 + i) for i, (k, x) in enumerate(shown)]
        v.append(Part(f"  {len(val.samples)} samples", "dim", drop=9))
    latest = next((r for r in rows if r.latest), None)
    checking = latest is None and any(r.verified is None for r in rows)
    c = [
        Part("ckpt ", "bold"),
        Part(f"{len(rows)} on disk, ", drop=2),
        Part("latest verified " + (f"@{latest.step:,}" if latest else "…" if checking else "none")),
    ]
    nxt = next((m for m in ms.rows if m.t is None), None)
    if nxt is not None:
        c.append(Part(f"  next milestone @{nxt.step:,}", "dim", drop=3))
    s: list[Part] = [Part("sys  ", "bold")]
    if sysv is not None:
        s.append(Part(f"CPU {sysv.cpu_pct:.0f}%  ", drop=2))
        s.append(Part(f"mem {fmt_bytes(sysv.mem_used)}  ", drop=3))
        if sysv.disk_free is not None:
            s.append(Part(f"disk {fmt_bytes(sysv.disk_free)} free  ", drop=2))
    n = len(alerts.rows) + alerts.dropped
    s += [Part("alerts ", "bold"), Part(str(n), "bold red" if n else "green")]
    if alerts.rows:
        s.append(Part(f" last: {alerts.rows[-1].kind}", "yellow", drop=1))
    return FitLines.of([v, c, s])
