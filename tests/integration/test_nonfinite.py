"""A non-finite step changes neither network nor either optimizer: parameters and optimizer
states of G and D are bitwise the same after a forced non-finite step (the trainer on the
demo corpus, in-process)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from tests.conftest import demo_config_dict
from trainer.config.build import from_dict
from trainer.train import loop
from trainer.train import step as step_mod


def _state(t: loop.Trainer) -> dict:
    return copy.deepcopy(
        {
            "g": t.nets.g_raw.state_dict(),
            "d": t.nets.d_raw.state_dict(),
            "opt_g": t.nets.opt_g.state_dict(),
            "opt_d": t.nets.opt_d.state_dict(),
        }
    )


def _differences(a, b, where: str = "") -> list[str]:
    if isinstance(a, torch.Tensor):
        same = a.dtype == b.dtype and a.shape == b.shape
        # Bitwise: compare the raw bytes (NaN == NaN, -0.0 != +0.0).
        same = same and torch.equal(
            a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)
        )
        return [] if same else [where]
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys differ"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}.{k}")]
    if isinstance(a, (list, tuple)):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{where}[{i}]")
        ]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


@pytest.fixture
def trainer(demo_corpus: Path, tmp_path: Path):
    cfg = from_dict(
        demo_config_dict(
            demo_corpus,
            log={"log_every": 1, "val_every": 1000, "val_samples": 0},
            checkpoint={"every": 1000, "milestone_every": 0},
        ),
        "test",
    )
    t = loop.Trainer(cfg, tmp_path / "run", "test.yaml")
    t.setup()
    try:
        yield t
    finally:
        t.close()


def _batches(t: loop.Trainer):
    t.data.sampler.set_epoch(0)
    yield from t.loader


def _poison(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = getattr(step_mod, name)

    def poisoned(*args, **kw):
        out = real(*args, **kw)
        return out._replace(total=out.total * math.nan)

    monkeypatch.setattr(step_mod, name, poisoned)


@pytest.mark.parametrize(
    "poisoned", ["hifigan_generator_loss", "hifigan_discriminator_loss"], ids=["G", "D"]
)
def test_nonfinite_step_leaves_both_nets_and_optimizers_unchanged(
    trainer: loop.Trainer, monkeypatch: pytest.MonkeyPatch, poisoned: str
) -> None:
    batches = _batches(trainer)
    for _ in range(2):  # optimizer states exist and are non-trivial
        assert trainer.train_step(next(batches))[7].item() == 0.0
    before = _state(trainer)
    with monkeypatch.context() as m:
        _poison(m, poisoned)
        out = trainer.train_step(next(batches))
    assert out[7].item() == 1.0  # reported as skipped
    assert _differences(before, _state(trainer)) == []
    # The check can fail: a finite step changes both networks and both optimizers.
    trainer.train_step(next(batches))
    changed = {d.split(".")[1] for d in _differences(before, _state(trainer))}
    assert changed == {"g", "d", "opt_g", "opt_d"}


def test_nonfinite_first_step_leaves_fresh_optimizer_state(
    trainer: loop.Trainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _state(trainer)
    _poison(monkeypatch, "hifigan_generator_loss")
    assert trainer.train_step(next(_batches(trainer)))[7].item() == 1.0
    after = _state(trainer)
    for net in ("g", "d"):
        assert _differences(before[net], after[net]) == []
    # The step created Adam state; it holds what a fresh state holds (zeros, step 0).
    for opt in (trainer.nets.opt_g, trainer.nets.opt_d):
        for st in opt.state.values():
            assert all(not v.any() for v in st.values() if isinstance(v, torch.Tensor))
