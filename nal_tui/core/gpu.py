"""NVIDIA GPU figures through NVML (the optional ``[gpu]`` extra: ``nvidia-ml-py``, which
imports as ``pynvml``): per GPU utilisation, memory, temperature, power, and which of our
trainer's ranks hold a context on it (NVML's running-process pids against the ranks' pids).

``GpuSampler.sample`` runs on the system sampler's thread, never the UI's. NVML is loaded
and initialised once, at the first sample; without the library, without a driver or a GPU,
or after an NVML error mid-run (a GPU lost, a driver reloaded) every sample is one line
saying so, never an exception. A query a GPU does not support (power on some boards) leaves
that figure out.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from nal_tui.core.reducer.views import GpuRow, GpuView
from nal_tui.core.text import clean

NO_GPU = "no NVIDIA GPU"
NO_LIBRARY = f"{NO_GPU} (install naudiolab[gpu] for GPU stats)"
NVML_MODULE = "pynvml"


def import_nvml() -> ModuleType:
    """The NVML bindings (ImportError without the ``[gpu]`` extra)."""
    return importlib.import_module(NVML_MODULE)


class GpuSampler:
    """One NVML session for the dashboard's lifetime; ``sample()`` a GpuView, ``close()``
    at the end (both on the sampling thread). ``load`` returns the ``pynvml`` module
    (tests pass a fake)."""

    def __init__(self, load: Callable[[], ModuleType] = import_nvml) -> None:
        self._load = load
        self._nvml: Any = None
        self._tried = False
        self._note = ""  # set for good once NVML cannot be used
        self._names: dict[int, str] = {}  # device names do not change: asked once

    def _init(self) -> None:
        self._tried = True
        try:
            nvml = self._load()
        except ImportError:
            self._note = NO_LIBRARY
            return
        try:
            nvml.nvmlInit()
        except Exception as e:  # noqa: BLE001 - no driver, no library, no GPU: one line
            self._note = _because(e)
            return
        self._nvml = nvml

    def sample(self, ranks: Callable[[], Mapping[int, int]]) -> GpuView:
        """Every GPU now; ``ranks()`` (pid -> rank of our trainer) is asked only when
        there is a GPU to match it against."""
        if not self._tried:
            self._init()
        if self._note:
            return GpuView((), self._note)
        nvml = self._nvml
        try:
            count = nvml.nvmlDeviceGetCount()
            if count <= 0:
                return GpuView((), NO_GPU)
            ours = ranks()
            return GpuView(tuple(self._row(i, ours) for i in range(count)))
        except Exception as e:  # noqa: BLE001 - a GPU lost or a driver reloaded mid-run
            self._note = _because(e)
            self.close()
            return GpuView((), self._note)

    def close(self) -> None:
        """Shut NVML down (once; later samples keep the last note)."""
        nvml, self._nvml = self._nvml, None
        if nvml is None:
            return
        if not self._note:
            self._note = NO_GPU
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutting down after a lost GPU may fail too
            pass

    def _row(self, i: int, ours: Mapping[int, int]) -> GpuRow:
        nvml = self._nvml
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        if i not in self._names:
            name = nvml.nvmlDeviceGetName(h)
            name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            self._names[i] = clean(name, 40)
        mem = nvml.nvmlDeviceGetMemoryInfo(h)
        util = self._optional(nvml.nvmlDeviceGetUtilizationRates, h)
        temp = self._optional(nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU)
        power = self._optional(nvml.nvmlDeviceGetPowerUsage, h)  # milliwatts
        limit = self._optional(nvml.nvmlDeviceGetEnforcedPowerLimit, h)
        procs = self._optional(nvml.nvmlDeviceGetComputeRunningProcesses, h) or []
        pids = {p.pid for p in procs}
        return GpuRow(
            index=i,
            name=self._names[i],
            mem_used=int(mem.used),
            mem_total=int(mem.total),
            util_pct=None if util is None else int(util.gpu),
            temp_c=None if temp is None else int(temp),
            power_w=None if power is None else power / 1000,
            power_limit_w=None if limit is None else limit / 1000,
            ranks=tuple(sorted({ours[p] for p in pids if p in ours})),
            other_procs=len(pids - set(ours)),
        )

    def _optional(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, or None where this GPU does not support it or we may not ask;
        any other NVML error is the GPU's, and ends the sample."""
        nvml = self._nvml
        try:
            return fn(*args)
        except nvml.NVMLError as e:
            if getattr(e, "value", None) in (
                nvml.NVML_ERROR_NOT_SUPPORTED,
                nvml.NVML_ERROR_NO_PERMISSION,
            ):
                return None
            raise


def _because(e: BaseException) -> str:
    why = clean(str(e), 60) or type(e).__name__
    return f"{NO_GPU} (NVML: {why})"
