"""The facts panel of a small terminal: the panels it has no room for, one line each."""

from __future__ import annotations

from nal_tui.core.reducer.views import (
    AlertsView,
    CheckpointRow,
    MilestonesView,
    SystemView,
    ValidationView,
)
from nal_tui.ui.run.gpu import gpu_summary
from nal_tui.ui.widgets.fit import FitLines, Part
from nal_tui.ui.widgets.fmt import fmt_bytes, fmt_value


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
        if sysv.gpu is not None:
            s += gpu_summary(sysv.gpu)
        s.append(Part(f"mem {fmt_bytes(sysv.mem_used)}  ", drop=3))
        if sysv.disk_free is not None:
            s.append(Part(f"disk {fmt_bytes(sysv.disk_free)} free  ", drop=2))
    n = len(alerts.rows) + alerts.dropped
    s += [Part("alerts ", "bold"), Part(str(n), "bold red" if n else "green")]
    if alerts.rows:
        s.append(Part(f" last: {alerts.rows[-1].kind}", "yellow", drop=1))
    return FitLines.of([v, c, s])
