"""The generator rewritten for inference: same function, a layout CPUs run faster.

A trained :class:`~trainer.models.generator.Generator` becomes an :class:`InferenceGenerator`
that computes the same waveform (to float rounding, ~1e-8) with three changes that matter on
a CPU and cost nothing elsewhere:

- weight norm is folded into plain weights (the reference does this too);
- every 1-D convolution runs as a 2-D one of height 1 on channels-last tensors: oneDNN (and
  ONNX Runtime's NCHWc kernels, once exported) use their blocked, vectorised paths for 2-D
  convolutions and skip the layout reorders a 1-D convolution pays on every call (measured
  1.3x eager on V1, more once exported: ``bench/bench_vocode.py``);
- the mean over the multi-receptive-field blocks (``/ num_kernels``) is folded into the next
  convolution's weights: leaky ReLU is positively homogeneous, so
  ``W * lrelu(x / n) == (W / n) * lrelu(x)``, and one pass over the largest tensors is saved.

The input and output are those of the training generator: mel ``[B, n_mels, T]`` in, audio
``[B, 1, T * hop]`` out, so vocoding, export and parity checks treat both alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .generator import LRELU_SLOPE, Generator, ResBlock1, ResBlock2

# conv_post's input activation: the reference uses leaky_relu's default slope there.
POST_SLOPE = 0.01


def _as_2d(conv: nn.Module, scale: float = 1.0) -> nn.Module:
    """A height-1 2-D copy of a 1-D (transposed) convolution, channels-last, weights x ``scale``."""
    k, s, p, d = conv.kernel_size[0], conv.stride[0], conv.padding[0], conv.dilation[0]
    if isinstance(conv, nn.ConvTranspose1d):
        if conv.output_padding[0] or conv.groups != 1:
            raise ValueError("unsupported transposed convolution (output_padding or groups)")
        new: nn.Module = nn.ConvTranspose2d(
            conv.in_channels, conv.out_channels, (1, k), (1, s), padding=(0, p), dilation=(1, d)
        )
    elif isinstance(conv, nn.Conv1d):
        if conv.groups != 1 or conv.padding_mode != "zeros":
            raise ValueError("unsupported convolution (groups or padding mode)")
        new = nn.Conv2d(
            conv.in_channels, conv.out_channels, (1, k), (1, s), padding=(0, p), dilation=(1, d)
        )
    else:
        raise TypeError(f"not a 1-D convolution: {type(conv).__name__}")
    with torch.no_grad():  # a weight-normed conv's ``weight`` is already g * v / |v|
        new.weight.copy_(conv.weight.detach().unsqueeze(2) * scale)
        new.bias.copy_(conv.bias.detach())
    return new.to(device=conv.weight.device, dtype=conv.weight.dtype).to(
        memory_format=torch.channels_last
    )


class _Block(nn.Module):
    """One residual block as pairs ``(a, b)``: ``x = b(lrelu(a(lrelu(x)))) + x`` (ResBlock1) or
    ``x = a(lrelu(x)) + x`` (ResBlock2, no ``b``)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        if isinstance(block, ResBlock1):
            self.a = nn.ModuleList(_as_2d(c) for c in block.convs1)
            self.b = nn.ModuleList(_as_2d(c) for c in block.convs2)
        elif isinstance(block, ResBlock2):
            self.a = nn.ModuleList(_as_2d(c) for c in block.convs)
            self.b = nn.ModuleList()
        else:
            raise TypeError(f"unknown residual block {type(block).__name__}")

    def forward(self, x: torch.Tensor, lx: torch.Tensor | None = None) -> torch.Tensor:
        """``lx``: ``lrelu(x)`` when the caller has it (the blocks of one stage share it).
        Ops on a tensor made here run in place: one allocation less per pass (inference
        only: nothing here keeps a graph)."""
        for i, a in enumerate(self.a):
            t = a(lx if i == 0 and lx is not None else F.leaky_relu(x, LRELU_SLOPE))
            if len(self.b):
                t = self.b[i](F.leaky_relu_(t, LRELU_SLOPE))
            x = t.add_(x)
        return x


class InferenceGenerator(nn.Module):
    """A :class:`Generator`'s function in the CPU-friendly layout (see the module docstring)."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        g = generator  # read only: each ``.weight`` below is the weight-norm-folded one
        self.n_mels = g.n_mels
        self.hop = g.hop
        nk = g.num_kernels
        self.num_kernels = nk
        self.conv_pre = _as_2d(g.conv_pre)
        # The mean over the previous stage's blocks is folded into each later convolution.
        self.ups = nn.ModuleList(
            _as_2d(u, 1.0 if i == 0 else 1.0 / nk) for i, u in enumerate(g.ups)
        )
        self.resblocks = nn.ModuleList(_Block(b) for b in g.resblocks)
        self.conv_post = _as_2d(g.conv_post, 1.0 / nk)
        self.eval()
        self.requires_grad_(False)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"Generator expects mel [B, {self.n_mels}, T], got {tuple(mel.shape)}")
        x = self.conv_pre(mel.unsqueeze(2))  # channels-last weights make the rest channels-last
        nk = self.num_kernels
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu_(x, LRELU_SLOPE))  # x: made here (conv_pre's or a sum)
            lx = F.leaky_relu(x, LRELU_SLOPE)  # every block of the stage starts with it
            xs = self.resblocks[i * nk](x, lx)
            for j in range(1, nk):
                xs = xs.add_(self.resblocks[i * nk + j](x, lx))
            x = xs  # the sum; its mean is folded into the next convolution
        x = self.conv_post(F.leaky_relu_(x, POST_SLOPE))
        return torch.tanh_(x).squeeze(2)


def for_inference(generator: Generator) -> InferenceGenerator:
    """``generator`` (trained, any weight-norm state) as an :class:`InferenceGenerator` on its
    device and dtype; the original is left untouched."""
    return InferenceGenerator(generator)
