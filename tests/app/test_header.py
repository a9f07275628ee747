"""The header line names the device and, under torchrun, the number of ranks."""

from __future__ import annotations

from nal_tui.state import RunState
from nal_tui.widgets.header import header_text
from trainer import events as ev


def _start(world: int, device: str) -> dict:
    return ev.RunStart(
        run_id="r1",
        pid=1234,
        config_path="c.yaml",
        start_step=0,
        target_step=100,
        world_size=world,
        device=device,
        versions={},
        run_name="ljs",
    ).to_record(1.0)


def test_header_shows_ranks_for_ddp_runs() -> None:
    st = RunState()
    st.feed([_start(4, "cuda:0")])
    line = header_text(st, now=2.0).plain
    assert "ljs" in line and "pid 1234" in line and "cuda:0 × 4 ranks" in line


def test_header_single_process_shows_device_only() -> None:
    st = RunState()
    st.feed([_start(1, "cpu")])
    line = header_text(st, now=2.0).plain
    assert "  cpu" in line and "ranks" not in line
