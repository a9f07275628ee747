"""Background services with callbacks: checkpoint verification and system sampling.

Each runs in its own daemon thread and reports through a callback (the dashboard posts a
message from it); ``stop()`` ends the thread. No widget does file or process IO.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from nal_tui.core.control import proc
from nal_tui.core.control.rundir import config_file
from nal_tui.core.gpu import GpuSampler
from nal_tui.core.reducer.views import CheckpointRow, SystemView
from nal_tui.core.text import clean
from nal_tui.core.vocab import PID_LIVE
from trainer.config.schema import ConfigError
from trainer.config.threads import BusyMeter, resolve_threads
from trainer.rundir.checkpoints import (
    CheckpointInfo,
    list_abandoned,
    list_checkpoints,
    verify_checkpoint,
)
from trainer.rundir.layout import CheckpointError
from trainer.rundir.resolve import latest_checkpoint

DELETED = "deleted"


class CachedVerifier:
    """``rundir.verify_checkpoint`` with results cached by (path, size, mtime): a re-check
    of an unchanged file is a stat. Thread-safe; pass it wherever a verify is taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, int, int], tuple[bool, str]] = {}

    def _key(self, info: CheckpointInfo) -> tuple[str, int, int] | None:
        try:
            st = info.path.stat()
        except OSError:
            return None
        return (str(info.path), st.st_size, st.st_mtime_ns)

    def cached(self, info: CheckpointInfo) -> tuple[bool, str] | None:
        key = self._key(info)
        with self._lock:
            return self._cache.get(key) if key is not None else None

    def __call__(self, info: CheckpointInfo) -> tuple[bool, str]:
        key = self._key(info)
        if key is None:
            return False, DELETED
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        try:
            res = verify_checkpoint(info)
        except (OSError, CheckpointError) as e:
            res = (False, str(e))
        with self._lock:
            self._cache[key] = res
        return res


BUSY_EVERY_S = 5.0  # how often the sampler looks at the other processes (each look reads them all)
SETTLE_S = 15.0  # an incomplete checkpoint touched this recently is being saved or deleted


def in_flux(info: CheckpointInfo, now: float | None = None) -> bool:
    """Whether an incomplete checkpoint is a save or a retention deletion under way: a file
    of it (the .pt or a temp file; a rename counts, through ctime) changed within SETTLE_S,
    or vanished while we looked. Retention renames the manifest to a temp file before it
    unlinks the rest, so for a moment a doomed checkpoint reads as an interrupted save."""
    now = time.time() if now is None else now
    for p in (info.path, *info.temp_files):
        try:
            st = p.stat()
        except FileNotFoundError:
            if p != info.path:
                return True
            continue
        except OSError:
            continue
        if now - max(st.st_mtime, st.st_ctime) < SETTLE_S:
            return True
    return False


def _rel(path: Path, run_dir: Path) -> str:
    try:
        return str(path.relative_to(run_dir))
    except ValueError:
        return str(path)


def _short_reason(reason: str) -> str:
    if reason.startswith(("/", ".")) and ": " in reason:
        reason = reason.split(": ", 1)[1]
    return clean(reason or "failed", 80)


class CheckpointService:
    """Lists the run's checkpoints on disk and verifies them, newest first, one at a time.

    ``on_rows(rows)`` gets the whole table whenever it changes: the live branch newest
    first, then the abandoned branches' checkpoints (newest first). Rows come from the
    disk, so a deleted checkpoint leaves the table. The row marked ``latest`` is
    ``trainer.rundir.latest_checkpoint`` with this service's cached verifier, once the
    scan has verified what it needs. Re-scans every ``interval`` seconds, or at once after
    ``poke()``.
    """

    def __init__(
        self,
        run_dir: Path,
        on_rows: Callable[[list[CheckpointRow]], None],
        verifier: CachedVerifier | None = None,
        interval: float = 5.0,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.on_rows = on_rows
        self.verifier = verifier or CachedVerifier()
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nal-checkpoints", daemon=True)
        self._last: list[CheckpointRow] | None = None
        self._latest: str | None = None  # path of the latest verified, from the last scan
        self._flux = False  # the last scan saw a checkpoint being saved or deleted

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _infos(self) -> list[CheckpointInfo]:
        def newest_first(infos):
            return sorted(infos, key=lambda i: (i.step, str(i.path)), reverse=True)

        return newest_first(list_checkpoints(self.run_dir)) + newest_first(
            list_abandoned(self.run_dir)
        )

    def _row(self, info: CheckpointInfo, verified: tuple[bool, str] | None):
        ok, why = verified if verified is not None else (None, "")
        if not info.complete:
            if in_flux(info):  # a save or a retention deletion under way: not a failure
                self._flux = True
                ok, why = None, ""
            else:
                ok, why = False, info.reason
        return CheckpointRow(
            step=info.step,
            path=_rel(info.path, self.run_dir),
            t=info.created,
            bytes=info.bytes,
            milestone=info.milestone,
            verified=ok,
            reason=_short_reason(why) if ok is False else "",
            abandoned=info.abandoned,
            latest=str(info.path) == self._latest,
        )

    def _emit(self, rows: list[CheckpointRow]) -> None:
        if rows != self._last:
            self._last = rows
            self.on_rows(rows)

    def scan_once(self) -> list[CheckpointRow]:
        """List, show what is known, verify the rest (newest first), mark the latest
        verified by the one definition, show again."""
        infos = self._infos()
        self._flux = False
        known = {id(i): self.verifier.cached(i) for i in infos}
        self._emit([self._row(i, known[id(i)]) for i in infos])
        todo = [i for i in infos if known[id(i)] is None and i.complete]
        for n, i in enumerate(todo, 1):
            if self._stop.is_set():
                return self._last or []
            known[id(i)] = self.verifier(i)
            if n < len(todo):  # the last result is shown below, with "latest" marked
                self._emit([self._row(j, known[id(j)]) for j in infos])
        latest, _ = latest_checkpoint(self.run_dir, verify=self.verifier)
        self._latest = str(latest.path) if latest is not None else None
        self._emit([self._row(i, known[id(i)]) for i in infos])
        return self._last or []

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan_once()
            except Exception:  # noqa: BLE001 - a failed scan must not end the service
                pass
            self._wake.wait(min(self.interval, 1.0) if self._flux else self.interval)
            self._wake.clear()


class SystemSampler:
    """Machine and trainer figures about once a second: ``on_sample(SystemView, PidState)``;
    the GPUs' through ``gpu`` (NVML, started and shut down on this sampler's thread)."""

    def __init__(
        self,
        run_dir: Path | None,
        disk_path: Path,
        on_sample: Callable[[SystemView, proc.PidState], None],
        interval: float = 1.0,
        measure: Callable[[], tuple[SystemView, proc.PidState]] | None = None,
        gpu: GpuSampler | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.gpu = gpu or GpuSampler()
        self.disk_path = disk_path
        self.on_sample = on_sample
        self.interval = interval
        self.measure = measure or self.sample  # tests pass fixed figures
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: psutil.Process | None = None
        self._busy = BusyMeter()
        self._busy_seen: tuple[float, list] = (-BUSY_EVERY_S, [])  # (when, what) last looked
        self._threads: tuple[tuple[str, int], tuple[int | None, bool]] | None = None

    def start(self) -> None:
        psutil.cpu_percent(interval=None)  # primes the system-wide counter
        self._thread = threading.Thread(target=self._loop, name="nal-system", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                view, st = self.measure()
                if not self._stop.is_set():
                    self.on_sample(view, st)
            except Exception:  # noqa: BLE001 - a failed sample must not end the thread
                pass
            self._stop.wait(self.interval)
        self.gpu.close()

    def _disk(self) -> tuple[int | None, int | None]:
        p = self.disk_path
        while not p.exists() and p != p.parent:
            p = p.parent
        try:
            du = shutil.disk_usage(p)
        except OSError:
            return None, None
        return du.free, du.total

    def sample(self) -> tuple[SystemView, proc.PidState]:
        proc.CHILDREN.reap()
        vm = psutil.virtual_memory()
        free, total = self._disk()
        st = (
            proc.trainer_state(self.run_dir)
            if self.run_dir is not None
            else proc.PidState("none", None, "no run")
        )
        kw: dict = {}
        if st.state == PID_LIVE and st.info is not None:
            kw = self._proc_figures(st.info.pid)
        threads, auto = self._run_threads()
        busy = self._busy_processes(st)
        info = st.info if st.state == PID_LIVE else None
        gpu = self.gpu.sample(lambda: proc.rank_pids(info) if info is not None else {})
        view = SystemView(
            cpu_pct=psutil.cpu_percent(interval=None),
            mem_used=vm.total - vm.available,
            mem_total=vm.total,
            disk_free=free,
            disk_total=total,
            proc_state=st.state,
            proc_pid=st.pid,
            proc_note=st.message if st.state != PID_LIVE else "",
            cores=os.cpu_count() or 1,
            threads=threads,
            threads_auto=auto,
            busy=tuple(busy),
            gpu=gpu,
            **kw,
        )
        return view, st

    def _busy_processes(self, st: proc.PidState) -> list:
        """Other processes keeping the cores busy, looked at every ``BUSY_EVERY_S``: a look
        reads every process's figures, on a crowded server the idle dashboard's main cost."""
        now = time.monotonic()
        if now - self._busy_seen[0] >= BUSY_EVERY_S:
            pid = [st.info.pid] if st.state == PID_LIVE and st.info else []
            self._busy_seen = (now, self._busy.sample(pid))
        return self._busy_seen[1]

    def _run_threads(self) -> tuple[int | None, bool]:
        """(trainer threads per process, whether train.threads is auto) from the run's
        resolved config; (None, True) without one. Re-read only when the file changes."""
        path = config_file(self.run_dir) if self.run_dir is not None else None
        try:
            key = (str(path), os.stat(path).st_mtime_ns) if path is not None else None
        except OSError:
            key = None
        if key is None:
            return None, True
        if self._threads is None or self._threads[0] != key:
            # yaml only once a run with a config is shown: the dashboard starts without it
            from trainer.config.yamlfile import load as load_config

            try:
                setting = load_config(path).train.threads
                got: tuple[int | None, bool] = (resolve_threads(setting), setting == 0)
            except (ConfigError, OSError, ValueError):
                got = (None, True)
            self._threads = (key, got)
        return self._threads[1]

    def _proc_figures(self, pid: int) -> dict:
        try:
            if self._proc is None or self._proc.pid != pid:
                self._proc = psutil.Process(pid)
                self._proc.cpu_percent(interval=None)
            with self._proc.oneshot():
                cpu = self._proc.cpu_percent(interval=None)
                rss = self._proc.memory_info().rss
            kids = self._proc.children(recursive=True)
            for c in kids:  # DDP ranks and DataLoader workers count toward the run
                try:
                    rss += c.memory_info().rss
                except psutil.Error:
                    pass
            return {"proc_cpu_pct": cpu, "proc_rss": rss, "proc_children": len(kids)}
        except psutil.Error:
            self._proc = None
            return {}
