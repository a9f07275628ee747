"""System panel: CPU, memory, disk and the trainer process (a SystemView)."""

from __future__ import annotations

from rich.text import Text

from nal_tui.core.reducer.views import SystemView
from nal_tui.core.text import clean
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fmt import fmt_bytes, pct_style


def system_text(s: SystemView | None) -> Text:
    if s is None:
        return Text("sampling…", style="dim")
    t = Text()
    t.append("CPU  ", style="bold")
    t.append(f"{s.cpu_pct:5.1f}%", style=pct_style(s.cpu_pct))
    t.append(f" of {s.cores} cores\n")
    mem_pct = 100 * s.mem_used / s.mem_total if s.mem_total else 0.0
    t.append("Mem  ", style="bold")
    t.append(f"{fmt_bytes(s.mem_used)} / {fmt_bytes(s.mem_total)}", style=pct_style(mem_pct))
    t.append("\nDisk ", style="bold")
    if s.disk_free is None:
        t.append("?", style="dim")
    else:
        used = 100 * (1 - s.disk_free / s.disk_total) if s.disk_total else 0.0
        t.append(f"{fmt_bytes(s.disk_free)} free", style=pct_style(used))
    t.append("\nProc ", style="bold")
    if s.proc_state == "live" and s.proc_pid is not None:
        cpu = "?" if s.proc_cpu_pct is None else f"{s.proc_cpu_pct:.0f}%"
        t.append(f"pid {s.proc_pid} CPU {cpu} RSS {fmt_bytes(s.proc_rss)}")
        if s.proc_children:
            t.append(f" (+{s.proc_children})", style="dim")
    else:
        t.append(s.proc_note or "no trainer process", style="dim")
    if s.threads is not None:
        t.append("\nThr  ", style="bold")
        t.append(f"{s.threads} per process" + (" (auto)" if s.threads_auto else ""))
    if s.busy:
        b = s.busy[0]
        t.append("\nBusy ", style="bold")
        t.append(f"{clean(b.name, 40)} (pid {b.pid}) {b.cpu_pct:.0f}%", style="yellow")
        if len(s.busy) > 1:
            t.append(f" +{len(s.busy) - 1}", style="dim yellow")
    return t


class SystemPanel(TextPanel):
    def show(self, s: SystemView | None) -> None:
        self.set_text(system_text(s))
