"""The corpus rules as the real trainer applies them (and as check_corpus reports them):
bad files are refused before training with one line naming the rule and the file, exit 2;
short training clips train, with a log line and an alert event."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT, demo_config_dict, nal_train_cmd, read_events, write_config
from trainer.config.schema import Config
from trainer.config.yamlfile import load
from trainer.corpus.check import check_corpus, min_validation_samples
from trainer.corpus.metadata import parse_metadata, split_ids
from trainer.corpus.report import (
    RULE_HEADER_ONLY,
    RULE_NOT_WAV,
    RULE_SHORT_CLIPS,
    RULE_TRUNCATED,
    RULE_VAL_SIZE,
    RULE_VAL_TOO_SHORT,
)
from trainer.events import schema as ev
from trainer.rundir.lock import read_pid_file


def _copy_corpus(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "corpus"
    shutil.copytree(src, dst)
    return dst


def _config(tmp_path: Path, corpus: Path, **sections) -> Path:
    base = {
        "data": {"demo": False},
        "log": {"log_every": 1, "val_every": 1, "val_samples": 1},
        "checkpoint": {"every": 1000, "milestone_every": 0},
    }
    for k, v in sections.items():
        base.setdefault(k, {}).update(v)
    return write_config(tmp_path / "c.yaml", demo_config_dict(corpus, **base))


def _split(cfg_path: Path) -> tuple[Config, list[str], list[str]]:
    cfg = load(cfg_path)
    meta = parse_metadata(Path(cfg.data.corpus_dir) / "metadata.csv")
    train, val = split_ids([r.id for r in meta], cfg.data.val_size, cfg.data.split_seed)
    return cfg, train, val


def _train(cfg: Path, run: Path, steps: int = 1) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        nal_train_cmd()
        + ["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", str(steps)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


def _preflight_data(cfg: Path, run: Path) -> dict:
    """Preflight's Data check on the same corpus (it calls the trainer's check_corpus)."""
    p = subprocess.run(
        [sys.executable, "-m", "nal_tui", "--preflight", "--json", "--skip-models",
         "--config", str(cfg), "--run-dir", str(run)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    return {c["name"]: c for c in json.loads(p.stdout)["checks"]}["Data"]


def _truncate(p: Path) -> None:
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 3])  # the header still claims the whole length


def _header_only(p: Path) -> None:
    info = sf.info(str(p))
    sf.write(str(p), np.zeros(0, np.float32), info.samplerate, subtype="PCM_16")


def _flac(p: Path) -> None:
    data, sr = sf.read(str(p), dtype="float32")
    sf.write(str(p), data, sr, format="FLAC")  # still named .wav


@pytest.mark.parametrize(
    "spoil, rule, needle",
    [
        (_flac, RULE_NOT_WAV, "is a FLAC file"),
        (_header_only, RULE_HEADER_ONLY, "no audio data"),
        (_truncate, RULE_TRUNCATED, "header claims"),
    ],
    ids=["flac-named-wav", "header-only", "truncated"],
)
def test_bad_training_file_is_refused_before_training(
    demo_corpus: Path, tmp_path: Path, spoil, rule: str, needle: str
) -> None:
    corpus = _copy_corpus(demo_corpus, tmp_path)
    cfg_path = _config(tmp_path, corpus)
    cfg, train_ids, _ = _split(cfg_path)
    bad = corpus / "wavs" / f"{train_ids[3]}.wav"
    spoil(bad)
    # check_corpus (what preflight calls) gives the verdict the trainer acts on.
    [finding] = check_corpus(cfg).errors
    assert finding.rule == rule and finding.files == (str(bad),)

    run = tmp_path / "run"
    p = _train(cfg_path, run)
    out = p.stdout + p.stderr
    assert p.returncode == ev.EXIT_USAGE, out
    assert "Traceback" not in out
    [line] = [ln for ln in out.splitlines() if "data error" in ln]
    assert f"[{rule}]" in line and str(bad) in line and needle in line
    recs = read_events(run)
    assert [r["event"] for r in recs] == ["run_end"]
    assert recs[0]["status"] == ev.STATUS_FAILED and recs[0]["exit_code"] == ev.EXIT_USAGE
    assert read_pid_file(run) is None
    data = _preflight_data(cfg_path, tmp_path / "other")  # preflight: the same verdict
    assert data["status"] == "fail" and data["message"].startswith(f"[{rule}]")
    assert str(bad) in data["message"]


def test_validation_clip_too_short_for_the_stft_is_refused_up_front(
    demo_corpus: Path, tmp_path: Path
) -> None:
    """Today this trains, then crashes at the first validation with no file named."""
    corpus = _copy_corpus(demo_corpus, tmp_path)
    cfg_path = _config(tmp_path, corpus)
    cfg, _, val_ids = _split(cfg_path)
    short = corpus / "wavs" / f"{val_ids[0]}.wav"
    sf.write(str(short), np.full(600, 0.1, np.float32), 16000, subtype="PCM_16")
    p = _train(cfg_path, tmp_path / "run")
    out = p.stdout + p.stderr
    assert p.returncode == ev.EXIT_USAGE, out
    assert "Traceback" not in out
    [line] = [ln for ln in out.splitlines() if "data error" in ln]
    assert f"[{RULE_VAL_TOO_SHORT}]" in line and str(short) in line
    assert f"largest STFT window ({min_validation_samples(cfg)}" in line
    assert not [r for r in read_events(tmp_path / "run") if r["event"] == "step"]
    data = _preflight_data(cfg_path, tmp_path / "other")
    assert data["status"] == "fail" and f"[{RULE_VAL_TOO_SHORT}]" in data["message"]
    assert str(short) in data["message"]


def test_short_training_clips_train_with_a_warning_and_an_alert(
    demo_corpus: Path, tmp_path: Path
) -> None:
    corpus = _copy_corpus(demo_corpus, tmp_path)
    cfg_path = _config(tmp_path, corpus, log={"val_every": 1000})
    cfg, train_ids, _ = _split(cfg_path)
    for uid in train_ids[:2]:
        sf.write(str(corpus / "wavs" / f"{uid}.wav"), np.full(2000, 0.1, np.float32), 16000)
    run = tmp_path / "run"
    p = _train(cfg_path, run)
    assert p.returncode == 0, p.stderr
    log = (run / "train.log").read_text()
    assert f"corpus: [{RULE_SHORT_CLIPS}] 2 of {len(train_ids)} training clips" in log
    alerts = [r for r in read_events(run) if r["event"] == "alert"]
    [a] = [a for a in alerts if a["kind"] == ev.ALERT_SHORT_CLIPS]
    assert f"{train_ids[0]}.wav (2000)" in a["message"] and a["step"] == 0
    data = _preflight_data(cfg_path, tmp_path / "other")
    assert data["status"] == "warn"
    assert any(f"[{RULE_SHORT_CLIPS}] 2 of" in d for d in data["details"]), data


def test_val_size_at_or_above_the_corpus_size_names_key_and_files(
    demo_corpus: Path, tmp_path: Path
) -> None:
    n = len(parse_metadata(demo_corpus / "metadata.csv"))
    cfg_path = _config(tmp_path, demo_corpus, data={"val_size": n})
    p = _train(cfg_path, tmp_path / "run")
    out = p.stdout + p.stderr
    assert p.returncode == ev.EXIT_USAGE, out
    assert "Traceback" not in out
    [line] = [ln for ln in out.splitlines() if "data error" in ln]
    assert f"[{RULE_VAL_SIZE}]" in line and f"data.val_size is {n}" in line
    assert "metadata.csv" in line and str(cfg_path) in line
    data = _preflight_data(cfg_path, tmp_path / "other")
    assert data["status"] == "fail" and data["message"].startswith(f"[{RULE_VAL_SIZE}]")
