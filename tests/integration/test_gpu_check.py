"""``bench/gpu_check.sh`` stays runnable: its CPU dry run, and its wheel list."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "bench" / "gpu_check.sh"
FETCH = ROOT / "bench" / "fetch_gpu_wheels.sh"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", re.split(r"[<>=!;\[ ]", name, maxsplit=1)[0]).lower()


def test_every_package_the_check_installs_is_fetched() -> None:
    needs = re.search(r'NEEDS="([^"]*)"', CHECK.read_text()).group(1).split()
    needs += re.search(r'OPTIONAL="([^"]*)"', CHECK.read_text()).group(1).split()
    wanted = {_norm(pair.split(":")[1]) for pair in needs}
    block = re.search(r"PKGS=\(\n(.*?)\n\)", FETCH.read_text(), re.S).group(1)
    fetched = {_norm(tok.strip('"')) for tok in block.split() if not tok.startswith("#")}
    assert wanted <= fetched, wanted - fetched
    # The trainer's own runtime needs are among them.
    assert {"numpy", "soundfile", "soxr", "pyyaml", "psutil", "orjson", "pytest"} <= wanted


@pytest.mark.slow
def test_cpu_dry_run(tmp_path: Path) -> None:
    """Every mode of the GPU check on CPU with tiny sizes: trains, vocodes, validates, prints."""
    report = tmp_path / "report.json"
    # TorchDynamo off: the compile mode still goes through torch.compile and the trainer's
    # compile path, without inductor's many-minute C++ builds on a 2-core CPU (what rots
    # here is the script, not inductor).
    env = dict(
        os.environ, PYTHON=sys.executable, SITE=str(tmp_path / "site"), TORCHDYNAMO_DISABLE="1"
    )
    args = ["--device", "cpu", "--configs", "demo", "--steps", "2", "--batch", "2"]
    args += ["--val-utts", "1", "--budget", "100000", "--json", str(report)]
    p = subprocess.run(
        ["bash", str(CHECK), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert "== CUDA-marked tests" in out and "gpu_check: total" in out
    r = json.loads(report.read_text())
    runs = {x["mode"]: x for x in r["runs"]}
    assert list(runs) == ["fp32", "bf16", "fp16", "compile"]
    for mode, x in runs.items():
        assert x["exit"] == 0 and x["steps"] == 2, (mode, x)
        assert x["steps_per_s"] > 0 and x["samples_per_s"] > 0
    assert runs["fp16"]["precision"] == "fp32"  # fp16 needs CUDA: the trainer falls back
    assert r["vocode"]["cli_exit"] == 0 and r["vocode"]["rtf"] > 0
    assert r["validation"]["seconds"] > 0 and r["validation"]["audio_s"] > 0
    table = out[out.index("config mode") : out.index("== GPU panel")]
    assert table.count("demo ") == 4 and "vocoding:" in table and "validation (" in table
    # The GPU panel step: a live trainer, its sample, the panel and the dashboard as text.
    panel = out[out.index("== GPU panel (a live demo trainer on cpu)") :]
    assert "gpu sample: " in panel and "trainer stop: " in panel
    assert ("no NVIDIA GPU" in panel or "GPU0 " in panel) and "-- dashboard at 160x45" in panel
    assert "─ GPU ─" in panel and "-- dashboard at 80x24" in panel
