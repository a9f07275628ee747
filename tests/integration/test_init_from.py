"""Fine-tuning: ``nal-train train --init-from CKPT`` starts a new run from another run's
weights (generator and discriminators, or the generator only) with this config's optimizer
settings, learning rate, schedule and step 0; the source goes through the load test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from tests.ckpt_factory import demo_cfg, other_model_cfg, train_state
from tests.conftest import ROOT, demo_config_dict, nal_train_cmd, read_events, write_config
from trainer.checkpointing.lineage import model_config
from trainer.checkpointing.loadtest import load_checkpoint
from trainer.checkpointing.store import save_checkpoint
from trainer.config.build import from_dict, to_dict
from trainer.events import schema as ev
from trainer.rundir.checkpoints import list_checkpoints
from trainer.rundir.layout import checkpoint_paths
from trainer.train import loop
from trainer.train.errors import TrainerError


def _source(tmp_path: Path, cfg, step: int = 7, lr: float = 1e-6) -> Path:
    """A finished run's checkpoint whose optimizers have decayed to ``lr``."""
    torch.manual_seed(99)
    state = train_state(cfg, step)
    for key in ("opt_g", "opt_d"):
        for group in state[key]["param_groups"]:
            group["lr"] = group["initial_lr"] = lr
        for i, p in enumerate(state[key]["param_groups"][0]["params"]):
            state[key]["state"][p] = {"step": torch.tensor(5.0), "marker": torch.tensor([i])}
    run = tmp_path / "source"
    save_checkpoint(run, step, 3, state, model_config=model_config(to_dict(cfg)))
    return checkpoint_paths(run, step)[0]


def _setup(cfg, tmp_path: Path, src: Path, **kw) -> loop.Trainer:
    t = loop.Trainer(cfg, tmp_path / "ft", "ft.yaml", init_from=str(src), **kw)
    try:
        t.setup()
    except BaseException:
        t.close()
        raise
    return t


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _cfg(demo_corpus: Path, **optim):
    return from_dict(demo_config_dict(demo_corpus, optim=optim), "ft.yaml")


def test_init_from_takes_the_weights_and_starts_fresh(demo_corpus: Path, tmp_path: Path) -> None:
    src = _source(tmp_path, demo_cfg())
    source = load_checkpoint(src)
    cfg = _cfg(demo_corpus, lr_g=3e-4, lr_d=1e-4)
    t = _setup(cfg, tmp_path, src)
    try:
        assert _same(t.nets.g_raw.state_dict(), source["generator"])
        assert _same(t.nets.d_raw.state_dict(), source["discriminators"])
        assert t.pos.step == 0 and t.pos.epoch == 0
        assert [g["lr"] for g in t.nets.opt_g.param_groups] == [3e-4]  # never the source's 1e-6
        assert [g["lr"] for g in t.nets.opt_d.param_groups] == [1e-4]
        assert not t.nets.opt_g.state and not t.nets.opt_d.state  # fresh Adam moments
        assert t.nets.sched_g.last_epoch == 0
    finally:
        t.close()
    # --init-optimizers: the moments come along, the learning rate still does not.
    t = _setup(cfg, tmp_path, src, init_optimizers=True)
    try:
        assert t.nets.opt_g.state and [g["lr"] for g in t.nets.opt_g.param_groups] == [3e-4]
        assert t.nets.opt_g.param_groups[0]["initial_lr"] == 3e-4 and t.pos.step == 0
    finally:
        t.close()


def test_generator_only_from_a_run_with_other_discriminators(
    demo_corpus: Path, tmp_path: Path
) -> None:
    other_d = demo_cfg(discriminator={"mpd_channels": [4, 8, 16, 32, 32]})
    src = _source(tmp_path, other_d)
    cfg = _cfg(demo_corpus)
    with pytest.raises(TrainerError) as e:  # all weights: the discriminators do not fit
        _setup(cfg, tmp_path, src)
    assert e.value.exit_code == ev.EXIT_NO_CHECKPOINT
    assert "its discriminators does not fit this config's model" in str(e.value)
    torch.manual_seed(cfg.train.seed)
    t = _setup(cfg, tmp_path, src, init_generator_only=True)
    try:
        assert _same(t.nets.g_raw.state_dict(), load_checkpoint(src)["generator"])
        assert not _same(t.nets.d_raw.state_dict(), load_checkpoint(src)["discriminators"])
    finally:
        t.close()


@pytest.mark.parametrize(
    "spoil, needle",
    [
        ("shapes", "its generator does not fit this config's model: "),
        ("hash", "sha256 mismatch"),
        ("missing", "file does not exist"),
    ],
)
def test_an_unusable_source_is_refused_with_exit_5(
    demo_corpus: Path, tmp_path: Path, spoil: str, needle: str
) -> None:
    src = _source(tmp_path, other_model_cfg() if spoil == "shapes" else demo_cfg())
    if spoil == "hash":
        src.write_bytes(b"\0" * src.stat().st_size)
    elif spoil == "missing":
        src = src.with_name("ckpt_00000099.pt")
    run = tmp_path / "ft"
    code = loop.train(_cfg(demo_corpus), run, "ft.yaml", init_from=str(src), target_step=2)
    assert code == ev.EXIT_NO_CHECKPOINT
    end = read_events(run)[-1]
    assert end["event"] == "run_end" and needle in end["reason"] and str(src) in end["reason"]
    assert not list_checkpoints(run)


@pytest.mark.slow
def test_a_fine_tune_of_a_real_run_starts_at_step_0_with_the_configured_lr(
    demo_corpus: Path, tmp_path: Path
) -> None:
    """Real processes: a source run whose learning rate has decayed (lr_decay 0.5 per epoch,
    2 batches per epoch), then a fine-tune from its last checkpoint with another config."""
    common = {"log": {"log_every": 1, "val_every": 1000}, "checkpoint": {"every": 1000}}
    src_cfg = write_config(
        tmp_path / "src.yaml",
        demo_config_dict(demo_corpus, train={"batch_size": 16}, optim={"lr_decay": 0.5}, **common),
    )
    ft_cfg = write_config(
        tmp_path / "ft.yaml",
        demo_config_dict(demo_corpus, optim={"lr_g": 3e-4, "lr_d": 1e-4}, **common),
    )

    def nal(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = nal_train_cmd() + ["train", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)

    out = nal("--config", str(src_cfg), "--run-dir", str(tmp_path / "src"), "--target-step", "4")
    assert out.returncode == 0, out.stderr[-3000:]
    src = list_checkpoints(tmp_path / "src")[-1]
    assert src.step == 4
    decayed = [r["lr_g"] for r in read_events(tmp_path / "src") if r["event"] == "step"][-1]
    assert decayed == pytest.approx(2e-4 * 0.5)  # the source's schedule moved on

    ft = tmp_path / "ft"
    out = nal("--config", str(ft_cfg), "--run-dir", str(ft), "--init-from", str(src.path),
              "--target-step", "2")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    recs = read_events(ft)
    start = recs[0]
    assert start["event"] == "run_start" and start["start_step"] == 0
    assert start["init_from"] == str(src.path) and start["init_from_sha256"] == src.sha256
    assert start["init_from_step"] == 4 and start["init_generator_only"] is False
    assert start["resumed_from"] is None and start["parent_step"] is None
    steps = [r for r in recs if r["event"] == "step"]
    assert [s["step"] for s in steps] == [1, 2]
    assert {(s["lr_g"], s["lr_d"]) for s in steps} == {(3e-4, 1e-4)}
    state = load_checkpoint(list_checkpoints(ft)[-1].path)
    assert state["step"] == 2 and state["sched_g"]["last_epoch"] == 0
    assert "initialised the generator and discriminators" in (ft / "train.log").read_text()

    # A fine-tune is a fresh start: refused in a run dir that holds a run, and never mixed
    # with --resume.
    out = nal("--config", str(ft_cfg), "--run-dir", str(ft), "--init-from", str(src.path))
    assert out.returncode == ev.EXIT_USAGE and "already holds a run" in out.stderr
    out = nal("--run-dir", str(ft), "--resume", "latest", "--init-from", str(src.path))
    assert out.returncode == ev.EXIT_USAGE and "choose one" in out.stderr
