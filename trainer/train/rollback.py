"""Undo one optimizer step on the device, selected by a flag tensor: no host sync.

Why this exists: HiFi-GAN updates D, then computes G's loss *with the updated D*. Whether
G's half of the step is finite is known only after D has stepped, and a non-finite step
must leave both networks (and both optimizers) exactly as they were. The alternatives:

- defer D's step until G's loss is known: G would train against the pre-update D, which
  is a different algorithm from the reference (and from every checkpoint made so far);
- a host sync on G's flag before deciding: costs a device round trip every step, the thing
  the fused-AdamW ``found_inf`` design avoids;
- snapshot D and its optimizer state before D's step and restore it where G's flag is set:
  one grouped copy per step into buffers allocated once, plus one ``torch.where`` per tensor
  (exact, unlike a lerp, which turns -0.0 into +0.0). Memory: one extra copy of D's
  parameters and Adam moments. This is the one used: it keeps the algorithm and the sync-
  free loop, at the price of that memory and a few hundred small kernels per step (queued
  asynchronously behind the step's own work on a GPU).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class StepRollback:
    """``capture()`` before the step; ``undo_where(flag)`` puts everything back where ``flag``
    (a 0-dim tensor, nonzero = undo) is set, on the device.

    Covers the optimizer's parameters and state, and the buffers of ``module`` (e.g. the
    power-iteration vectors of spectral norm, which every training-mode forward advances).
    """

    def __init__(self, opt: torch.optim.Optimizer, module: torch.nn.Module | None = None) -> None:
        self.opt = opt
        self.module = module
        self._live: list[Tensor] = []
        self._snap: list[Tensor] = []

    def _tensors(self) -> list[Tensor]:
        out: list[Tensor] = list(self.module.buffers()) if self.module is not None else []
        for group in self.opt.param_groups:
            for p in group["params"]:
                out.append(p)
                state = self.opt.state.get(p)
                if state:
                    out.extend(v for v in state.values() if isinstance(v, Tensor))
        return out

    @torch.no_grad()
    def capture(self) -> None:
        live = self._tensors()
        if len(live) != len(self._live) or any(
            a is not b for a, b in zip(live, self._live, strict=True)
        ):
            # First step, or the optimizer state was replaced (resume): new buffers, once.
            self._live = live
            self._snap = [torch.empty_like(t) for t in live]
        torch._foreach_copy_(self._snap, self._live)

    @torch.no_grad()
    def undo_where(self, flag: Tensor) -> None:
        if flag.device.type == "cpu":
            # On the CPU reading the flag costs nothing (the loop reads its flags every step
            # anyway): skip the select over every tensor in the common, finite case.
            self.undo_if(bool(flag))
        else:
            self.undo_select(flag)

    @torch.no_grad()
    def undo_if(self, undo: bool) -> None:
        """Host-side variant: copy the snapshot back only when ``undo``."""
        if undo:
            torch._foreach_copy_(self._live, self._snap)
            self._zero_new_state(lambda t: torch.ones((), dtype=torch.bool, device=t.device))

    @torch.no_grad()
    def undo_select(self, flag: Tensor) -> None:
        """Device-side variant: a select per tensor, no host sync (GPU)."""
        conds: dict[torch.device, Tensor] = {}

        def cond(t: Tensor) -> Tensor:
            c = conds.get(t.device)
            if c is None:
                c = conds[t.device] = flag.to(device=t.device, dtype=torch.bool)
            return c

        for t, s in zip(self._live, self._snap, strict=True):
            torch.where(cond(t), s, t, out=t)
        self._zero_new_state(cond)

    def _zero_new_state(self, cond: Callable[[Tensor], Tensor]) -> None:
        # State the step created (an optimizer's very first step) goes back to what a fresh
        # state holds: zeros (Adam's moments and step count).
        known = {id(t) for t in self._live}
        for t in self._tensors():
            if id(t) not in known:
                t.masked_fill_(cond(t), 0)
