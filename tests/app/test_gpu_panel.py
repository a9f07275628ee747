"""The GPU panel with a fake NVML module: each GPU's figures and our ranks in the wide
layout, a GPU summary in the facts line of small ones, the one line without a GPU or the
library, and a GPU lost mid-run; SVG snapshots at 80x24, 120x40 and 160x45."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest

from nal_tui.core.control.proc import PidState
from nal_tui.core.gpu import GpuSampler
from nal_tui.core.vocab import PID_NONE
from nal_tui.ui.run.gpu import GpuPanel
from tests.app.apphelp import FIXED_SYSTEM, make_app, screen_text, svg_text, until
from tests.app.test_samples import sync
from tests.app.test_snapshots import _run, _settled, utc  # noqa: F401 (utc: used by name)
from tests.fakenvml import NVML_ERROR_GPU_IS_LOST, FakeGpu, make_nvml

RANKS = {4242: 0, 4343: 1}  # pid -> rank, as proc.rank_pids reports a two-rank trainer


def fake_nvml():
    return make_nvml(
        [
            FakeGpu(util=87, used=12 << 30, temp=64, power_mw=251_000, pids=[4242, 999]),
            FakeGpu(util=91, used=70 << 30, temp=71, power_mw=612_000, pids=[4343]),
        ]
    )


def gpu_measure(nvml):
    """Fixed CPU and memory figures, and the real GPU sampler over ``nvml``."""
    sampler = GpuSampler(lambda: nvml)

    def measure():
        gpu = sampler.sample(lambda: RANKS)
        return replace(FIXED_SYSTEM, gpu=gpu), PidState(PID_NONE, None, "no trainer process")

    return measure


def _app(tmp_path, nvml):
    app = make_app(_run(tmp_path), tmp_path / "logs", frozen=True)
    app.sample_system = gpu_measure(nvml)
    return app


@sync
async def test_wide_panel_then_the_gpu_is_lost(tmp_path) -> None:
    nvml = fake_nvml()
    app = _app(tmp_path, nvml)
    async with app.run_test(size=(160, 45)) as pilot:
        panel = app.query_one(GpuPanel)
        assert await until(pilot, lambda: "GPU1" in panel.plain, 60)
        await pilot.pause()
        text = screen_text(pilot)
        assert "GPU0  87% 12.0G/80.0G 64°C 251/700W rank 0 +1 other" in text
        assert "GPU1  91% 70.0G/80.0G 71°C 612/700W rank 1" in text
        assert panel.display and panel.region.height == 4  # two GPUs, two lines
        nvml.fail = ("*", NVML_ERROR_GPU_IS_LOST)
        assert await until(pilot, lambda: "lost" in panel.plain, 60)
        await pilot.pause()
        text = screen_text(pilot)
        assert "no NVIDIA GPU (NVML: GPU is lost)" in text and "GPU0" not in text
        assert panel.region.height == 3


@sync
async def test_small_terminal_shows_gpus_in_the_facts_line(tmp_path) -> None:
    app = _app(tmp_path, fake_nvml())
    async with app.run_test(size=(80, 24)) as pilot:
        assert await until(pilot, lambda: "GPU" in app.query_one("#facts").plain, 60)
        await pilot.pause()
        text = screen_text(pilot)
        assert "sys  CPU 12%  2 GPU 89% 82.0G/160.0G" in text
        assert not app.query_one(GpuPanel).display


@sync
async def test_without_the_library_one_clean_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # the [gpu] extra is not installed
    app = make_app(_run(tmp_path), tmp_path / "logs", frozen=True)
    sampler = GpuSampler()  # the real import, which fails

    def measure():
        return replace(FIXED_SYSTEM, gpu=sampler.sample(dict)), PidState(PID_NONE, None, "")

    app.sample_system = measure
    async with app.run_test(size=(160, 45)) as pilot:
        panel = app.query_one(GpuPanel)
        assert await until(pilot, lambda: bool(panel.plain), 60)
        await pilot.pause()
        assert "no NVIDIA GPU (install naudiolab[gpu] for GPU stats)" in screen_text(pilot)


SIZES = [(80, 24), (120, 40), (160, 45)]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_gpu_snapshot(snap_compare, tmp_path, size):
    app = _app(tmp_path, fake_nvml())
    shots: list[str] = []

    async def before(pilot):
        await _settled(pilot)
        assert await until(pilot, lambda: app.feeds.system.gpu is not None, 60)
        await pilot.pause()
        shots.append(app.export_screenshot())

    assert snap_compare(app, terminal_size=size, run_before=before)
    text = svg_text(shots[-1])
    if size == (160, 45):
        assert "GPU0  87% 12.0G/80.0G" in text and "rank 1" in text
    else:
        assert "2 GPU 89% 82.0G/160.0G" in text
