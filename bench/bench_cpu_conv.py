"""The CPU convolution paths (trainer/models/cpu_conv.py) against PyTorch's own, per layer.

V1's multi-scale discriminator layers (the raw scale) and the whole generator and MSD,
forward and forward + backward, float32, on this CPU; prints figures, asserts nothing.
The last table is the weight-gradient kernel choice (``BMM_MIN_ROWS``/``BMM_MIN_TAPS``):
both kernels on each grouped layer at two batch sizes.

    python bench/bench_cpu_conv.py [--batch 16] [--threads N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def _layer(cpu_conv, h, w, conv, backward: bool, repeats: int) -> float:
    """ms for the grouped layer ``conv`` on ``h`` with weight ``w``: forward, or with the
    backward of ``w`` (and of ``h`` when it requires grad)."""
    s, pad, grp = conv.stride[0], conv.padding[0], conv.groups

    def run() -> None:
        y = cpu_conv.grouped_conv1d(h, w, None, s, pad, grp)
        if backward:
            y.sum().backward()

    return _time(run, repeats)


def _channels_last(t):
    return t.transpose(1, 2).contiguous().transpose(1, 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--segment", type=int, default=8192)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import torch
    import torch.nn.functional as F

    from trainer.config.yamlfile import load
    from trainer.models import build_models, cpu_conv

    torch.set_num_threads(args.threads)
    native = lambda x: False  # noqa: E731
    fast = cpu_conv._fast_path
    b, n = args.batch, args.repeats
    print(f"torch {torch.__version__}, {args.threads} threads, batch {b} x {args.segment}, "
          f"median of {n}, load {os.getloadavg()[0]:.2f}")  # fmt: skip

    cfg = load(ROOT / "config" / "hifigan_v1.yaml")
    g, d = build_models(cfg)
    msd = d.msd.discriminators[1]  # raw-scale shapes, weight norm
    x = torch.randn(b, 1, args.segment)
    layers = []
    with torch.no_grad():
        h = x
        for conv in msd.convs:
            layers.append((conv, h.contiguous()))
            h = F.leaky_relu(conv(h), 0.1)

    print("\nMSD layer (raw scale)              forward ms          forward+backward ms")
    print("                                  pytorch   ours      pytorch   ours")
    for conv, h in layers:
        if conv.groups == 1:
            continue
        w = conv.weight.detach().requires_grad_(True)
        s, pad, grp = conv.stride[0], conv.padding[0], conv.groups
        row = []
        for path, hp in ((native, h), (fast, _channels_last(h))):
            # each path with its input as the network gives it: [B, C, T] / [B, T, C] memory
            cpu_conv._fast_path = path
            hx = hp.detach().requires_grad_(True)
            f = _layer(cpu_conv, hp, w.detach(), conv, False, n)
            fb = _layer(cpu_conv, hx, w, conv, True, n)
            row.append((f, fb))
        cpu_conv._fast_path = fast
        name = f"{conv.in_channels}->{conv.out_channels} k{conv.kernel_size[0]} s{s} g{grp} T{h.shape[-1]}"
        print(f"{name:32s} {row[0][0]:8.1f} {row[1][0]:7.1f}   {row[0][1]:8.1f} {row[1][1]:7.1f}")

    mel = torch.randn(b, cfg.audio.n_mels, args.segment // g.hop)
    print("\nwhole network, forward + backward ms   pytorch     ours   ratio")
    for name, fn in (
        ("generator", lambda: g(mel).sum().backward()),
        ("MSD (3 scales)", lambda: sum(lg.sum() for lg in d.msd(x)[0]).backward()),
    ):
        times = []
        for path in (native, fast):
            cpu_conv._fast_path = path
            times.append(_time(fn, n))
        cpu_conv._fast_path = fast
        print(f"{name:38s} {times[0]:8.0f} {times[1]:8.0f}   {times[0] / times[1]:.2f}x")

    print("\nweight gradient of the grouped layers: batched matmul vs oneDNN (forward + dW ms)")
    min_rows, min_taps = cpu_conv.BMM_MIN_ROWS, cpu_conv.BMM_MIN_TAPS
    for bb in (b, max(1, b // 2)):
        for conv, h in layers:
            if conv.groups == 1:
                continue
            hb = _channels_last(h[:bb])
            w = conv.weight.detach().requires_grad_(True)
            s, pad, grp = conv.stride[0], conv.padding[0], conv.groups
            res = []
            for rows, taps in ((0, 0), (10**12, 10**12)):
                cpu_conv.BMM_MIN_ROWS, cpu_conv.BMM_MIN_TAPS = rows, taps
                res.append(_layer(cpu_conv, hb, w, conv, True, n))
            cpu_conv.BMM_MIN_ROWS, cpu_conv.BMM_MIN_TAPS = min_rows, min_taps
            k = w.shape[-1]
            m = (hb.shape[-1] + 2 * pad - k) // s + 1 + -(-k // s) - 1
            taps = -(-k // s)
            pick = "bmm" if bb * m >= min_rows and taps >= min_taps else "oneDNN"
            print(f"  batch {bb:3d} {conv.in_channels:4d}->{conv.out_channels:<4d} s{s} rows {bb * m:6d} taps {taps:2d}: "
                  f"bmm {res[0]:7.1f}  oneDNN {res[1]:7.1f}  (chosen: {pick})")  # fmt: skip


if __name__ == "__main__":
    main()
