"""A fake ``pynvml`` (the ``[gpu]`` extra's module): the calls ``nal_tui.core.gpu`` makes,
with the real module's names, error class and error codes, over a list of fake GPUs a test
sets up. ``fail`` makes a call raise an NVMLError with a code, as a lost GPU or a reloaded
driver makes the real one."""

from __future__ import annotations

import threading
import types
from dataclasses import dataclass, field

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIBRARY_NOT_FOUND = 12
MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
}


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return MESSAGES.get(self.value, f"Unknown Error {self.value}")


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    util: int = 87
    used: int = 12 << 30
    total: int = 80 << 30
    temp: int = 64
    power_mw: int = 251_000
    limit_mw: int = 700_000
    pids: list[int] = field(default_factory=list)
    unsupported: set[str] = field(default_factory=set)  # call names that say Not Supported


def make_nvml(gpus: list[FakeGpu], *, init_error: int | None = None) -> types.ModuleType:
    """A module object standing in for ``pynvml``; ``mod.calls`` counts the calls by name,
    ``mod.fail = (name, code)`` makes that call raise from then on."""
    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError
    m.NVML_TEMPERATURE_GPU = 0
    m.NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    m.NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION
    m.gpus = gpus
    m.calls = {}
    m.fail = None
    m.initialised = False

    def call(name, fn):
        def wrapper(*args):
            m.calls[name] = m.calls.get(name, 0) + 1
            if m.fail is not None and m.fail[0] in (name, "*"):
                raise NVMLError(m.fail[1])
            if name not in ("nvmlInit", "nvmlShutdown") and not m.initialised:
                raise NVMLError(NVML_ERROR_UNINITIALIZED)
            if args and isinstance(args[0], FakeGpu) and name in args[0].unsupported:
                raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
            return fn(*args)

        setattr(m, name, wrapper)

    def init():
        m.init_thread = threading.current_thread().name
        if init_error is not None:
            raise NVMLError(init_error)
        m.initialised = True

    def shutdown():
        m.initialised = False

    call("nvmlInit", init)
    call("nvmlShutdown", shutdown)
    call("nvmlDeviceGetCount", lambda: len(m.gpus))
    call("nvmlDeviceGetHandleByIndex", lambda i: m.gpus[i])
    call("nvmlDeviceGetName", lambda g: g.name)
    call(
        "nvmlDeviceGetMemoryInfo",
        lambda g: types.SimpleNamespace(used=g.used, total=g.total, free=g.total - g.used),
    )
    call("nvmlDeviceGetUtilizationRates", lambda g: types.SimpleNamespace(gpu=g.util, memory=0))
    call("nvmlDeviceGetTemperature", lambda g, sensor: g.temp)
    call("nvmlDeviceGetPowerUsage", lambda g: g.power_mw)
    call("nvmlDeviceGetEnforcedPowerLimit", lambda g: g.limit_mw)
    call(
        "nvmlDeviceGetComputeRunningProcesses",
        lambda g: [types.SimpleNamespace(pid=p, usedGpuMemory=1 << 30) for p in g.pids],
    )
    return m
