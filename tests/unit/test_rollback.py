"""StepRollback: both variants (host-checked on CPU, device select on GPU) restore exactly."""

from __future__ import annotations

import pytest
import torch

from trainer.train.rollback import StepRollback


def _setup() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    m = torch.nn.utils.parametrizations.spectral_norm(torch.nn.Linear(4, 3))
    return m, torch.optim.AdamW(m.parameters(), 1e-2, fused=True)


def _state(m: torch.nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    out = [t.clone() for t in m.state_dict().values()]
    for st in opt.state.values():
        out += [v.clone() for v in st.values() if isinstance(v, torch.Tensor)]
    return out


def _step(m: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    opt.zero_grad()
    m(torch.randn(5, 4)).square().mean().backward()
    opt.step()


@pytest.mark.parametrize("variant", ["undo_where", "undo_select", "undo_if"])
@pytest.mark.parametrize("undo", [True, False])
def test_rollback_restores_exactly_or_keeps_the_step(variant: str, undo: bool) -> None:
    m, opt = _setup()
    _step(m, opt)  # state exists
    rb = StepRollback(opt, m)
    before = _state(m, opt)
    rb.capture()
    _step(m, opt)
    after = _state(m, opt)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    arg = undo if variant == "undo_if" else torch.tensor(float(undo))
    getattr(rb, variant)(arg)
    expect = before if undo else after
    for got, want in zip(_state(m, opt), expect, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("variant", ["undo_select", "undo_if"])
def test_rollback_of_the_very_first_step_leaves_a_fresh_adam_state(variant: str) -> None:
    m, opt = _setup()
    rb = StepRollback(opt, m)
    params = [p.clone() for p in m.parameters()]
    rb.capture()
    _step(m, opt)
    getattr(rb, variant)(True if variant == "undo_if" else torch.tensor(1.0))
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), params, strict=True))
    for st in opt.state.values():
        assert all(not v.any() for v in st.values() if isinstance(v, torch.Tensor))
