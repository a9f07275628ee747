"""Files in the reference HiFi-GAN trainer's formats (jik876/hifi-gan), made from our own
models: ``g_XXXXXXXX`` = ``{"generator": state_dict}``, ``do_XXXXXXXX`` = ``{"mpd", "msd",
"optim_g", "optim_d", "steps", "epoch"}`` and its ``config.json``, with the documented key
names.

The weight norm is torch's own old API (``torch.nn.utils.weight_norm`` / ``spectral_norm``,
which the reference uses and whose names are ``weight_g``/``weight_v``/``weight_orig``/...),
applied to our modules by torch itself, and the optimizers are built as the reference builds
them (``optim_d`` over msd's parameters, then mpd's): so these files do not depend on the
importer's own name mapping, and a wrong mapping fails the tests that read them.
"""

from __future__ import annotations

import copy
import itertools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REF_DISCRIMINATOR = {
    "periods": (2, 3, 5, 7, 11),
    "msd_scales": 3,
    "mpd_channels": (32, 128, 512, 1024, 1024),
    "msd_channels": (128, 128, 256, 512, 1024, 1024, 1024),
}
# Small discriminators (a fork's widths) so that a do_ file stays a few MB in the tests.
TINY_DISCRIMINATOR = {
    "mpd_channels": (4, 8, 16, 16, 16),
    "msd_channels": (8, 8, 16, 16, 16, 16, 16),
}


def reference_config(cfg: Any) -> dict[str, Any]:
    """The reference's config.json keys for one of our configs (config_v1.json's layout)."""
    a, g, o, t = cfg.audio, cfg.generator, cfg.optim, cfg.train
    return {
        "resblock": g.resblock,
        "num_gpus": 0,
        "batch_size": t.batch_size,
        "learning_rate": o.lr_g,
        "adam_b1": o.betas[0],
        "adam_b2": o.betas[1],
        "lr_decay": o.lr_decay,
        "seed": t.seed,
        "upsample_rates": list(g.upsample_rates),
        "upsample_kernel_sizes": list(g.upsample_kernel_sizes),
        "upsample_initial_channel": g.upsample_initial_channel,
        "resblock_kernel_sizes": list(g.resblock_kernel_sizes),
        "resblock_dilation_sizes": [list(d) for d in g.resblock_dilation_sizes],
        "segment_size": a.segment_size,
        "num_mels": a.n_mels,
        "num_freq": a.n_fft // 2 + 1,
        "n_fft": a.n_fft,
        "hop_size": a.hop_length,
        "win_size": a.win_length,
        "sampling_rate": a.sample_rate,
        "fmin": a.fmin,
        "fmax": a.fmax,
        "fmax_for_loss": None,
        "num_workers": 4,
        "dist_config": {
            "dist_backend": "nccl",
            "dist_url": "tcp://localhost:54321",
            "world_size": 1,
        },
    }


def tiny_cfg(**audio: Any) -> Any:
    """A small V3-shaped generator at 22.05 kHz (hop 256, 80 mels) with small discriminators."""
    from trainer.config.build import from_dict

    return from_dict(
        {
            "audio": {
                "sample_rate": 22050,
                "n_fft": 1024,
                "win_length": 1024,
                "hop_length": 256,
                "n_mels": 80,
                "fmin": 0,
                "fmax": 8000,
                "segment_size": 4096,
                **audio,
            },
            "generator": {
                "resblock": "2",
                "upsample_rates": [8, 8, 4],
                "upsample_kernel_sizes": [16, 16, 8],
                "upsample_initial_channel": 32,
                "resblock_kernel_sizes": [3, 5],
                "resblock_dilation_sizes": [[1, 2], [2, 6]],
            },
            "discriminator": dict(TINY_DISCRIMINATOR),
            "train": {"batch_size": 2},
        }
    )


def old_style(module: Any) -> Any:
    """A copy of ``module`` whose weight norm / spectral norm is torch's old (the reference's)."""
    import torch
    from torch.nn.utils import parametrize

    m = copy.deepcopy(module)
    for sub in list(m.modules()):
        if parametrize.is_parametrized(sub, "weight"):
            spectral = type(sub.parametrizations.weight[0]).__name__ == "_SpectralNorm"
            parametrize.remove_parametrizations(sub, "weight", leave_parametrized=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the old API is deprecated, not gone
                (torch.nn.utils.spectral_norm if spectral else torch.nn.utils.weight_norm)(sub)
    return m


@dataclass
class RefFiles:
    config: Path
    g: Path
    do: Path | None
    generator: Any  # the reference-style generator the g_ file holds (eval mode)
    mpd: Any = None
    msd: Any = None
    optim_g: dict[str, Any] | None = None
    optim_d: dict[str, Any] | None = None


def write_reference(
    out: Path, cfg: Any, *, steps: int = 0, epoch: int = 0, with_do: bool = True, seed: int = 7
) -> RefFiles:
    """Write config.json, g_<steps> and (``with_do``) do_<steps> into ``out``.

    With ``with_do``, both optimizers take two AdamW steps on random gradients and the
    schedules decay ``epoch`` times, so the moments and rates are not the defaults.
    """
    import torch

    from trainer.models import build_models

    torch.manual_seed(seed)
    g, d = build_models(cfg)
    og, od = old_style(g), old_style(d)
    out.mkdir(parents=True, exist_ok=True)
    config = out / "config.json"
    config.write_text(json.dumps(reference_config(cfg), indent=4))
    g_path = out / f"g_{steps:08d}"
    torch.save({"generator": og.state_dict()}, g_path)
    files = RefFiles(config, g_path, None, og.eval())
    if not with_do:
        return files
    lr, betas = cfg.optim.lr_g, tuple(cfg.optim.betas)
    optim_g = torch.optim.AdamW(og.parameters(), lr, betas=betas)
    optim_d = torch.optim.AdamW(
        itertools.chain(od.msd.parameters(), od.mpd.parameters()), lr, betas=betas
    )
    sg = torch.optim.lr_scheduler.ExponentialLR(optim_g, gamma=cfg.optim.lr_decay)
    sd = torch.optim.lr_scheduler.ExponentialLR(optim_d, gamma=cfg.optim.lr_decay)
    for _ in range(2):
        for opt, params in ((optim_g, og.parameters()), (optim_d, od.parameters())):
            for p in params:
                p.grad = torch.randn_like(p)
            opt.step()
    for _ in range(epoch):
        sg.step()
        sd.step()
    do_path = out / f"do_{steps:08d}"
    torch.save(
        {
            "mpd": od.mpd.state_dict(),
            "msd": od.msd.state_dict(),
            "optim_g": optim_g.state_dict(),
            "optim_d": optim_d.state_dict(),
            "steps": steps,
            "epoch": epoch,
        },
        do_path,
    )
    torch.save({"generator": og.state_dict()}, g_path)  # the weights after those steps
    return RefFiles(
        config,
        g_path,
        do_path,
        og.eval(),
        od.mpd,
        od.msd,
        optim_g.state_dict(),
        optim_d.state_dict(),
    )


def ref_param_names(module: Any) -> list[str]:
    return [n for n, _ in module.named_parameters()]


def chain_names(mpd: Any, msd: Any) -> list[tuple[str, str]]:
    """(part, name) of each parameter in the reference optim_d's order (msd, then mpd)."""
    return [("msd", n) for n in ref_param_names(msd)] + [("mpd", n) for n in ref_param_names(mpd)]
