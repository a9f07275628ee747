"""``nal-tui start --init-from CKPT``: preflight checks the fine-tune's source against the
config first, and a refusal names the key and both values; nothing is started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.hifigan_factory import tiny_cfg, write_reference
from trainer.cli import main


def test_a_source_with_other_mel_bands_is_refused_before_starting(tmp_path: Path) -> None:
    ref = write_reference(tmp_path / "ref", tiny_cfg())
    args = ["import", "--format", "hifigan", "--config", str(ref.config)]
    assert main([*args, "--run-dir", str(tmp_path / "src"), str(ref.g), str(ref.do)]) == 0
    data = yaml.safe_load((tmp_path / "src" / "config.yaml").read_text())
    data["audio"]["n_mels"] = 64
    data["name"] = "ft"
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(yaml.safe_dump(data))
    ckpt = tmp_path / "src" / "checkpoints" / "ckpt_00000000.pt"
    run = tmp_path / "ft"
    r = subprocess.run(
        [sys.executable, "-m", "nal_tui", "start", "--config", str(cfg), "--run-dir", str(run),
         "--init-from", str(ckpt)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 1
    out = r.stdout + r.stderr
    assert "not starting: preflight failed" in out and "Fine-tune source" in out
    assert "audio.n_mels: 80 in the source checkpoint, 64 in this config" in out
    assert not (run / "trainer.pid").exists() and not (run / "launch.json").exists()
