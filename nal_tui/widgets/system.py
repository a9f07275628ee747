"""System panel (CPU, memory, disk, trainer process) and the thread that samples it."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
from rich.text import Text

from nal_tui.messages import SystemSample
from nal_tui.widgets.base import TextPanel

ProcFinder = Callable[[], "tuple[bool | None, int | None, str]"]


def fmt_bytes(n: float | None) -> str:
    """Bytes as a short human string (KiB/MiB/GiB/TiB)."""
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class SystemSampler:
    """Samples psutil about once a second in its own thread and hands each sample on.

    ``find_proc`` returns (alive, pid, note) for the run's verified trainer process; it is
    called from the sampler thread so PID-file reads never block the UI.
    """

    def __init__(
        self,
        disk_path: Path,
        find_proc: ProcFinder,
        on_sample: Callable[[SystemSample], None],
        interval: float = 1.0,
    ) -> None:
        self.disk_path = disk_path
        self.find_proc = find_proc
        self.on_sample = on_sample
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: psutil.Process | None = None

    def start(self) -> None:
        psutil.cpu_percent(interval=None)  # primes the system-wide counter
        self._thread = threading.Thread(target=self._loop, name="nal-tui-system", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.on_sample(self.sample())
            except Exception:  # noqa: BLE001 - a failed sample must not kill the panel thread
                pass
            self._stop.wait(self.interval)

    def _disk(self) -> tuple[int | None, int | None]:
        p = self.disk_path
        while not p.exists() and p != p.parent:  # the run dir may not exist yet
            p = p.parent
        try:
            du = shutil.disk_usage(p)
        except OSError:
            return None, None
        return du.free, du.total

    def sample(self) -> SystemSample:
        """One sample (also used directly by tests)."""
        vm = psutil.virtual_memory()
        free, total = self._disk()
        s = SystemSample(
            cpu_pct=psutil.cpu_percent(interval=None),
            mem_used=vm.total - vm.available,
            mem_total=vm.total,
            disk_free=free,
            disk_total=total,
        )
        alive, pid, note = self.find_proc()
        s.proc_alive, s.proc_pid, s.proc_note = alive, pid, note
        if alive and pid is not None:
            try:
                if self._proc is None or self._proc.pid != pid:
                    self._proc = psutil.Process(pid)
                    self._proc.cpu_percent(interval=None)
                with self._proc.oneshot():
                    s.proc_cpu_pct = self._proc.cpu_percent(interval=None)
                    s.proc_rss = self._proc.memory_info().rss
                children = self._proc.children(recursive=True)
                s.proc_children = len(children)
                for c in children:  # DDP ranks and DataLoader workers count toward the run
                    try:
                        s.proc_rss += c.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                self._proc = None
        return s


class SystemPanel(TextPanel):
    FIXED = True

    """Renders the latest SystemSample."""

    def show(self, s: SystemSample | None) -> None:
        self.set_text(system_text(s))


def _pct_style(p: float) -> str:
    return "red" if p >= 90 else "yellow" if p >= 75 else "green"


def system_text(s: SystemSample | None) -> Text:
    """The panel's text for a sample (None before the first one)."""
    if s is None:
        return Text("sampling…", style="dim")
    t = Text()
    ncpu = os.cpu_count() or 1
    t.append("CPU   ", style="bold")
    t.append(f"{s.cpu_pct:5.1f}%", style=_pct_style(s.cpu_pct))
    t.append(f" of {ncpu} cores\n")
    mem_pct = 100 * s.mem_used / s.mem_total if s.mem_total else 0.0
    t.append("Mem   ", style="bold")
    t.append(f"{fmt_bytes(s.mem_used)} / {fmt_bytes(s.mem_total)}", style=_pct_style(mem_pct))
    t.append("\nDisk  ", style="bold")
    if s.disk_free is None:
        t.append("?", style="dim")
    else:
        used_pct = 100 * (1 - s.disk_free / s.disk_total) if s.disk_total else 0.0
        t.append(f"{fmt_bytes(s.disk_free)} free", style=_pct_style(used_pct))
    t.append("\nProc  ", style="bold")
    if s.proc_alive and s.proc_pid is not None:
        cpu = "?" if s.proc_cpu_pct is None else f"{s.proc_cpu_pct:.0f}%"
        t.append(f"pid {s.proc_pid}  CPU {cpu}  RSS {fmt_bytes(s.proc_rss)}")
        if s.proc_children:
            t.append(f"  (+{s.proc_children} child)", style="dim")
    else:
        t.append(s.proc_note or "no trainer process", style="dim")
    return t
