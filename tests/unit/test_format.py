"""The training checkpoint's format: one owner of every key, exact round trip, and format 1
(as saved until now) still read."""

from __future__ import annotations

import random
from types import SimpleNamespace

import torch

from tests.ckpt_factory import demo_cfg, train_state
from trainer.checkpointing import format as fmt
from trainer.checkpointing.loadtest import check_state, model_shapes
from trainer.config.build import to_dict
from trainer.models import build_models


def _parts(seed: int) -> SimpleNamespace:
    torch.manual_seed(seed)
    g, d = build_models(demo_cfg())
    og, od = torch.optim.AdamW(g.parameters()), torch.optim.AdamW(d.parameters())
    return SimpleNamespace(
        g_raw=g,
        d_raw=d,
        opt_g=og,
        opt_d=od,
        sched_g=torch.optim.lr_scheduler.ExponentialLR(og, 0.9),
        sched_d=torch.optim.lr_scheduler.ExponentialLR(od, 0.9),
    )


def _state(parts: SimpleNamespace, pos: fmt.Position, world: int = 1) -> dict:
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    cfg = to_dict(demo_cfg())
    return fmt.build_state(parts, scaler, pos, config=cfg, world_size=world, target_step=77)


def test_every_key_written_is_declared_and_the_required_ones_are_written() -> None:
    state = _state(_parts(0), fmt.Position(12, 1, 3))
    assert set(state) == set(fmt.REQUIRED_KEYS) | set(fmt.OPTIONAL_KEYS)
    assert state[fmt.K_FORMAT] == fmt.FORMAT
    assert fmt.format_problem(state) is None and fmt.missing_keys(state) == []


def test_round_trip_restores_weights_optimizers_position_target_and_rng() -> None:
    src = _parts(1)
    for p in src.g_raw.parameters():  # optimizer moments that are not all zeros
        p.grad = torch.ones_like(p)
    src.opt_g.step()
    random.seed(5)
    state = _state(src, fmt.Position(40, 2, 7))
    expected_draw = random.random()
    dst = _parts(2)
    random.seed(6)
    pos, target = fmt.load_state(state, dst, torch.amp.GradScaler("cpu", enabled=False), 1)
    assert pos == fmt.Position(40, 2, 7) and target == 77
    assert random.random() == expected_draw  # the RNG continues where the save left it
    for a, b in zip(src.g_raw.state_dict().values(), dst.g_raw.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert dst.opt_g.state_dict()["state"] and torch.equal(
        dst.opt_g.state_dict()["state"][0]["exp_avg"], src.opt_g.state_dict()["state"][0]["exp_avg"]
    )


def test_position_is_re_expressed_for_another_world_size() -> None:
    state = _state(_parts(0), fmt.Position(10, 0, 6), world=2)
    pos, _ = fmt.load_state(state, _parts(0), torch.amp.GradScaler("cpu", enabled=False), 4)
    assert pos.batch_in_epoch == 3  # 6 batches of 2 ranks = 3 batches of 4


def test_format_1_as_saved_until_now_is_still_read() -> None:
    """Migration: a literal format-1 state (keys typed out as they were saved) loads."""
    cfg = demo_cfg()
    old = train_state(cfg, 20)
    model_cfg = None
    assert check_state(old, 20, model_cfg, model_shapes(cfg)) is None
    pos, target = fmt.load_state(old, _parts(3), torch.amp.GradScaler("cpu", enabled=False), 1)
    assert pos == fmt.Position(20, 0, 20) and target is None  # no target saved: the config's


def test_another_format_is_refused_by_name() -> None:
    assert "this nal-train reads format 1" in (fmt.format_problem({fmt.K_FORMAT: 2}) or "")
    assert "not a training state dict" in (fmt.format_problem([1, 2]) or "")
