"""The inference generator (channels-last 2-D convolutions, weight norm and the MRF mean
folded) computes the trained generator's function; long inputs vocoded in windows equal
vocoding them whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import ROOT
from trainer.config.yamlfile import load
from trainer.models.fast_generator import InferenceGenerator, for_inference
from trainer.models.generator import Generator
from trainer.tools import inference as inf

PRESETS = ("demo", "hifigan_v1", "hifigan_v2", "hifigan_v3", "hifigan_48k")


def _generator(name: str, seed: int = 0) -> tuple[Generator, object]:
    cfg = load(ROOT / "config" / f"{name}.yaml")
    torch.manual_seed(seed)
    g = Generator(cfg.generator, cfg.audio.n_mels).eval()
    with torch.no_grad():  # weights far from init, so every layer matters to the output
        for p in g.parameters():
            p.mul_(1.0 + 0.5 * torch.rand_like(p))
    return g, cfg


@pytest.mark.parametrize("name", PRESETS)
def test_the_inference_generator_computes_the_same_audio(name: str) -> None:
    g, cfg = _generator(name)
    fast = for_inference(g)
    assert isinstance(fast, InferenceGenerator) and not fast.training
    assert not any(p.requires_grad for p in fast.parameters())
    mel = torch.randn(2, cfg.audio.n_mels, 23)
    with torch.inference_mode():
        want, got = g(mel), fast(mel)
    assert got.shape == want.shape == (2, 1, 23 * cfg.audio.hop_length)
    assert (got - want).abs().max().item() <= 1e-6
    # The trained generator is untouched (still weight-normed, still usable).
    with torch.inference_mode():
        assert torch.equal(g(mel), want)
    with pytest.raises(ValueError, match="expects mel"):
        fast(torch.randn(1, cfg.audio.n_mels + 1, 5))


def test_it_follows_the_weights_it_was_built_from_not_later_changes() -> None:
    g, cfg = _generator("demo")
    fast = for_inference(g)
    mel = torch.randn(1, cfg.audio.n_mels, 9)
    with torch.inference_mode():
        before = fast(mel)
        for p in g.parameters():
            p.add_(0.1)
        assert torch.equal(fast(mel), before)


def test_windows_cover_every_frame_once() -> None:
    for frames, chunk, ctx in ((100, 30, 7), (30, 30, 7), (31, 30, 0), (5, 64, 17)):
        spans = inf.windows(frames, chunk, ctx)
        kept = [f for _, _, a, b in spans for f in range(a, b)]
        assert kept == list(range(frames))
        for start, end, a, b in spans:
            assert start == max(0, a - ctx) and end == min(frames, b + ctx)


@pytest.mark.parametrize("name", ("hifigan_v1", "hifigan_v3", "hifigan_48k"))
def test_windowed_vocoding_equals_whole_and_needs_its_context(name: str) -> None:
    g, cfg = _generator(name, seed=1)
    fast = for_inference(g)
    hop = cfg.audio.hop_length
    mel = torch.randn(cfg.audio.n_mels, 97)
    whole = inf.vocode_batch(fast, [mel], hop)[0]
    ctx = inf.context_frames(cfg.generator)
    for chunk, batch in ((16, 1), (25, 3)):
        got = inf.vocode_long(fast, mel, hop, chunk, ctx, batch)
        assert got.shape == whole.shape and np.abs(got - whole).max() <= 1e-6
    # Without the context the joins show: the test can tell.
    cut = inf.vocode_long(fast, mel, hop, 16, 0)
    assert np.abs(cut - whole).max() > 1e-4
