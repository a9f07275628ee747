"""Convolutions laid out for training on a CPU: same functions, faster kernels.

On a CPU in float32 PyTorch runs a 1-D convolution through oneDNN in the ``[B, C, T]``
layout, where oneDNN's kernels for HiFi-GAN's shapes run well below the CPU's peak. Every
convolution of the generator and the multi-scale discriminator goes through one of the two
functions here instead (other devices and dtypes take PyTorch's own path, unchanged):

- :func:`apply_conv`: any plain or transposed 1-D convolution as a height-1 2-D one on
  channels-last memory (``[B, T, C]``), where oneDNN uses its direct, blocked kernels in
  both directions. Outputs stay channels-last, so the next convolution, leaky ReLU, the
  residual sums and feature matching read them without a copy. A one-channel input (the
  first layer of each MSD scale) is a matmul over its unfolded windows instead: oneDNN
  would pick the ``[B, C, T]`` layout there and its weight gradient is slow.
- :func:`grouped_conv1d`: the MSD's grouped, strided k=41 layers (4 or 16 groups of 8-64
  channels, where most of a CPU trainer's discriminator time went), with three exact
  rewrites: **polyphase** (a stride-``s`` convolution is a stride-1 one over the input's
  ``s`` phases stacked as channels, with the kernel split the same way: ``s`` times the
  channels per group, which the vectorised kernels want, and no output computed only to be
  dropped); **channels-last** forward and input gradient; and the **weight gradient as one
  batched matmul per tap** on the long layers (with the phases channels-last, tap ``q``'s
  gradient is ``gy^T @ X[rows q .. q + B*m]`` for every group at once, without a copy of the
  input), far faster there than oneDNN's weight-gradient kernel; short layers keep oneDNN's.

Measured on V1, batch 16 x 8192 samples, 2 threads: a training step 15.0 s -> 12.1 s
(``bench/bench_train_pairs.py`` has it beside the reference trainer). The results are the
convolutions' to float rounding (a different summation order; the tests hold forward and
gradients to PyTorch's own).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_CL = torch.channels_last
# The weight gradient is a per-tap batched matmul when the phases have at least this many
# rows (batch x phase length) and the phase kernel this many taps (stride <= 2 for k=41);
# elsewhere oneDNN's kernel is as fast or faster (measured: bench/bench_cpu_conv.py).
BMM_MIN_ROWS = 4096
BMM_MIN_TAPS = 16


def _fast_path(x: torch.Tensor) -> bool:
    """float32 on a CPU with oneDNN, outside autocast (the weights are x's dtype there) and
    outside ``torch.compile`` (which lays out and fuses convolutions itself)."""
    return (
        x.device.type == "cpu"
        and not torch.compiler.is_compiling()
        and x.dtype == torch.float32
        and x.dim() == 3
        and torch.backends.mkldnn.enabled
        and torch.backends.mkldnn.is_available()
        and not torch.is_autocast_enabled("cpu")
    )


def _hooked(m: nn.Module) -> bool:
    """Whether calling ``m`` runs hooks that reading ``m.weight`` would skip: torch's old
    weight norm and spectral norm (a reference-style module) recompute ``weight`` in a
    forward pre-hook, pruning masks it there."""
    return bool(
        m._forward_pre_hooks
        or m._forward_hooks
        or nn.modules.module._global_forward_pre_hooks
        or nn.modules.module._global_forward_hooks
    )


def apply_grouped(m: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``m(x)`` for a grouped 1-D convolution (dilation 1, zero padding): through
    :func:`grouped_conv1d` on a CPU in float32, else ``m`` itself."""
    if m.padding_mode != "zeros" or m.dilation[0] != 1 or _hooked(m):
        return m(x)
    return grouped_conv1d(x, m.weight, m.bias, m.stride[0], m.padding[0], m.groups)


def apply_conv(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``m(x)`` for a 1-D (transposed) convolution ``m`` with zero padding; on a CPU in
    float32 channels-last as the module docstring says (the weight is laid out once per
    call, not once per direction)."""
    if not _fast_path(x) or m.padding_mode != "zeros" or _hooked(m):
        return m(x)
    w = m.weight  # a weight-normed conv computes it here, once
    s, p, d = m.stride[0], m.padding[0], m.dilation[0]
    transposed = isinstance(m, nn.ConvTranspose1d)
    if not transposed and w.shape[1] == 1 and m.groups == 1 and s == 1 and d == 1:
        # [B, 1, T] -> windows [B, T_out, k] @ [k, O] -> [B, T_out, O], viewed [B, O, T_out]
        windows = F.pad(x, (p, p)).unfold(-1, w.shape[-1], 1).squeeze(1)
        y = torch.matmul(windows, w.view(w.shape[0], -1).t())
        if m.bias is not None:
            y = y + m.bias
        return y.transpose(1, 2)
    x4 = x.unsqueeze(2)
    if not x4.is_contiguous(memory_format=_CL):
        x4 = x4.contiguous(memory_format=_CL)
    w4 = w.unsqueeze(2).contiguous(memory_format=_CL)
    if transposed:
        y = F.conv_transpose2d(
            x4, w4, m.bias, (1, s), (0, p), (0, m.output_padding[0]), m.groups, (1, d)
        )
    else:
        y = F.conv2d(x4, w4, m.bias, (1, s), (0, p), (1, d), m.groups)
    return y.squeeze(2)


def grouped_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    groups: int,
) -> torch.Tensor:
    """``F.conv1d(x, weight, bias, stride, padding, groups=groups)`` (dilation 1, zero
    padding); on a CPU in float32 as the module docstring says, channels-last out."""
    if not _fast_path(x):
        return F.conv1d(x, weight, bias, stride, padding, 1, groups)
    k = weight.shape[-1]
    n_out = (x.shape[-1] + 2 * padding - k) // stride + 1
    if n_out < 1:
        return F.conv1d(x, weight, bias, stride, padding, 1, groups)  # its own error
    wp = _phase_kernel(weight, stride, groups)
    return _PhaseConv.apply(x, wp, bias, stride, padding, groups, n_out)


def _phase_kernel(w: torch.Tensor, s: int, groups: int) -> torch.Tensor:
    """[O, Cg, k] -> [O, s * Cg, ceil(k / s)] in channels-last memory (``[O, taps, s * Cg]``,
    what oneDNN reads; one copy): input channel ``r * Cg + c`` of each group is phase ``r`` of
    its channel ``c`` (the order :meth:`_PhaseConv.phases` lays out)."""
    o, cg, k = w.shape
    taps = -(-k // s)
    wp = F.pad(w, (0, taps * s - k)) if taps * s != k else w
    wp = wp.reshape(o, cg, taps, s).permute(0, 2, 3, 1).contiguous()  # [O, taps, s, Cg]
    return wp.view(o, taps, s * cg).transpose(1, 2)


def _phase_rows(s: int, p: int, m: int, length: int) -> list[tuple[int, int]]:
    """``(r, n)`` per phase ``r``: rows ``p // s .. p // s + n - 1`` of phase ``r`` hold
    ``x[r + t * s]`` (``x`` already shifted by ``p % s``, ``length`` rows); the rows before
    are padding, the rows after are padding or past the last window."""
    lead = p // s
    return [(r, max(0, min(m - lead, -(-(length - r) // s)))) for r in range(s)]


class _PhaseConv(torch.autograd.Function):
    """The stride-``s`` grouped convolution of ``x`` with phase kernel ``wp`` (see above)."""

    @staticmethod
    def phases(x: torch.Tensor, s: int, p: int, groups: int, m: int, extra: int) -> torch.Tensor:
        """The zero-padded input's phases, channels-last and flat: ``[B * m + extra, s * C]``,
        row ``b * m + t`` holding ``x_pad[b, :, t * s : t * s + s]`` grouped as
        ``(group, phase, channel)``; the ``extra`` rows at the end are zero. One copy of
        ``x`` (two when ``p`` is not a multiple of ``s``)."""
        b, c, length = x.shape
        cg = c // groups
        buf = x.new_empty(b * m + extra, s * c)
        dst = buf[: b * m].view(b, m, groups, s, cg)
        xt = x.transpose(1, 2)  # [B, L, C]: a view (channels-last x: contiguous)
        if p % s:
            xt = F.pad(xt, (0, 0, p % s, 0))  # shift so the pad is whole rows of phases
            length += p % s
        lead = p // s
        for r, n in _phase_rows(s, p, m, length):
            dst[:, :lead, :, r].zero_()
            dst[:, lead + n :, :, r].zero_()
            if n:
                dst[:, lead : lead + n, :, r].copy_(xt[:, r : r + s * n : s].view(b, n, groups, cg))
        buf[b * m :].zero_()
        return buf

    @staticmethod
    def unphase(
        gxp: torch.Tensor, s: int, p: int, groups: int, m: int, length: int
    ) -> torch.Tensor:
        """The gradient of :meth:`phases`: ``gxp`` ``[B, s*C, 1, m]`` (channels-last) back to
        ``x``'s ``[B, C, length]``, channels-last and dense (a strided or ``[B, C, T]``
        gradient would slow every elementwise op it meets, leaky ReLU's backward first).
        Inputs past the last window get zero; one copy."""
        b, sc = gxp.shape[0], gxp.shape[1]
        c, cg = sc // s, sc // s // groups
        src = gxp.squeeze(2).transpose(1, 2).reshape(b, m, groups, s, cg)
        shift = p % s  # phases() shifted x by this many rows
        total = length + shift
        out = gxp.new_empty(b, total, groups, cg)
        lead = p // s
        for r, n in _phase_rows(s, p, m, total):
            if n:
                out[:, r : r + s * n : s] = src[:, lead : lead + n, :, r]
            if r + s * n < total:
                out[:, r + s * n :: s].zero_()
        out = out.view(b, total, c)
        if shift:
            out = out[:, shift:].contiguous()
        return out.transpose(1, 2)

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        wp: torch.Tensor,
        bias: torch.Tensor | None,
        s: int,
        p: int,
        groups: int,
        n_out: int,
    ) -> torch.Tensor:
        b, c, length = x.shape
        taps = wp.shape[-1]
        m = n_out + taps - 1  # phase length the stride-1 convolution reads
        buf = _PhaseConv.phases(x, s, p, groups, m, taps)
        xcl = buf[: b * m].view(b, m, s * c).transpose(1, 2)  # [B, s*C, m], channels-last
        # x, not its phases: x is alive anyway (a feature, the next layer's input), the
        # phases would be a second copy of every grouped layer's input for the whole
        # backward (~0.5 GB at V1 batch 16); the weight gradient lays them out again.
        ctx.save_for_backward(x, wp)
        ctx.conf = (b, c, length, s, p, groups, m, bias is not None)  # type: ignore[attr-defined]
        return F.conv2d(xcl.unsqueeze(2), wp.unsqueeze(2), bias, 1, 0, 1, groups).squeeze(2)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, gy: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, wp = ctx.saved_tensors  # type: ignore[attr-defined]
        b, c, length, s, p, groups, m, has_bias = ctx.conf  # type: ignore[attr-defined]
        need_x, need_w, need_b = ctx.needs_input_grad[:3]  # type: ignore[attr-defined]
        o, taps = wp.shape[0], wp.shape[-1]
        gy4 = gy.unsqueeze(2).contiguous(memory_format=_CL)
        wp4 = wp.unsqueeze(2)  # channels-last memory: oneDNN takes that layout
        conf = ([o], [1, 1], [0, 0], [1, 1], False, [0, 0], groups)
        gx = gwp = gb = None
        if need_x:
            # the input's values do not enter its gradient: its shape is all that is read
            shape = x.new_zeros(()).expand(b, s * c, 1, m)
            gxp = torch.ops.aten.convolution_backward(gy4, shape, wp4, *conf, [True, False, False])[
                0
            ]
            gx = _PhaseConv.unphase(gxp, s, p, groups, m, length)
        if need_w:
            buf = _PhaseConv.phases(x, s, p, groups, m, taps)
            if b * m >= BMM_MIN_ROWS and taps >= BMM_MIN_TAPS:
                gwp = _weight_grad_bmm(gy, buf, b, m, groups, taps)
            else:
                xcl4 = buf[: b * m].view(b, m, s * c).transpose(1, 2).unsqueeze(2)
                gwp = torch.ops.aten.convolution_backward(
                    gy4, xcl4, wp4, *conf, [False, True, False]
                )[1].squeeze(2)
        if need_b and has_bias:
            gb = gy.sum((0, 2))
        return gx, gwp, gb, None, None, None, None


def _weight_grad_bmm(
    gy: torch.Tensor, buf: torch.Tensor, b: int, m: int, groups: int, taps: int
) -> torch.Tensor:
    """The phase kernel's gradient ``[O, C' / groups, taps]``: for tap ``q``,
    ``sum_rows gy[row] (x) X[row + q]`` per group, one ``bmm`` over the groups.

    ``gy`` is padded to ``m`` rows per batch item with zeros, so the flat rows of ``buf``
    (phases, ``m`` per item, ``taps`` zero rows at the end) line up for every tap without a
    copy of the input: a zero row of ``gy`` meets the next item's first rows."""
    o, n_out = gy.shape[1], gy.shape[2]
    og, cg = o // groups, buf.shape[1] // groups
    gpad = gy.new_empty(b, m, o)
    gpad[:, :n_out] = gy.transpose(1, 2)
    gpad[:, n_out:].zero_()
    a = gpad.view(b * m, groups, og).permute(1, 2, 0)  # [groups, Og, rows]
    out = gy.new_empty(taps, groups, og, cg)
    for q in range(taps):
        torch.bmm(a, buf[q : q + b * m].view(b * m, groups, cg).permute(1, 0, 2), out=out[q])
    return out.permute(1, 2, 3, 0).reshape(o, cg, taps)
