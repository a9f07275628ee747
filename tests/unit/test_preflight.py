"""Preflight checks: each check's pass and fail case on real files and directories."""

from __future__ import annotations

import json
import struct
import time
import wave
from pathlib import Path

from nal_tui.preflight.checks_data import check_config, check_data, check_output_dirs
from nal_tui.preflight.checks_env import (
    check_installation,
    check_resources,
    check_run_state,
)
from nal_tui.preflight.estimates import estimate_disk, estimate_memory, estimate_params
from nal_tui.preflight.report import FAIL, PASS, WARN
from trainer.config.build import from_dict
from trainer.config.yamlfile import load
from trainer.rundir.history import fresh_start_refusal, run_history
from trainer.rundir.layout import CHECKPOINTS_DIR, PID_FILE, checkpoint_paths
from trainer.rundir.lock import own_pid_info
from trainer.rundir.manifest import Manifest, ManifestFile

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "demo.yaml"


# ------------------------------------------------------------------ fixtures


def write_wav(path: Path, sr: int = 16000, channels: int = 1, seconds: float = 0.5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(b"\x01\x00" * int(sr * seconds) * channels)


def write_npy(path: Path, shape: tuple[int, ...]) -> None:
    """A float32 .npy (format 1.0) with zeros; written by hand to keep the test light."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    n = 1
    for s in shape:
        n *= s
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\x00" * (4 * n)
    )


def make_corpus(root: Path, n: int = 10, sr: int = 16000) -> list[str]:
    ids = [f"utt{i:03d}" for i in range(n)]
    for i in ids:
        write_wav(root / "wavs" / f"{i}.wav", sr)
    (root / "metadata.csv").write_text("".join(f"{i}|text {i}|text {i}\n" for i in ids))
    return ids


def cfg_for(root: Path, **data):
    """The demo config pointed at ``root`` (absolute paths), with data overrides."""
    d = {"corpus_dir": str(root), "demo": False, "val_size": 2, **data}
    return from_dict(
        {**yaml_of(DEMO), "data": d, "train": {"batch_size": 4, "max_steps": 100}}, "test.yaml"
    )


def yaml_of(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


# ------------------------------------------------------------ 1. configuration


def test_config_pass(tmp_path):
    res, cfg = check_config(DEMO)
    assert res.status == PASS and cfg.name == "demo" and "2000 steps" in res.message


def test_config_bad_key_names_file_and_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ntrain: {batch_sise: 4}\n")
    res, cfg = check_config(p)
    assert cfg is None and res.status == FAIL
    assert str(p) in res.message and "train.batch_sise" in res.message
    assert "batch_size" in res.message  # the did-you-mean hint


def test_config_out_of_range_value(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train: {batch_size: 0}\n")
    res, _ = check_config(p)
    assert res.status == FAIL and "train.batch_size" in res.message and "minimum" in res.message


# --------------------------------------------------------------------- 2. data


def test_data_pass(tmp_path):
    make_corpus(tmp_path / "c")
    res = check_data(cfg_for(tmp_path / "c"))
    assert res.status == PASS, res
    assert "10 clips (8 train, 2 validation)" in res.message


def test_data_missing_wav(tmp_path):
    make_corpus(tmp_path / "c")
    (tmp_path / "c" / "wavs" / "utt004.wav").unlink()
    res = check_data(cfg_for(tmp_path / "c"))
    assert res.status == FAIL and res.message.startswith("[missing_files]")
    assert "1 of 10 wav files" in res.message and "utt004.wav" in res.message and res.fix


def test_data_wrong_sample_rate_fails_without_resample(tmp_path):
    make_corpus(tmp_path / "c")
    write_wav(tmp_path / "c" / "wavs" / "utt001.wav", sr=22050)
    res = check_data(cfg_for(tmp_path / "c", resample=False))
    assert res.status == FAIL and "22050 Hz" in res.message and "utt001.wav" in res.message
    assert "data.resample" in res.fix


def test_data_wrong_sample_rate_warns_with_resample(tmp_path):
    make_corpus(tmp_path / "c")
    write_wav(tmp_path / "c" / "wavs" / "utt001.wav", sr=22050)
    res = check_data(cfg_for(tmp_path / "c", resample=True))
    assert res.status == WARN and "utt001.wav" in res.details[0]
    assert (
        res.details[0].startswith("warning [sample_rate]") and "resampled on load" in res.details[0]
    )


def test_data_stereo_and_garbage_files_fail(tmp_path):
    make_corpus(tmp_path / "c")
    write_wav(tmp_path / "c" / "wavs" / "utt002.wav", channels=2)
    (tmp_path / "c" / "wavs" / "utt003.wav").write_bytes(b"ID3 not a wav at all")
    res = check_data(cfg_for(tmp_path / "c"))
    assert res.status == FAIL
    text = " ".join([res.message, *res.details])
    assert "[mono]" in text and "utt002.wav: has 2 channels" in text
    assert "[not_wav]" in text and "utt003.wav: is a MP3 file" in text


def test_data_too_few_clips_for_batch(tmp_path):
    make_corpus(tmp_path / "c", n=5)
    res = check_data(cfg_for(tmp_path / "c", val_size=2))  # 3 train < batch 4
    assert res.status == FAIL and "leaves 3 for training" in res.message


def test_data_missing_corpus(tmp_path):
    res = check_data(cfg_for(tmp_path / "nowhere"))
    assert res.status == FAIL and "corpus directory not found" in res.message


def _cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def test_data_uses_the_trainers_corpus_rules(tmp_path):
    """One set of rules: a truncated WAV and a header-only WAV are refused, as the trainer
    refuses them (preflight's own header reading passed both)."""
    make_corpus(tmp_path / "c")
    _cut(tmp_path / "c" / "wavs" / "utt005.wav", 44 + 1000)  # the header claims 0.5 s
    _cut(tmp_path / "c" / "wavs" / "utt006.wav", 44)
    res = check_data(cfg_for(tmp_path / "c"))
    assert res.status == FAIL
    text = " ".join([res.message, *res.details])
    assert "[truncated_wav]" in text and "utt005.wav" in text
    assert "[header_only]" in text and "utt006.wav" in text


def test_short_training_clips_warn_and_short_validation_clips_fail(tmp_path):
    from trainer.corpus.metadata import split_ids

    ids = make_corpus(tmp_path / "c", n=12)
    cfg = cfg_for(tmp_path / "c")
    _, val = split_ids(ids, cfg.data.val_size, cfg.data.split_seed)
    train = [i for i in ids if i not in val]
    write_wav(tmp_path / "c" / "wavs" / f"{train[0]}.wav", seconds=0.1)  # < segment_size
    res = check_data(cfg)
    assert res.status == WARN and res.details[0].startswith("warning [short_clips]")
    assert f"{train[0]}.wav" in res.details[0] and "zero-padded" in res.details[0]
    write_wav(tmp_path / "c" / "wavs" / f"{val[0]}.wav", seconds=0.02)  # < the largest STFT
    res = check_data(cfg)
    assert res.status == FAIL and res.message.startswith("[val_too_short]")
    assert f"{val[0]}.wav" in res.message


def test_demo_corpus_missing_will_be_generated(tmp_path):
    res = check_data(cfg_for(tmp_path / "demo_corpus", demo=True))
    assert res.status == PASS and "will be generated" in res.message


def test_mels_pass_and_mismatch(tmp_path):
    ids = make_corpus(tmp_path / "c")
    frames = 8000 // 128  # 0.5 s at 16 kHz, hop 128
    for i in ids:
        write_npy(tmp_path / "mels" / f"{i}.npy", (64, frames))
    ok = check_data(cfg_for(tmp_path / "c", mels_dir=str(tmp_path / "mels")))
    assert ok.status == PASS and "mels present" in ok.message
    write_npy(tmp_path / "mels" / "utt000.npy", (80, frames))
    (tmp_path / "mels" / "utt001.npy").unlink()
    bad = check_data(cfg_for(tmp_path / "c", mels_dir=str(tmp_path / "mels")))
    assert bad.status == FAIL
    text = " ".join([bad.message, *bad.details])
    assert "[mels]" in text and "also utt001.npy" in text
    assert "utt000.npy: mel shape (80, 62) must be [n_mels=64, frames]" in text


# ----------------------------------------------------------- 3. output dirs


def test_output_dirs_writable_and_left_clean(tmp_path):
    rd = tmp_path / "logs" / "run"
    res = check_output_dirs(rd)
    assert res.status == PASS
    assert not (tmp_path / "logs").exists()  # nothing left behind


def test_output_dirs_existing_run_dir_keeps_contents(tmp_path):
    rd = tmp_path / "run"
    (rd / CHECKPOINTS_DIR).mkdir(parents=True)
    (rd / CHECKPOINTS_DIR / "keep").write_text("x")
    assert check_output_dirs(rd).status == PASS
    assert sorted(p.name for p in rd.rglob("*")) == ["checkpoints", "keep"]


def test_output_dirs_not_creatable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    res = check_output_dirs(blocker / "run")
    assert res.status == FAIL and "cannot create or write" in res.message and res.fix


# ---------------------------------------------------------- 4. installation


def test_installation_pass():
    res = check_installation()
    assert res.status == PASS and "torch 2.13" in res.message
    assert any(d.startswith("info:") for d in res.details)


def test_installation_wrong_torch_and_missing_package():
    versions = {"torch": "2.12.1", "soxr": None}
    res = check_installation(lambda d: versions.get(d, "99.0"))
    assert res.status == FAIL
    text = " ".join([res.message, *res.details])
    assert "torch 2.12.1 is not supported (need >=2.13,<2.14)" in text
    assert "soxr is not installed" in text
    assert "textual 99.0 is not supported" in text  # above the supported major


# (5. trainer and 6. models start processes: tests/process/test_preflight_checks.py)


# ------------------------------------------------------------ 7. resources


def test_resources_pass(tmp_path):
    res = check_resources(
        load(DEMO), tmp_path, disk_free=1 << 40, mem_available=1 << 36, mem_total=1 << 36, gpu=None
    )
    assert res.status == PASS and "suffice" in res.message


def test_resources_full_disk(tmp_path):
    res = check_resources(
        load(DEMO), tmp_path, disk_free=1 << 20, mem_available=1 << 36, mem_total=1 << 36, gpu=None
    )
    assert res.status == FAIL and "not enough disk" in res.message
    assert "keep_last" in res.fix


def test_resources_full_disk_via_disk_usage(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 4096))
    res = check_resources(load(DEMO), tmp_path / "new" / "run", gpu=None)
    assert res.status == FAIL and "4.0 KiB is free" in res.message


def test_resources_refuse_more_processes_than_the_start_allows(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU: one process per CPU
    monkeypatch.setattr("nal_tui.core.control.nproc.usable_cpus", lambda: 2)
    big = dict(disk_free=1 << 40, mem_available=1 << 36, mem_total=1 << 36, gpu=None)
    res = check_resources(load(DEMO), tmp_path, nproc=3, **big)
    assert res.status == FAIL and "at most 2 (one per CPU: 2 usable CPU(s))" in res.message
    assert "--nproc" in res.fix
    assert check_resources(load(DEMO), tmp_path, nproc=2, **big).status != FAIL


def test_resources_milestones_warn(tmp_path):
    cfg = load(DEMO)
    disk = estimate_disk(cfg, sum(estimate_params(cfg).values()))
    free = (disk.required + disk.with_milestones) // 2
    res = check_resources(
        cfg, tmp_path, disk_free=free, mem_available=1 << 36, mem_total=1 << 36, gpu=None
    )
    assert res.status == WARN and "milestone" in res.message


def test_resources_memory_too_small(tmp_path):
    res = check_resources(
        load(DEMO), tmp_path, disk_free=1 << 40, mem_available=1 << 20, mem_total=1 << 24, gpu=None
    )
    assert res.status == FAIL and "train.batch_size" in res.fix


def test_estimates_scale_with_config():
    v1 = load(REPO / "config" / "hifigan_v1.yaml")
    params = sum(estimate_params(v1).values())
    assert 60e6 < params < 110e6  # the reference V1: ~14M generator + ~70M discriminators
    mem = estimate_memory(v1, params)
    assert 6 << 30 < mem < 40 << 30  # trains at batch 16 on a 16-32 GB GPU


# ------------------------------------------------------------ 8. run state


def test_run_state_free_dir(tmp_path):
    assert check_run_state(tmp_path / "run").status == PASS


def test_run_state_live_trainer_fails(tmp_path, monkeypatch):
    from nal_tui.core.control import proc

    monkeypatch.setattr(proc, "is_trainer_cmdline", lambda cmd: True)
    (tmp_path / PID_FILE).write_text(json.dumps(own_pid_info(tmp_path).__dict__))
    res = check_run_state(tmp_path)
    assert res.status == FAIL and "already owns" in res.message and "nal-tui stop" in res.fix


def _checkpoint(rd: Path, step: int, payload: bytes = b"weights") -> Path:
    import hashlib

    pt, man = checkpoint_paths(rd, step)
    pt.parent.mkdir(parents=True, exist_ok=True)
    pt.write_bytes(payload)
    man.write_text(
        Manifest(
            step,
            0,
            time.time(),
            False,
            (ManifestFile(pt.name, len(payload), hashlib.sha256(payload).hexdigest()),),
        ).to_json()
    )
    return pt


class _Answer:
    """Stands in for the ``nal-train verify --json`` subprocess (the process tier runs it)."""

    def __init__(self, rc, out, err=""):
        self.cmd, self.answer = ["nal-train", "verify"], (rc, out, err)

    def result(self, timeout):
        return self.answer


def test_run_state_resume_uses_the_trainers_load_test(tmp_path):
    ok = json.dumps({"ok": True, "checkpoint": "x/ckpt_00000400.pt", "step": 400,
                     "message": "usable: x/ckpt_00000400.pt (step 400)",
                     "skipped": [{"path": "x/ckpt_00000500.pt", "reason": "pickled code"}]})  # fmt: skip
    res = check_run_state(tmp_path, resume="latest", verify=_Answer(0, ok))
    assert res.status == PASS and "resume from step 400" in res.message
    assert res.details == ["skipped ckpt_00000500.pt: pickled code"]
    bad = json.dumps({"ok": False, "checkpoint": None, "step": None, "skipped": [],
                      "message": "cannot resume: another model config: \x1b[31mgen.x"})  # fmt: skip
    res = check_run_state(tmp_path, resume="x.pt", verify=_Answer(5, bad))
    assert res.status == FAIL and "another model config" in res.message
    assert "\x1b" not in res.message
    res = check_run_state(tmp_path, resume="x.pt", verify=_Answer(None, "", "no answer"))
    assert res.status == FAIL and "did not answer" in res.message


def test_run_state_a_fresh_start_in_a_run_dir_that_holds_a_run_fails(tmp_path):
    """The trainer refuses such a start (exit 2); preflight gives the same verdict, and
    passes a start that says it is a new branch."""
    _checkpoint(tmp_path, 400)
    res = check_run_state(tmp_path)
    assert res.status == FAIL and res.message == fresh_start_refusal(
        tmp_path, run_history(tmp_path), choices=False
    )
    assert f"--run-dir {tmp_path.with_name(tmp_path.name + '-2')}" in res.fix
    res = check_run_state(tmp_path, new_branch=True)
    assert (
        res.status == PASS and "moved aside" in res.message and "nothing is deleted" in res.message
    )


# ------------------------------------------------------------ the runner
