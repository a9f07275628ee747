"""How many processes a start may ask for (nal_tui.core.control.nproc): one rule, used by
RunSession.start, ``nal-tui start --nproc`` and the start/resume dialogs (no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nal_tui import cli
from nal_tui.core.control import launch
from nal_tui.core.control import nproc as N
from nal_tui.core.control.session import RunSession
from tests.factory import DEMO_CONFIG


@pytest.mark.parametrize(
    ("cvd", "driver", "seen"),
    [(None, 4, 4), ("0,1", 4, 2), ("", 4, 0), ("-1", 4, 0), ("0,-1,2", 4, 1),
     ("GPU-aa,GPU-bb", 8, 2), ("0,1,2,3", 2, 2), (None, 0, 0)],
)  # fmt: skip
def test_visible_gpus_counts_as_cuda_reads_cuda_visible_devices(cvd, driver, seen) -> None:
    env = {} if cvd is None else {"CUDA_VISIBLE_DEVICES": cvd}
    assert N.visible_gpus(env, driver=driver) == seen


def test_the_limit_is_one_per_gpu_on_cuda_else_one_per_cpu_never_above_the_cap() -> None:
    assert N.nproc_limit("cuda", gpus=2, cpus=32).most == 2
    assert N.nproc_limit("auto", gpus=8, cpus=2).most == 8
    assert N.nproc_limit("cpu", gpus=8, cpus=4).most == 4  # a CPU run does not use the GPUs
    assert N.nproc_limit("auto", gpus=0, cpus=6).most == 6
    lim = N.nproc_limit("cuda", gpus=0, cpus=3)
    assert lim.most == 3 and "no GPU visible" in lim.why
    assert N.nproc_limit("cpu", gpus=0, cpus=500).most == N.MAX_NPROC
    assert N.nproc_limit("cuda", gpus=200, cpus=500).most == N.MAX_NPROC
    two = N.nproc_limit("cpu", gpus=0, cpus=2)
    assert two.refusal(1) is None and two.refusal(2) is None
    msg = two.refusal(102500000)
    assert msg == "102,500,000 processes is more than this machine allows: at most 2 " \
        "(one per CPU: 2 usable CPU(s))"  # fmt: skip
    assert "from 1 to 2" in two.refusal(0)


def test_the_config_device_decides(tmp_path: Path) -> None:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    for device in ("cpu", "cuda"):
        data.setdefault("train", {})["device"] = device
        (tmp_path / f"{device}.yaml").write_text(yaml.safe_dump(data))
        assert N.config_device(tmp_path / f"{device}.yaml") == device
    assert N.config_device(tmp_path / "missing.yaml") == "auto"  # the start says why


def test_session_start_refuses_more_processes_than_allowed_before_launching(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_launch(*a, **kw):
        raise AssertionError("launched")

    monkeypatch.setattr(launch, "start", no_launch)
    s = RunSession(tmp_path / "logs" / "demo", logs_dir=tmp_path / "logs")
    most = s.nproc_limit(DEMO_CONFIG).most
    res = s.start(DEMO_CONFIG, nproc=102500000)
    assert not res.ok and f"at most {most} (" in res.message, res.message
    assert res.message.startswith("not starting: 102,500,000 processes")
    assert not (tmp_path / "logs").exists()
    res = s.start(DEMO_CONFIG, nproc=most + 1)
    assert not res.ok and f"at most {most}" in res.message


def test_nal_tui_start_refuses_it_as_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_launch(*a, **kw):
        raise AssertionError("launched")

    monkeypatch.setattr(launch, "start", no_launch)
    monkeypatch.setattr("nal_tui.preflight.run_checks", no_launch)  # refused before the checks
    rd = tmp_path / "run"
    code = cli.main(["start", "--config", str(DEMO_CONFIG), "--run-dir", str(rd),
                     "--nproc", "102500000"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE, err
    assert "nal-tui start: --nproc 102500000: 102,500,000 processes is more than" in err
    assert not rd.exists()
