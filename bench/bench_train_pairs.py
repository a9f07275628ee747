"""Training speed against the reference trainer, in alternating pairs, with peak memory.

Each measurement is its own process (so each has its own peak RSS): ours runs the real
``Trainer.train_step`` (data already batched; mel on device; D update then G update); the
reference runs the training step of jik876/hifi-gan's ``train.py`` as written there (its
``models.py`` imported from ``--reference DIR``, a checkout you supply; nothing of it is
copied here): the input and target mels of the batch (its dataset computes them per item),
generator, mel of the output, both discriminators on real and detached fake, D step, then
both discriminators again, feature-matching, adversarial and 45 x mel L1, G step. Both use
the same config (V1 by default, mel reconstruction as the reference), batch, segment,
threads and the same generated speech. Runs alternate ours/reference ``--pairs`` times, so
load that drifts slows both alike; each pair's ratio and the pooled one are printed.

    python bench/bench_train_pairs.py --reference ~/src/hifi-gan --pairs 4
    python bench/bench_train_pairs.py --reference DIR --batch 4 --segment 8192 --pairs 2 --steps 1

Two notes on running the reference on torch 2.13: its ``mel_spectrogram`` calls
``torch.stft`` without ``return_complex`` (an error since torch 2.0), so it is given the
old real-valued output (``view_as_real`` of the complex one, what it got then); and its
``librosa.filters.mel`` is this project's slaney filterbank (the same filters) when librosa
is not installed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REFERENCE_CONFIGS = {"hifigan_v1": "config_v1.json", "hifigan_v2": "config_v2.json",
                     "hifigan_v3": "config_v3.json"}  # fmt: skip


def _batches(cfg, n: int, batch: int, segment: int, seed: int = 3):
    """``n`` batches of ``batch`` speech-like segments [B, segment] at the config's rate."""
    import numpy as np
    import torch

    from trainer.demo_corpus import synthesize_utterance

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        rows = []
        for _ in range(batch):
            wav, _ = synthesize_utterance(rng, cfg.audio.sample_rate)
            rows.append(np.resize(wav, segment).astype(np.float32) * 0.95)
        out.append(torch.from_numpy(np.stack(rows)))
    return out


def child_ours(args) -> dict:
    import torch

    from trainer.config.build import replace
    from trainer.config.yamlfile import load
    from trainer.demo_corpus import ensure_demo_corpus
    from trainer.train.loop import Trainer

    cfg = load(ROOT / "config" / f"{args.config}.yaml")
    work = Path(args.work)
    corpus = ensure_demo_corpus(work / f"corpus_{cfg.audio.sample_rate}", cfg.audio.sample_rate,
                                n_utterances=2 * args.batch + 8)  # fmt: skip
    cfg = replace(
        cfg,
        data={"corpus_dir": str(corpus), "demo": False, "val_size": 4, "num_workers": 0},
        train={"device": "cpu", "precision": "fp32", "batch_size": args.batch},
        audio={"segment_size": args.segment},
        loss={"recon": "mel"},
        log={"log_every": 1, "val_every": 10**9},
        checkpoint={"every": 10**9, "milestone_every": 0},
    )
    t = Trainer(cfg, work / f"run_ours_{os.getpid()}", "bench", target_step=10**9)
    t.setup()
    try:
        torch.set_num_threads(args.threads)
        times = []
        for i, audio in enumerate(
            _batches(cfg, args.warmup + args.steps, args.batch, args.segment)
        ):
            batch = {"audio": audio[:, None, :]}  # the loader's collate: [B, 1, segment]
            t0 = time.perf_counter()
            torch.stack(t.train_step(batch)).tolist()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    finally:
        t.close()
    return {"times": times}


def _import_reference(ref_dir: Path):
    import numpy as np
    import torch

    from trainer.audio import mel_filterbank

    try:
        import librosa  # noqa: F401
    except ImportError:
        lib = types.ModuleType("librosa")
        lib.filters = types.ModuleType("librosa.filters")
        lib.util = types.ModuleType("librosa.util")
        lib.filters.mel = lambda sr, n_fft, n_mels, fmin, fmax: mel_filterbank(
            sr, n_fft, n_mels, fmin, fmax
        )
        lib.util.normalize = lambda x, *a, **k: x / np.max(np.abs(x))
        sys.modules.update({"librosa": lib, "librosa.filters": lib.filters,
                            "librosa.util": lib.util})  # fmt: skip
    for name in ("matplotlib", "matplotlib.pylab"):
        stub = sys.modules.setdefault(name, types.ModuleType(name))
        stub.use = lambda *a, **k: None  # type: ignore[attr-defined]
    sys.path.insert(0, str(ref_dir))
    models = importlib.import_module("models")
    meldataset = importlib.import_module("meldataset")
    env = importlib.import_module("env")

    class _Torch(types.ModuleType):  # torch with the pre-2.0 real-valued stft
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def stft(*a, **k):
            return torch.view_as_real(torch.stft(*a, **k, return_complex=True))

    meldataset.torch = _Torch("torch")
    return models, meldataset, env


def child_reference(args) -> dict:
    import itertools

    import torch
    import torch.nn.functional as F

    from trainer.config.yamlfile import load

    models, meldataset, env = _import_reference(Path(args.reference))
    h = env.AttrDict(
        json.loads((Path(args.reference) / REFERENCE_CONFIGS[args.config]).read_text())
    )
    torch.set_num_threads(args.threads)
    torch.manual_seed(h.seed)
    generator, mpd, msd = (
        models.Generator(h),
        models.MultiPeriodDiscriminator(),
        models.MultiScaleDiscriminator(),
    )
    optim_g = torch.optim.AdamW(
        generator.parameters(), h.learning_rate, betas=[h.adam_b1, h.adam_b2]
    )
    optim_d = torch.optim.AdamW(itertools.chain(msd.parameters(), mpd.parameters()),
                                h.learning_rate, betas=[h.adam_b1, h.adam_b2])  # fmt: skip
    generator.train(), mpd.train(), msd.train()
    mel = meldataset.mel_spectrogram
    cfg = load(ROOT / "config" / f"{args.config}.yaml")
    times = []
    for i, y in enumerate(_batches(cfg, args.warmup + args.steps, args.batch, args.segment)):
        t0 = time.perf_counter()
        # The dataset's work for this batch: the input mel and the loss's mel of the audio.
        x = mel(y, h.n_fft, h.num_mels, h.sampling_rate, h.hop_size, h.win_size, h.fmin, h.fmax)
        y_mel = mel(y, h.n_fft, h.num_mels, h.sampling_rate, h.hop_size, h.win_size, h.fmin,
                    h.fmax_for_loss)  # fmt: skip
        y = y.unsqueeze(1)
        # train.py's step, as written there
        y_g_hat = generator(x)
        y_g_hat_mel = mel(y_g_hat.squeeze(1), h.n_fft, h.num_mels, h.sampling_rate, h.hop_size,
                          h.win_size, h.fmin, h.fmax_for_loss)  # fmt: skip
        optim_d.zero_grad()
        y_df_hat_r, y_df_hat_g, _, _ = mpd(y, y_g_hat.detach())
        loss_disc_f, _, _ = models.discriminator_loss(y_df_hat_r, y_df_hat_g)
        y_ds_hat_r, y_ds_hat_g, _, _ = msd(y, y_g_hat.detach())
        loss_disc_s, _, _ = models.discriminator_loss(y_ds_hat_r, y_ds_hat_g)
        (loss_disc_s + loss_disc_f).backward()
        optim_d.step()
        optim_g.zero_grad()
        loss_mel = F.l1_loss(y_mel, y_g_hat_mel) * 45
        y_df_hat_r, y_df_hat_g, fmap_f_r, fmap_f_g = mpd(y, y_g_hat)
        y_ds_hat_r, y_ds_hat_g, fmap_s_r, fmap_s_g = msd(y, y_g_hat)
        loss_fm_f = models.feature_loss(fmap_f_r, fmap_f_g)
        loss_fm_s = models.feature_loss(fmap_s_r, fmap_s_g)
        loss_gen_f, _ = models.generator_loss(y_df_hat_g)
        loss_gen_s, _ = models.generator_loss(y_ds_hat_g)
        loss_gen_all = loss_gen_s + loss_gen_f + loss_fm_s + loss_fm_f + loss_mel
        loss_gen_all.backward()
        optim_g.step()
        loss_gen_all.item()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return {"times": times}


def run_child(args, which: str, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--work", str(work)]
    for k in ("config", "batch", "segment", "steps", "warmup", "threads"):
        cmd += [f"--{k}", str(getattr(args, k))]
    if args.reference:
        cmd += ["--reference", str(args.reference)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(
            f"{which} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        )
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reference", type=Path, help="a jik876/hifi-gan checkout (you supply it)")
    p.add_argument("--config", default="hifigan_v1", choices=sorted(REFERENCE_CONFIGS))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--segment", type=int, default=8192)
    p.add_argument("--steps", type=int, default=2, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first, per run")
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--child", choices=("ours", "reference"), help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        fn = child_ours if args.child == "ours" else child_reference
        out = fn(args)
        out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return 0
    if not args.reference or not (args.reference / "models.py").is_file():
        p.error("--reference DIR: a checkout of jik876/hifi-gan (its models.py) is needed")
    rows = []
    with tempfile.TemporaryDirectory(prefix="nal-bench-pairs-") as tmp:
        for i in range(args.pairs):
            ours = run_child(args, "ours", Path(tmp))
            ref = run_child(args, "reference", Path(tmp))
            rows.append((ours, ref, os.getloadavg()[0]))
            o, r = statistics.median(ours["times"]), statistics.median(ref["times"])
            print(f"pair {i + 1}: ours {o:.2f} s/step, reference {r:.2f} s/step, "
                  f"ratio {r / o:.2f}x, load {rows[-1][2]:.2f}", file=sys.stderr, flush=True)  # fmt: skip
    n = args.batch
    print(f"\nTraining speed, {args.config}, batch {args.batch} x {args.segment}, fp32, mel "
          f"reconstruction, {args.threads} threads, {args.steps} timed steps after "
          f"{args.warmup} per run, runs alternating")  # fmt: skip
    print(f"{'pair':<5} {'ours samples/s':>15} {'ref samples/s':>14} {'ratio':>6} "
          f"{'ours RSS MiB':>13} {'ref RSS MiB':>12} {'load':>5}")  # fmt: skip
    for i, (ours, ref, load) in enumerate(rows, 1):
        o, r = n / statistics.median(ours["times"]), n / statistics.median(ref["times"])
        print(f"{i:<5} {o:>15.3f} {r:>14.3f} {o / r:>5.2f}x {ours['peak_rss_mib']:>13.0f} "
              f"{ref['peak_rss_mib']:>12.0f} {load:>5.2f}")  # fmt: skip
    all_o = [t for ours, _, _ in rows for t in ours["times"]]
    all_r = [t for _, ref, _ in rows for t in ref["times"]]
    pooled = statistics.median(all_r) / statistics.median(all_o)
    print(f"pooled (median step time over every timed step): {pooled:.2f}x the reference's "
          f"samples/s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
