"""Generator and discriminators: shapes, interface, sizes, weight norm, gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn.utils import parametrize

from trainer.config.schema import Config, DiscriminatorConfig, GeneratorConfig
from trainer.config.yamlfile import load as load_config
from trainer.models import build_models, count_parameters, param_counts
from trainer.models.discriminators import Discriminators
from trainer.models.generator import Generator

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def load(name: str) -> Config:
    return load_config(CONFIG_DIR / f"{name}.yaml")


@pytest.fixture(scope="module")
def demo() -> Config:
    return load("demo")


@pytest.fixture(scope="module")
def demo_models(demo: Config) -> tuple[Generator, Discriminators]:
    torch.manual_seed(0)
    return build_models(demo)


def test_demo_generator_output_length(demo: Config, demo_models) -> None:
    g, _ = demo_models
    frames = 20
    wav = g(torch.randn(2, demo.audio.n_mels, frames))
    assert wav.shape == (2, 1, frames * demo.audio.hop_length)
    assert wav.abs().max() <= 1.0  # tanh output


def test_v1_generator_output_length() -> None:
    cfg = load("hifigan_v1")
    g = Generator(cfg.generator, cfg.audio.n_mels)
    with torch.no_grad():
        wav = g(torch.randn(1, 80, 4))
    assert wav.shape == (1, 1, 4 * 256)


def test_generator_uses_configured_mel_count() -> None:
    g = Generator(
        GeneratorConfig(
            upsample_initial_channel=32, upsample_rates=(4, 4), upsample_kernel_sizes=(8, 8)
        ),
        n_mels=37,
    )
    assert g(torch.randn(1, 37, 5)).shape == (1, 1, 80)
    with pytest.raises(ValueError, match="37"):
        g(torch.randn(1, 80, 5))


@pytest.mark.parametrize("resblock", ["1", "2"])
def test_generator_resblock_choice(resblock: str) -> None:
    cfg = GeneratorConfig(
        resblock=resblock,
        upsample_rates=(4, 2),
        upsample_kernel_sizes=(8, 4),
        upsample_initial_channel=16,
        resblock_kernel_sizes=(3, 5),
        resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)) if resblock == "1" else ((1, 2), (2, 6)),
    )
    g = Generator(cfg, n_mels=8)
    block = g.resblocks[0]
    assert type(block).__name__ == f"ResBlock{resblock}"
    n_convs = sum(1 for m in block.modules() if isinstance(m, torch.nn.Conv1d))
    assert n_convs == (6 if resblock == "1" else 2)
    assert g(torch.randn(1, 8, 3)).shape == (1, 1, 24)


def test_generator_weight_norm_and_init(demo: Config) -> None:
    torch.manual_seed(0)
    g = Generator(demo.generator, demo.audio.n_mels)
    conv = g.resblocks[0].convs[0]
    assert parametrize.is_parametrized(conv, "weight")
    # N(0, 0.01) init really took effect (the reference's post-weight-norm init does not).
    std = torch.cat([m.weight.detach().flatten() for m in g.ups]).std().item()
    assert std == pytest.approx(0.01, rel=0.1)


def test_remove_weight_norm_keeps_output(demo: Config) -> None:
    torch.manual_seed(0)
    g = Generator(demo.generator, demo.audio.n_mels).eval()
    mel = torch.randn(1, demo.audio.n_mels, 10)
    with torch.no_grad():
        before = g(mel)
        g.remove_weight_norm()
        after = g(mel)
    assert not any(parametrize.is_parametrized(m) for m in g.modules())
    assert torch.allclose(before, after, atol=1e-6)
    assert count_parameters(g) < param_counts(demo)["generator"]


def test_discriminators_interface_shapes(demo: Config, demo_models) -> None:
    _, d = demo_models
    real, fake = torch.randn(2, 1, 4096), torch.randn(2, 1, 4096)
    real_logits, fake_logits, real_feats, fake_feats = d(real, fake)
    n = len(demo.discriminator.periods) + demo.discriminator.msd_scales
    assert n == 8 and d.num_discriminators == 8
    for seq in (real_logits, fake_logits, real_feats, fake_feats):
        assert len(seq) == n
    for lr, lf in zip(real_logits, fake_logits, strict=True):
        assert lr.shape == lf.shape and lr.shape[0] == 2 and lr.dim() == 2
    # Feature maps: one per conv + conv_post (MPD: 5 + 1, MSD: 7 + 1).
    assert [len(f) for f in real_feats] == [6] * 5 + [8] * 3
    for rf, ff in zip(real_feats, fake_feats, strict=True):
        assert [x.shape for x in rf] == [x.shape for x in ff]
    # Channel widths come from the config.
    assert real_feats[0][0].shape[1] == demo.discriminator.mpd_channels[0]
    assert real_feats[5][-2].shape[1] == demo.discriminator.msd_channels[-1]


def test_batched_forward_matches_separate_scores(demo_models) -> None:
    _, d = demo_models
    d = d.eval()  # spectral norm's power iteration would otherwise move between calls
    real, fake = torch.randn(2, 1, 3000), torch.randn(2, 1, 3000)
    with torch.no_grad():
        rl, fl, rf, ff = d(real, fake, batched=True)  # the GPU path, checked on the CPU
        rl2, rf2 = d.score(real)
        fl2, ff2 = d.score(fake.squeeze(1))  # [B, T] accepted too
    d.train()
    for a, b in zip(rl + fl, rl2 + fl2, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    for a, b in zip(rf[3] + ff[7], rf2[3] + ff2[7], strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():
        rl3, fl3, _, _ = d.eval()(real, fake)  # the CPU default: two passes, same numbers
    d.train()
    for a, b in zip(rl3 + fl3, rl + fl, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_mpd_pads_to_period_and_msd_pools(demo_models) -> None:
    _, d = demo_models
    x = torch.randn(1, 1, 1001)  # not a multiple of 2, 3, 5, 7 or 11
    logits, feats = d.score(x)
    for p, fm in zip((2, 3, 5, 7, 11), feats[:5], strict=True):
        assert fm[0].shape[-1] == p  # the period axis
    lengths = [f[0].shape[-1] for f in feats[5:]]
    assert lengths == [1001, 501, 251]  # AvgPool1d(4, 2, padding=2) per extra scale


def test_msd_first_scale_spectral_norm_others_weight_norm(demo_models) -> None:
    _, d = demo_models
    first, second = d.msd.discriminators[0].convs[0], d.msd.discriminators[1].convs[0]
    kinds = [type(p).__name__ for p in first.parametrizations.weight]
    assert kinds == ["_SpectralNorm"]
    assert [type(p).__name__ for p in second.parametrizations.weight] == ["_WeightNorm"]
    assert all(parametrize.is_parametrized(c, "weight") for c in d.mpd.discriminators[0].convs)


def test_reference_width_msd_uses_reference_groups() -> None:
    d = Discriminators(
        DiscriminatorConfig(periods=(2,), msd_scales=1, mpd_channels=(4, 4, 4, 4, 4))
    )
    groups = [c.groups for c in d.msd.discriminators[0].convs]
    assert groups == [1, 4, 16, 16, 16, 16, 1]


def test_generator_step_grad_flows_only_into_generator(demo: Config, demo_models) -> None:
    g, d = demo_models
    mel = torch.randn(2, demo.audio.n_mels, 8)
    real = torch.randn(2, 1, 8 * demo.audio.hop_length)
    d.requires_grad_(False)
    try:
        fake = g(mel)
        with torch.no_grad():
            _, real_feats = d.score(real)
        fake_logits, fake_feats = d.score(fake)
        assert not any(f.requires_grad for fm in real_feats for f in fm)
        loss = sum(((1 - x) ** 2).mean() for x in fake_logits)
        loss.backward()
    finally:
        d.requires_grad_(True)
    assert all(p.grad is None for p in d.parameters())
    assert g.conv_pre.parametrizations.weight.original1.grad is not None


def test_discriminator_step_grad(demo_models) -> None:
    _, d = demo_models
    d.zero_grad(set_to_none=True)
    rl, fl, _, _ = d(torch.randn(2, 1, 2048), torch.randn(2, 1, 2048))
    sum(((1 - r) ** 2).mean() + (f**2).mean() for r, f in zip(rl, fl, strict=True)).backward()
    assert all(p.grad is not None for p in d.parameters())
    d.zero_grad(set_to_none=True)


def test_discriminators_reject_mismatched_inputs(demo_models) -> None:
    _, d = demo_models
    with pytest.raises(ValueError, match="differ in shape"):
        d(torch.randn(1, 1, 2048), torch.randn(1, 1, 1024))
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        d.score(torch.randn(1, 2, 2048))


@pytest.mark.parametrize(
    ("preset", "paper"), [("hifigan_v1", 13.92e6), ("hifigan_v2", 0.92e6), ("hifigan_v3", 1.46e6)]
)
def test_generator_param_counts_match_paper(preset: str, paper: float) -> None:
    cfg = load(preset)
    n = count_parameters(Generator(cfg.generator, cfg.audio.n_mels))
    assert abs(n - paper) / paper < 0.01


def test_param_counts_keys(demo: Config) -> None:
    counts = param_counts(demo)
    assert set(counts) >= {"generator", "mpd", "msd", "discriminators"}
    assert counts["discriminators"] == counts["mpd"] + counts["msd"]
    assert all(v > 0 for v in counts.values())
    g, d = build_models(demo)
    assert counts["generator"] == count_parameters(g)
    assert counts["mpd"] == count_parameters(d.mpd)
