"""One training step: a D update, then a G update, with no host sync.

G trains against the updated D, as in the reference. A non-finite step changes neither
network nor either optimizer: with fused AdamW the skip happens inside the kernel
(``found_inf``), and D's update, already made when G's half turns out bad, is put back on
the device (:class:`~trainer.train.rollback.StepRollback`). The figures come back as a
:class:`StepResult` of device tensors; the loop sums them with :class:`StepTotals` and
syncs once per logging step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from trainer.audio import MelSpectrogram
from trainer.config.schema import Config
from trainer.losses import ReconstructionLoss, hifigan_discriminator_loss, hifigan_generator_loss
from trainer.train.rollback import StepRollback
from trainer.train.startup import Nets, Precision


class StepResult(NamedTuple):
    """One step's figures: 0-dim float tensors on the device (reading one is a host sync)."""

    g: torch.Tensor  # the generator's total loss
    d: torch.Tensor  # the discriminators' loss
    recon: torch.Tensor  # the reconstruction loss (loss.recon), unweighted
    adv: torch.Tensor
    fm: torch.Tensor
    grad_norm_g: torch.Tensor
    grad_norm_d: torch.Tensor
    bad: torch.Tensor  # 1.0 when the step was skipped (a non-finite loss or gradient)


class StepTotals:
    """Sums of the StepResults since the last logging step, on the device (no sync)."""

    def __init__(self, device: torch.device) -> None:
        self._sum = torch.zeros(len(StepResult._fields), device=device)
        self.steps = 0
        self.seconds = 0.0  # wall time of those steps, as the host saw it

    def add(self, result: StepResult) -> None:
        self._sum += torch.stack(result)
        self.steps += 1

    def means(self) -> dict[str, float]:
        """Each figure's mean by StepResult field name: the host sync of a logging step."""
        return dict(zip(StepResult._fields, (self._sum / self.steps).tolist(), strict=True))

    def reset(self) -> None:
        self._sum.zero_()
        self.steps = 0
        self.seconds = 0.0


class TrainStep:
    """The D/G update over ``nets``; call it with a batch, get a StepResult."""

    def __init__(
        self,
        cfg: Config,
        nets: Nets,
        precision: Precision,
        mel: MelSpectrogram,
        recon: ReconstructionLoss,
        device: torch.device,
    ) -> None:
        self.loss_cfg = cfg.loss
        self.grad_clip = cfg.optim.grad_clip
        self.nets = nets
        self.precision = precision
        self.mel = mel
        self.recon = recon
        self.device = device
        self.rollback_d = StepRollback(nets.opt_d, nets.d_raw)

    def __call__(self, batch: dict[str, torch.Tensor]) -> StepResult:
        """One D update then one G update."""
        n, autocast = self.nets, self.precision.autocast
        audio = batch["audio"].to(self.device, non_blocking=True)
        with torch.no_grad():
            mel = (
                batch["mel"].to(self.device, non_blocking=True)
                if "mel" in batch
                else self.mel(audio)
            )
        with autocast():
            fake = n.g(mel)

        # D's state before this step's forwards and update, restored if the step is bad.
        self.rollback_d.capture()
        # Discriminators on detached fake audio (real and fake in one batched pass).
        n.d_raw.requires_grad_(True)
        with autocast():
            real_logits, fake_logits, _, _ = n.d(audio, fake.detach())
        loss_d = hifigan_discriminator_loss(real_logits, fake_logits).total
        # D steps before G's loss is known (G trains against the updated D, as in the
        # reference); if G's half turns out non-finite, D's update is rolled back below.
        bad_d, norm_d = self._backward(n.opt_d, n.d_raw, loss_d)
        self._apply(n.opt_d, bad_d)

        # Generator: the real half needs no graph and D needs no weight gradients.
        n.d_raw.requires_grad_(False)
        with torch.no_grad(), autocast():
            _, real_feats = self._score(audio)
        with autocast():
            fake_logits, fake_feats = self._score(fake)
        recon = self.recon(fake, audio)
        gl = hifigan_generator_loss(
            recon,
            fake_logits,
            real_feats,
            fake_feats,
            lambda_recon=self.loss_cfg.lambda_recon,
            lambda_adv=self.loss_cfg.lambda_adv,
            lambda_fm=self.loss_cfg.lambda_fm,
        )
        bad_g, norm_g = self._backward(n.opt_g, n.g_raw, gl.total)
        # A non-finite step changes neither network nor either optimizer: G is skipped
        # when either half is bad, and D (weights, Adam state, spectral-norm vectors) is
        # put back as it was before the step (its own update was already skipped if bad).
        bad = torch.maximum(bad_d, bad_g)
        self._apply(n.opt_g, bad)
        self.rollback_d.undo_where(bad)
        n.d_raw.requires_grad_(True)
        return StepResult(
            g=gl.total.detach().float(),
            d=loss_d.detach().float(),
            recon=gl.recon.detach().float(),
            adv=gl.adv.detach().float(),
            fm=gl.fm.detach().float(),
            grad_norm_g=norm_g.float(),
            grad_norm_d=norm_d.float(),
            bad=bad,
        )

    def _score(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[Any]]:
        # The G step bypasses D's DDP wrapper: D takes no gradient there, so no all-reduce.
        return self.nets.score_fn(x)

    def _backward(
        self, opt: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of ``loss`` (unscaled, clipped); returns (non-finite flag, grad norm).

        Both on the device; the flag is 1.0 when the loss or a gradient is not finite.
        """
        opt.zero_grad(set_to_none=True)
        params = list(module.parameters())
        if self.precision.name == "fp16":
            self.precision.scaler.scale(loss).backward()
            self.precision.scaler.unscale_(opt)
        else:
            loss.backward()
        norm = _grad_norm(params, self.grad_clip)
        bad = (~torch.isfinite(loss.detach()) | ~torch.isfinite(norm)).float()
        return bad, norm

    def _apply(self, opt: torch.optim.Optimizer, bad: torch.Tensor) -> None:
        """Step ``opt`` unless ``bad``: with fused AdamW the skip happens inside the kernel
        (``found_inf``), so no host sync is needed; the other paths sync anyway."""
        if self.precision.name == "fp16":
            if not bool(bad.item()):
                self.precision.scaler.step(opt)
            self.precision.scaler.update()
        elif self.nets.fused:
            opt.found_inf = bad  # type: ignore[attr-defined]
            opt.grad_scale = None  # type: ignore[attr-defined]
            opt.step()
        elif not bool(bad.item()):
            opt.step()


def _grad_norm(params: list[nn.Parameter], clip: float | None) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads, foreach=True)
    if clip:
        torch.nn.utils.clip_grads_with_norm_(params, clip, norm, foreach=True)
    return norm
