"""HiFi-GAN generator (Kong et al., 2020): transposed-conv upsampling + multi-receptive-field fusion."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from trainer.config.schema import GeneratorConfig

from .cpu_conv import apply_conv

LRELU_SLOPE = 0.1
INIT_STD = 0.01


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding for an odd kernel with the given dilation."""
    return (kernel_size * dilation - dilation) // 2


def wn_conv(conv: nn.Module, init: bool = True) -> nn.Module:
    """Weight-normalised conv; the N(0, 0.01) init is applied *before* weight norm.

    The reference initialises after weight_norm, where writing to ``weight`` is a no-op
    (jik876/hifi-gan#145); initialising first makes the intended init take effect.
    """
    if init:
        nn.init.normal_(conv.weight, 0.0, INIT_STD)
    return weight_norm(conv)


def remove_weight_norm_(module: nn.Module) -> int:
    """Bake every weight-norm parametrisation under ``module`` into a plain weight; returns the count."""
    n = 0
    for m in module.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
            n += 1
    return n


class ResBlock1(nn.Module):
    """Three (dilated conv, conv) pairs, each with a residual connection."""

    def __init__(self, channels: int, kernel_size: int, dilation: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            wn_conv(
                nn.Conv1d(
                    channels,
                    channels,
                    kernel_size,
                    1,
                    dilation=d,
                    padding=get_padding(kernel_size, d),
                )
            )
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            wn_conv(nn.Conv1d(channels, channels, kernel_size, 1, padding=get_padding(kernel_size)))
            for _ in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = apply_conv(c1, F.leaky_relu(x, LRELU_SLOPE))
            xt = apply_conv(c2, F.leaky_relu(xt, LRELU_SLOPE))
            x = xt + x
        return x


class ResBlock2(nn.Module):
    """One dilated conv per dilation, each with a residual connection (HiFi-GAN V3)."""

    def __init__(self, channels: int, kernel_size: int, dilation: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            wn_conv(
                nn.Conv1d(
                    channels,
                    channels,
                    kernel_size,
                    1,
                    dilation=d,
                    padding=get_padding(kernel_size, d),
                )
            )
            for d in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = apply_conv(c, F.leaky_relu(x, LRELU_SLOPE)) + x
        return x


class Generator(nn.Module):
    """Mel [B, n_mels, T] -> waveform [B, 1, T * prod(upsample_rates)] in [-1, 1]."""

    def __init__(self, cfg: GeneratorConfig, n_mels: int) -> None:
        super().__init__()
        if len(cfg.upsample_rates) != len(cfg.upsample_kernel_sizes):
            raise ValueError("generator.upsample_kernel_sizes needs one entry per upsample rate")
        if len(cfg.resblock_kernel_sizes) != len(cfg.resblock_dilation_sizes):
            raise ValueError("generator.resblock_dilation_sizes needs one entry per kernel size")
        self.n_mels = n_mels
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.hop = 1
        for r in cfg.upsample_rates:
            self.hop *= r
        ch0 = cfg.upsample_initial_channel
        # Like the reference, conv_pre keeps PyTorch's default init.
        self.conv_pre = wn_conv(nn.Conv1d(n_mels, ch0, 7, 1, padding=3), init=False)
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = ch0
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True)):
            cin, ch = ch0 // 2**i, ch0 // 2 ** (i + 1)
            if ch < 1:
                raise ValueError(
                    f"generator.upsample_initial_channel ({ch0}) is too small for "
                    f"{len(cfg.upsample_rates)} upsampling stages (channels halve at each)"
                )
            self.ups.append(wn_conv(nn.ConvTranspose1d(cin, ch, k, u, padding=(k - u) // 2)))
            for ks, dil in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
                self.resblocks.append(block(ch, ks, dil))
        self.conv_post = wn_conv(nn.Conv1d(ch, 1, 7, 1, padding=3))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"Generator expects mel [B, {self.n_mels}, T], got {tuple(mel.shape)}")
        x = apply_conv(self.conv_pre, mel)
        nk = self.num_kernels
        for i, up in enumerate(self.ups):
            x = apply_conv(up, F.leaky_relu(x, LRELU_SLOPE))
            xs = self.resblocks[i * nk](x)
            for j in range(1, nk):
                xs = xs + self.resblocks[i * nk + j](x)
            x = xs / nk
        # The reference uses leaky_relu's default slope (0.01) here, not LRELU_SLOPE.
        x = apply_conv(self.conv_post, F.leaky_relu(x))
        return torch.tanh(x)

    def remove_weight_norm(self) -> None:
        """Fold weight norm into plain weights for inference (same outputs, less work)."""
        remove_weight_norm_(self)
