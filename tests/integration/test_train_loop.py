"""The training loop in-process on the demo corpus: exact resume, non-finite steps, fallback."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.conftest import demo_config_dict, read_events
from trainer.checkpointing.loadtest import load_checkpoint
from trainer.config.build import from_dict
from trainer.events import schema as ev
from trainer.events.codec import float_field
from trainer.losses import hifigan_generator_loss
from trainer.rundir.checkpoints import list_checkpoints
from trainer.train import loop
from trainer.train import step as step_mod


def _cfg(corpus: Path, **over):
    sections = {
        "log": {"log_every": 1, "val_every": 1000, "val_samples": 1},
        "checkpoint": {"every": 1000, "keep_last": 3, "milestone_every": 0},
    }
    for k, v in over.items():
        sections.setdefault(k, {}).update(v)
    return from_dict(demo_config_dict(corpus, **sections), "test")


def _train(cfg, run_dir: Path, **kw) -> int:
    return loop.train(cfg, run_dir, "test.yaml", **kw)


def _steps(run_dir: Path) -> list[tuple[int, float, float]]:
    return [(r["step"], r["g"], r["d"]) for r in read_events(run_dir) if r["event"] == "step"]


def _final_state(run_dir: Path) -> dict:
    last = list_checkpoints(run_dir)[-1]
    return load_checkpoint(last.path)


def _assert_same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"tensor differs at {where}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_resume_is_bitwise_exact(demo_corpus: Path, tmp_path: Path) -> None:
    """N steps, stop, resume, N steps == 2N uninterrupted steps (weights and losses)."""
    n = 8  # 11 batches per epoch: the resumed half crosses an epoch boundary
    cfg = _cfg(demo_corpus)
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert _train(cfg, straight, target_step=2 * n) == ev.EXIT_OK
    assert _train(cfg, split, target_step=n) == ev.EXIT_OK
    assert _train(cfg, split, resume="latest", target_step=2 * n) == ev.EXIT_OK

    a, b = _steps(straight), _steps(split)
    assert [s for s, *_ in a] == list(range(1, 2 * n + 1))
    assert a == b  # identical loss sequence, float for float
    sa, sb = _final_state(straight), _final_state(split)
    assert sa["step"] == sb["step"] == 2 * n and sa["epoch"] == sb["epoch"] == 1
    for key in ("generator", "discriminators", "opt_g", "opt_d", "sched_g", "sched_d"):
        _assert_same_tensors(sa[key], sb[key], key)
    starts = [r for r in read_events(split) if r["event"] == "run_start"]
    assert [s["start_step"] for s in starts] == [0, n]
    assert starts[1]["resumed_from"].endswith(f"ckpt_{n:08d}.pt")


def test_nonfinite_steps_are_skipped_then_stop(
    demo_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(demo_corpus, train={"max_nonfinite_steps": 3}, checkpoint={"every": 2})
    real = hifigan_generator_loss
    calls = {"n": 0}
    snapshots: list[dict[str, torch.Tensor]] = []

    def poisoned(*args, **kw):
        calls["n"] += 1
        out = real(*args, **kw)
        if calls["n"] >= 3:  # from step 3 on, the generator loss is NaN
            return out._replace(total=out.total * math.nan)
        return out

    orig_step = step_mod.TrainStep.__call__

    def spy(self, batch):
        if calls["n"] >= 2:
            snapshots.append({k: v.clone() for k, v in self.nets.g_raw.state_dict().items()})
        return orig_step(self, batch)

    monkeypatch.setattr(step_mod, "hifigan_generator_loss", poisoned)
    monkeypatch.setattr(step_mod.TrainStep, "__call__", spy)
    code = _train(cfg, tmp_path / "run", target_step=50)
    assert code == ev.EXIT_NONFINITE
    recs = read_events(tmp_path / "run")
    alerts = [r for r in recs if r["event"] == "alert" and r["kind"] == ev.ALERT_NONFINITE]
    assert [a["step"] for a in alerts] == [3, 4, 5]
    end = recs[-1]
    assert end["event"] == "run_end" and end["status"] == "failed"
    assert end["exit_code"] == ev.EXIT_NONFINITE and end["step"] == 5
    # The generator did not move on skipped steps (3, 4, 5): snapshots before steps 3..5
    # and the state after step 5 are all equal to the state after step 2.
    for snap in snapshots[1:]:
        _assert_same_tensors(snapshots[0], snap, "generator")
    # Only the step-2 checkpoint exists: the step-4 one is skipped mid-streak (with an
    # alert) and a failing run never saves at its end.
    assert [c.step for c in list_checkpoints(tmp_path / "run")] == [2]
    skipped = [
        r for r in recs if r["event"] == "alert" and r["kind"] == ev.ALERT_CHECKPOINT_SKIPPED
    ]
    assert [s["step"] for s in skipped] == [4]
    steps = [r for r in recs if r["event"] == "step"]
    assert math.isnan(float_field(steps[-1], "g"))


def test_resume_falls_back_past_corrupt_checkpoint(demo_corpus: Path, tmp_path: Path) -> None:
    cfg = _cfg(demo_corpus, checkpoint={"every": 2})
    run = tmp_path / "run"
    assert _train(cfg, run, target_step=6) == ev.EXIT_OK
    ckpts = list_checkpoints(run)
    assert [c.step for c in ckpts] == [2, 4, 6]
    with open(ckpts[-1].path, "r+b") as f:  # flip bytes in the middle of the newest one
        f.seek(ckpts[-1].bytes // 2)
        f.write(b"\x00garbage\x00")
    assert _train(cfg, run, resume="latest", target_step=8) == ev.EXIT_OK
    recs = read_events(run)
    start = [r for r in recs if r["event"] == "run_start"][-1]
    assert start["start_step"] == 4
    fallback = [r for r in recs if r["event"] == "alert" and r["kind"] == ev.ALERT_RESUME_FALLBACK]
    assert len(fallback) == 1 and "ckpt_00000006" in fallback[0]["message"]
    assert "sha256" in fallback[0]["message"] or "corrupt" in fallback[0]["message"]


def test_resume_refuses_without_valid_checkpoint(demo_corpus: Path, tmp_path: Path) -> None:
    cfg = _cfg(demo_corpus)
    run = tmp_path / "run"
    code = _train(cfg, run, resume="latest", target_step=4)
    assert code == ev.EXIT_NO_CHECKPOINT
    recs = read_events(run)
    assert recs[-1]["event"] == "run_end" and recs[-1]["status"] == "failed"
    assert "no" in recs[-1]["reason"].lower() and "checkpoint" in recs[-1]["reason"].lower()
    assert not [r for r in recs if r["event"] == "step"]  # never a silent restart


def test_validation_reports_every_metric_and_writes_ground_truth_once(
    demo_corpus: Path, tmp_path: Path
) -> None:
    """Each val event carries mel L1, M-STFT, PESQ, STOI, the composite and its time; the
    generated samples are per validation, the ground truth is written once per run (not at
    every validation, not again on resume), and every file follows the umask."""
    import os

    import soundfile as sf

    from trainer.rundir.melpic import read_picture
    from trainer.train import metrics as M

    every = {"val_metrics": ["mel_l1", "mstft", "pesq", "stoi"], "composite": {"pesq": 1.0}}
    cfg = _cfg(demo_corpus, log={"val_every": 2, "val_samples": 2, **every})
    run = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert _train(cfg, run, target_step=4) == ev.EXIT_OK
        assert _train(cfg, run, resume="latest", target_step=6) == ev.EXIT_OK
    finally:
        os.umask(old)
    val = [r for r in read_events(run) if r["event"] == "val"]
    assert [v["step"] for v in val] == [2, 4, 6]
    for v in val:
        assert v["set"] == "val" and v["utterances"] == 4 and v["duration"] > 0
        m = v["metrics"]
        assert set(m) == {"mel_l1", "mstft", "pesq", "stoi", "composite"}
        assert m["mel_l1"] == v["losses"]["mel_l1"] > 0  # the losses of old stay
        assert m["mstft"] > 0 and -0.5 <= m["pesq"] <= 4.65 and 0 <= m["stoi"] <= 1
        expect = m["mel_l1"] + m["mstft"] + (M.PESQ_WB_MAX - m["pesq"])
        assert m["composite"] == pytest.approx(expect)
        gen, gt = v["samples"][:2], v["samples"][2:]
        assert [Path(p).parent.name for p in gen] == [f"step_{v['step']:08d}"] * 2
        assert all(p.endswith("_gen.wav") for p in gen)
        assert gt == val[0]["samples"][2:] and all(p.startswith("samples/gt/") for p in gt)
        # A mel picture beside each WAV, named in the same order.
        assert v["pictures"] == [str(Path(p).with_suffix(".logmel")) for p in v["samples"]]
        for rel in v["pictures"]:
            pic = read_picture(run / rel)
            assert pic.mels == cfg.audio.n_mels and 1 <= pic.frames <= 512
            assert pic.sample_rate == 16000 and pic.frame_hop == cfg.audio.hop_length
            assert pic.db_max - pic.db_min == 80 and max(pic.pixels) > min(pic.pixels)
    # Written at the first validation only: older than the first val record.
    for rel in val[0]["samples"][2:]:
        p = run / rel
        assert p.stat().st_mtime <= val[0]["t"]
        assert sf.info(p).samplerate == 16000 and sf.info(p).frames > 8000
    assert not list(run.glob("samples/step_*/*_gt.wav"))
    for p in run.glob("samples/**/*.wav"):
        assert p.stat().st_mode & 0o777 == 0o644, p


def test_resume_without_target_keeps_the_runs_target(demo_corpus: Path, tmp_path: Path) -> None:
    cfg = _cfg(demo_corpus)
    run = tmp_path / "run"
    assert _train(cfg, run, target_step=3) == ev.EXIT_OK
    assert _train(cfg, run, resume="latest") == ev.EXIT_OK
    starts = [r for r in read_events(run) if r["event"] == "run_start"]
    assert [s["target_step"] for s in starts] == [3, 3]  # not the config's max_steps (2000)
    assert read_events(run)[-1]["step"] == 3
