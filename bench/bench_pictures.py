"""The trainer's extra work per validation for mel pictures, against that validation's time.

One validation by the trainer's own code (``trainer.train.validation.Validator``, the metrics of
the config, ``log.val_samples`` samples written as WAV + ``.logmel``) on a generator of the
named config, in eval mode, random weights (time does not depend on them), on speech-like
utterances. The first run writes the ground truth's pictures too (what every first validation
of a trainer process pays); the second is a steady validation. Printed side by side: the
pictures' time (``SetResult.seconds["pictures"]``: quantising the log-mel validation already
computed, atomic write with fsync) and the whole validation's, and the share (budget 1 %).
The share is measured on ``--utts`` utterances; a real ``data.val_size`` (100) only makes the
validation longer and the share smaller, so no scaling is applied.

    python bench/bench_pictures.py                       # V1, 22.05 kHz, CPU
    python bench/bench_pictures.py --config 48k --utts 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from trainer.audio import MelSpectrogram  # noqa: E402
from trainer.config.yamlfile import load  # noqa: E402
from trainer.data import ValItem  # noqa: E402
from trainer.demo_corpus import synthesize_utterance  # noqa: E402
from trainer.losses import ReconstructionLoss  # noqa: E402
from trainer.models.generator import Generator  # noqa: E402
from trainer.train.validation import Validator  # noqa: E402

CONFIGS = {"v1": "config/hifigan_v1.yaml", "48k": "config/hifigan_48k.yaml"}


def items(sr: int, hop: int, n: int) -> list[ValItem]:
    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        wav, _ = synthesize_utterance(rng, sr)
        k = len(wav) // hop * hop
        out.append(ValItem(f"B{i:03d}", "", np.ascontiguousarray(wav[:k], np.float32), None))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="v1", choices=sorted(CONFIGS))
    p.add_argument("--utts", type=int, default=4, help="utterances validated")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = p.parse_args(argv)
    device = torch.device(args.device)
    cfg = load(ROOT / CONFIGS[args.config])
    torch.manual_seed(0)
    g = Generator(cfg.generator, cfg.audio.n_mels).to(device).eval()
    mel_fn = MelSpectrogram(cfg.audio).to(device)
    recon = ReconstructionLoss(cfg.loss, mel_fn=mel_fn).to(device)
    its = items(cfg.audio.sample_rate, cfg.audio.hop_length, args.utts)
    audio_s = sum(len(it.audio) for it in its) / cfg.audio.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        v = Validator(cfg, Path(tmp), mel_fn, recon, device)
        v.run(g, its[:1], 0, write_samples=False)  # warm-up (kernels, metric imports)
        print(
            f"Mel pictures vs validation, {args.config} ({cfg.audio.sample_rate} Hz, "
            f"{cfg.audio.n_mels} mels), device {device}, {args.utts} utterances "
            f"({audio_s:.1f} s of audio), log.val_samples {cfg.log.val_samples}"
        )
        for label, step in (("first (with ground truth)", 1000), ("steady", 2000)):
            r = v.run(g, its, step)
            pics = r.seconds["pictures"]
            share = 100 * pics / r.duration
            sizes = sorted({(Path(tmp) / q).stat().st_size for q in r.pictures})
            print(
                f"  {label:26s} pictures {1000 * pics:7.1f} ms ({len(r.pictures)} files, "
                f"{sizes[0]}-{sizes[-1]} B)   validation {r.duration:7.2f} s   "
                f"share {share:.3f} % ({'within' if share <= 1.0 else 'ABOVE'} the 1 % budget)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
