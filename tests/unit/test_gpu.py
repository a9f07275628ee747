"""The GPU sampler (nal_tui.core.gpu) against a fake NVML module: figures per GPU, our ranks
matched by pid, and every way there is no GPU (no library, no driver, a GPU lost mid-run)
as one line, never an exception; NVML initialised once and shut down at the end."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from nal_tui.core.control import proc
from nal_tui.core.gpu import NO_GPU, NO_LIBRARY, GpuSampler
from nal_tui.core.reducer.views import GpuView
from nal_tui.core.services import SystemSampler
from nal_tui.ui.run.gpu import gpu_lines, gpu_summary
from tests.fakenvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_NO_PERMISSION,
    FakeGpu,
    make_nvml,
)
from trainer.rundir.lock import PidInfo


def two_gpus():
    return make_nvml(
        [
            FakeGpu(util=87, used=12 << 30, temp=64, power_mw=251_000, pids=[4242, 999]),
            FakeGpu(name="NVIDIA A100", util=3, used=1 << 30, total=40 << 30, pids=[4343]),
        ]
    )


def test_two_gpus_with_our_ranks_on_them() -> None:
    nvml = two_gpus()
    asked = []
    s = GpuSampler(lambda: nvml)
    v = s.sample(lambda: asked.append(1) or {4242: 0, 4343: 1})
    assert v.note == "" and len(v.rows) == 2
    a, b = v.rows
    assert (a.index, a.name, a.util_pct, a.temp_c) == (0, "NVIDIA H100 80GB HBM3", 87, 64)
    assert (a.mem_used, a.mem_total) == (12 << 30, 80 << 30)
    assert (a.power_w, a.power_limit_w) == (251.0, 700.0)
    assert a.ranks == (0,) and a.other_procs == 1  # pid 999 is someone else's
    assert b.ranks == (1,) and b.other_procs == 0 and b.name == "NVIDIA A100"
    assert asked == [1]
    text = gpu_lines(v).text(80).plain.splitlines()
    assert text[0].startswith("GPU0  87% 12.0G/80.0G 64°C 251/700W rank 0 +1 other")
    assert text[1].startswith("GPU1   3% 1.0G/40.0G") and "rank 1" in text[1]
    # narrow: the name, power and temperature go before the ranks
    assert gpu_lines(v).text(30).plain.splitlines()[0] == "GPU0  87% 12.0G/80.0G rank 0 "
    assert gpu_summary(v)[0].text.strip() == "2 GPU 45% 13.0G/120.0G"


def test_nvml_is_initialised_once_and_names_asked_once() -> None:
    nvml = two_gpus()
    s = GpuSampler(lambda: nvml)
    for _ in range(3):
        s.sample(dict)
    assert nvml.calls["nvmlInit"] == 1
    assert nvml.calls["nvmlDeviceGetName"] == 2
    assert nvml.calls["nvmlDeviceGetMemoryInfo"] == 6
    s.close()
    assert nvml.calls["nvmlShutdown"] == 1 and not nvml.initialised


def test_without_the_library_one_line(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    s = GpuSampler()
    v = s.sample(dict)
    assert v == GpuView((), NO_LIBRARY)
    assert "install naudiolab[gpu]" in gpu_lines(v).plain
    assert s.sample(dict) == v


def test_the_real_import_finds_an_injected_module(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", two_gpus())
    assert len(GpuSampler().sample(dict).rows) == 2


def test_without_a_driver_one_line_and_no_retry() -> None:
    nvml = make_nvml([FakeGpu()], init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    s = GpuSampler(lambda: nvml)
    for _ in range(3):
        v = s.sample(dict)
    assert v.rows == () and v.note == f"{NO_GPU} (NVML: Driver Not Loaded)"
    assert nvml.calls["nvmlInit"] == 1
    assert "nvmlDeviceGetCount" not in nvml.calls


def test_no_gpu_on_the_machine() -> None:
    nvml = make_nvml([])
    asked = []
    v = GpuSampler(lambda: nvml).sample(lambda: asked.append(1) or {})
    assert v == GpuView((), NO_GPU) and asked == []  # no pids looked up for nothing
    assert gpu_summary(v)[0].text.strip() == "no GPU"


@pytest.mark.parametrize("call", ["nvmlDeviceGetCount", "nvmlDeviceGetMemoryInfo", "*"])
def test_a_gpu_lost_mid_run_degrades_to_one_line(call: str) -> None:
    nvml = two_gpus()
    s = GpuSampler(lambda: nvml)
    assert len(s.sample(dict).rows) == 2
    nvml.fail = (call, NVML_ERROR_GPU_IS_LOST)
    v = s.sample(dict)
    assert v.rows == () and v.note == f"{NO_GPU} (NVML: GPU is lost)"
    assert nvml.calls["nvmlShutdown"] == 1
    before = dict(nvml.calls)
    nvml.fail = None  # the driver is back: this session stays on the line, asks nothing
    assert s.sample(dict) == v and nvml.calls == before


def test_an_unsupported_figure_is_left_out() -> None:
    nvml = make_nvml([FakeGpu(unsupported={"nvmlDeviceGetPowerUsage", "nvmlDeviceGetTemperature"})])
    v = GpuSampler(lambda: nvml).sample(dict)
    g = v.rows[0]
    assert g.power_w is None and g.temp_c is None and g.util_pct == 87
    line = gpu_lines(v).text(80).plain
    assert "°C" not in line and "W " not in line and "12.0G/80.0G" in line


def test_no_permission_for_processes_leaves_ranks_empty() -> None:
    nvml = two_gpus()
    s = GpuSampler(lambda: nvml)
    nvml.fail = ("nvmlDeviceGetComputeRunningProcesses", NVML_ERROR_NO_PERMISSION)
    v = s.sample(lambda: {4242: 0})
    assert [g.ranks for g in v.rows] == [(), ()] and v.rows[0].util_pct == 87


def test_many_gpus_fold_into_the_last_line() -> None:
    nvml = make_nvml([FakeGpu(pids=[100 + i]) for i in range(10)])
    v = GpuSampler(lambda: nvml).sample(lambda: {100 + i: i for i in range(10)})
    lines = gpu_lines(v).text(80).plain.splitlines()
    assert len(lines) == 8 and lines[-1] == "… 3 more GPUs  ranks 7,8,9"


def test_a_lone_trainer_is_rank_0() -> None:
    me = PidInfo(os.getpid(), 0.0, ["python"], time.time(), "/tmp")
    assert proc.rank_pids(me) == {os.getpid(): 0}


def test_system_sampler_reports_gpus_and_shuts_nvml_down(monkeypatch, tmp_path) -> None:
    nvml = two_gpus()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    got: list = []
    seen = threading.Event()

    def on_sample(view, st):
        got.append(view)
        seen.set()

    sampler = SystemSampler(None, tmp_path, on_sample, interval=0.05)
    sampler.start()
    assert seen.wait(120)
    sampler.stop()
    sampler._thread.join(120)
    assert not sampler._thread.is_alive()
    assert len(got[0].gpu.rows) == 2 and got[0].gpu.rows[0].ranks == ()  # no trainer
    assert nvml.calls["nvmlInit"] == 1 and nvml.calls["nvmlShutdown"] == 1
    assert nvml.init_thread == "nal-system"  # the sampler's thread, not the caller's (UI)
