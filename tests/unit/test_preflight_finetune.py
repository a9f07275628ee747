"""Preflight's fine-tune check and the start command line for ``--init-from``: the source's
hash, generator and audio settings against the config and the corpus (torch-free, the
trainer's own rules), one line per problem naming the key and both values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nal_tui.core.control.command import trainer_command
from nal_tui.preflight.checks_finetune import check_init_from
from nal_tui.preflight.report import FAIL, PASS, WARN
from tests.hifigan_factory import tiny_cfg, write_reference
from trainer.cli import main
from trainer.config.build import replace
from trainer.config.yamlfile import load


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("ft")
    ref = write_reference(tmp / "ref", tiny_cfg())
    args = ["import", "--format", "hifigan", "--config", str(ref.config)]
    assert main([*args, "--run-dir", str(tmp / "src"), str(ref.g), str(ref.do)]) == 0
    return tmp / "src"


def _ckpt(source: Path) -> Path:
    return source / "checkpoints" / "ckpt_00000000.pt"


def test_the_same_settings_pass(source: Path) -> None:
    r = check_init_from(load(source / "config.yaml"), _ckpt(source))
    assert r.status == PASS and "hash verified" in r.message


def test_other_mel_bands_fail_naming_both_values(source: Path) -> None:
    cfg = replace(load(source / "config.yaml"), audio={"n_mels": 64})
    r = check_init_from(cfg, _ckpt(source))
    assert r.status == FAIL
    assert any(
        "audio.n_mels: 80 in the source checkpoint, 64 in this config" in d for d in r.details
    )


def test_another_generator_fails(source: Path) -> None:
    cfg = replace(load(source / "config.yaml"), generator={"upsample_initial_channel": 64})
    r = check_init_from(cfg, _ckpt(source), generator_only=True)
    assert r.status == FAIL
    assert any(
        "generator.upsample_initial_channel: 32 in the checkpoint, 64 now" in d for d in r.details
    )


def test_another_mel_range_warns(source: Path) -> None:
    cfg = replace(load(source / "config.yaml"), audio={"fmax": 11025.0})
    r = check_init_from(cfg, _ckpt(source))
    assert r.status == WARN
    assert r.details == [
        "audio.fmax: 8000 in the source checkpoint, 11025 in this config (the mel bands cover "
        "another frequency range)"
    ]


def test_a_generator_only_import_needs_the_flag(source: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "src"
    shutil.copytree(source, copy)
    man_path = copy / "checkpoints" / "ckpt_00000000.json"
    man = json.loads(man_path.read_text())
    man["imported"]["generator_only"] = True  # the manifest's note; the .pt hash is unchanged
    man_path.write_text(json.dumps(man))
    cfg = load(copy / "config.yaml")
    r = check_init_from(cfg, _ckpt(copy))
    assert r.status == FAIL and "--init-from-generator-only" in r.fix
    assert check_init_from(cfg, _ckpt(copy), generator_only=True).status == PASS


def test_a_corrupt_source_fails(source: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "src"
    shutil.copytree(source, copy)
    with open(_ckpt(copy), "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xfe")
    r = check_init_from(load(copy / "config.yaml"), _ckpt(copy))
    assert r.status == FAIL and "sha256" in r.message


def test_the_start_command_line_carries_init_from() -> None:
    cmd, _ = trainer_command("c.yaml", "logs/x", init_from="a/ckpt.pt", init_generator_only=True,
                             base=(["nal-train"], "nal-train"))  # fmt: skip
    assert cmd[-3:] == ["--init-from", "a/ckpt.pt", "--init-from-generator-only"]
    cmd, _ = trainer_command("c.yaml", "logs/x", base=(["nal-train"], "nal-train"))
    assert "--init-from" not in cmd
