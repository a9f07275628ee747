"""Vocoding speed (real-time factor) of the V1/V2/V3 generators, and the cost of validation.

Part 1, side by side in one process on the same mel: our generator in eager PyTorch, as
TorchScript and under ONNX Runtime (the files ``nal-train export`` writes), and, with
``--reference DIR`` (a checkout of jik876/hifi-gan that you supply; nothing of it is copied
here), the reference's own inference path as its ``inference_e2e.py`` runs it: its
``models.Generator(h)`` built from its ``config_v*.json``, ``eval()``, ``remove_weight_norm()``,
``torch.no_grad()``, then the int16 conversion. Weights are random: RTF does not depend on
them. Runs are interleaved round-robin and the median is reported, so a machine whose load
drifts slows every variant alike.

Part 2 (``--validation``): one validation by the trainer's own code
(``trainer.train.validation.Validator``: generator, reconstruction loss, mel L1, M-STFT, PESQ, STOI
and the composite, as ``config/hifigan_v1.yaml`` configures them) on a V1 generator, measured
on ``--val-utts`` generated utterances and scaled per second of audio to the config's
``data.val_size`` LJSpeech-length utterances, against ``log.val_every`` x the measured V1
training step time (or ``--step-time``).

    python bench/bench_vocode.py --reference ~/src/hifi-gan
    python bench/bench_vocode.py --configs v3 --seconds 2 --repeats 3
    python bench/bench_vocode.py --validation --configs none --step-time 0.25 --device cuda
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from trainer.config.build import replace  # noqa: E402
from trainer.config.schema import Config  # noqa: E402
from trainer.config.yamlfile import load  # noqa: E402
from trainer.models.fast_generator import for_inference  # noqa: E402
from trainer.models.generator import Generator  # noqa: E402
from trainer.tools.inference import MelExtractor, prepare_for_inference, set_threads  # noqa: E402

CONFIGS = {
    "v1": "config/hifigan_v1.yaml",
    "v2": "config/hifigan_v2.yaml",
    "v3": "config/hifigan_v3.yaml",
}
REFERENCE_CONFIGS = {"v1": "config_v1.json", "v2": "config_v2.json", "v3": "config_v3.json"}
LJSPEECH_MEAN_SECONDS = 6.57  # 13,100 clips, 23.9 h
MAX_WAV_VALUE = 32768.0  # the reference's int16 scaling (meldataset.MAX_WAV_VALUE)


# ------------------------------------------------------------------------- the reference


def load_reference(ref_dir: Path) -> types.ModuleType:
    """Import the reference's ``models`` from the user's checkout (never copied here)."""
    if not (ref_dir / "models.py").is_file():
        raise SystemExit(f"--reference {ref_dir}: no models.py there (a jik876/hifi-gan checkout?)")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        # Its utils.py imports matplotlib for plotting, which inference never calls.
        stub = types.ModuleType("matplotlib")
        stub.use = lambda *a, **k: None  # type: ignore[attr-defined]
        sys.modules["matplotlib"] = stub
        sys.modules["matplotlib.pylab"] = types.ModuleType("matplotlib.pylab")
        print("note: matplotlib is not installed; stubbed for the reference's plotting import")
    sys.path.insert(0, str(ref_dir))
    return importlib.import_module("models")


def reference_runner(ref_dir: Path, models: types.ModuleType, name: str, device: torch.device):
    import json

    env = importlib.import_module("env")
    h = env.AttrDict(json.loads((ref_dir / REFERENCE_CONFIGS[name]).read_text()))
    g = models.Generator(h).to(device)
    g.eval()
    with _silence_stdout():
        g.remove_weight_norm()  # prints "Removing weight norm..."

    def run(mel: torch.Tensor) -> np.ndarray:
        with torch.no_grad():  # inference_e2e.py's path, per file
            y = g(mel.to(device))
            audio = y.squeeze() * MAX_WAV_VALUE
            return audio.cpu().numpy().astype("int16")

    return run


class _silence_stdout:
    def __enter__(self):
        import io

        self._old, sys.stdout = sys.stdout, io.StringIO()

    def __exit__(self, *exc):
        sys.stdout = self._old


# ------------------------------------------------------------------------- ours


def ours_eager(g: Generator, device: torch.device) -> Callable[[torch.Tensor], np.ndarray]:
    def run(mel: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return g(mel.to(device)).float().cpu().numpy()

    return run


def _infer(g: torch.nn.Module, mel: torch.Tensor, device: torch.device) -> np.ndarray:
    with torch.inference_mode():
        w = next(g.parameters())
        return g(mel.to(device, w.dtype)).float().cpu().numpy()


def ours_exported(g: Generator, fmt: str, mel: torch.Tensor, work: Path, threads: int):
    from trainer.tools import export as ex

    path = work / f"g_{id(g)}.{'pt' if fmt == 'torchscript' else 'onnx'}"
    g = for_inference(g)  # what nal-train export and vocode --engine onnx export
    if fmt == "torchscript":
        ex.export_torchscript(g, mel[..., :64], path)
        runner = ex.load_runner(path, fmt)
        return lambda m: runner(m.numpy())
    ex.export_onnx(g, mel[..., :64], path)
    runner = ex.load_runner(path, "onnx", threads)  # the session vocode --engine onnx uses
    return lambda m: runner(m.numpy())


def speech_mel(cfg: Config, seconds: float) -> torch.Tensor:
    from trainer.demo_corpus import synthesize_utterance

    sr = cfg.audio.sample_rate
    wav, _ = synthesize_utterance(np.random.default_rng(11), sr)
    return MelExtractor(cfg).from_audio(np.resize(wav, int(seconds * sr)))[None]


def time_variants(
    variants: dict[str, Callable[[torch.Tensor], np.ndarray]],
    mel: torch.Tensor,
    repeats: int,
    device: torch.device,
) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in variants}
    for run in variants.values():  # warm-up: allocations, kernel selection, and the
        run(mel)  # TorchScript profiling executor, which optimises on its second call
        run(mel)
    for _ in range(repeats):
        for name, run in variants.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            run(mel)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_rtf(args: argparse.Namespace, device: torch.device, threads: int) -> None:
    ref_models = load_reference(args.reference) if args.reference else None
    names = [c for c in args.configs.split(",") if c and c != "none"]
    rows = []
    bf16_err: dict[str, float] = {}
    export_err: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            cfg = load(ROOT / CONFIGS[name])
            torch.manual_seed(0)
            g = prepare_for_inference(Generator(cfg.generator, cfg.audio.n_mels)).to(device)
            mel = speech_mel(cfg, args.seconds)
            variants: dict[str, Callable] = {}
            if ref_models is not None and name in args.reference_configs.split(","):
                variants["reference (jik876, inference_e2e path)"] = reference_runner(
                    args.reference, ref_models, name, device
                )
            variants["ours eager"] = ours_eager(for_inference(g), device)  # as vocode runs it
            if device.type == "cpu":
                if not args.no_torchscript:
                    variants["ours TorchScript"] = ours_exported(
                        g, "torchscript", mel, Path(tmp), threads
                    )
                if not args.no_onnx:
                    variants["ours ONNX Runtime"] = ours_exported(
                        g, "onnx", mel, Path(tmp), threads
                    )
            if not args.no_bf16:
                gb = for_inference(g).to(torch.bfloat16)
                variants["ours eager bf16 (--precision bf16)"] = lambda m, gb=gb: _infer(
                    gb, m, device
                )
                with torch.inference_mode():
                    err = (g(mel.to(device)) - gb(mel.to(device, torch.bfloat16)).float()).abs()
                bf16_err[name] = float(err.max())
            if args.ablation:
                variants["ours eager, 1-D layout (training module)"] = ours_eager(g, device)
                wn = Generator(cfg.generator, cfg.audio.n_mels).eval().to(device)
                variants["ours eager, weight norm kept"] = ours_eager(wn, device)
            with torch.inference_mode():
                want = g(mel.to(device)).float().cpu().numpy()
            for k in [k for k in variants if "ONNX" in k or "TorchScript" in k]:
                got = np.asarray(variants[k](mel), dtype=np.float64)
                export_err[f"{name.upper()} {k}"] = float(np.abs(got - want).max())
            medians = time_variants(variants, mel, args.repeats, device)
            audio_s = mel.shape[-1] * cfg.audio.hop_length / cfg.audio.sample_rate
            ref = next((v for k, v in medians.items() if k.startswith("reference")), None)
            for k, t in medians.items():
                rows.append((name.upper(), k, t / audio_s, audio_s / t, (ref / t) if ref else None))
            print(f"... {name} done", file=sys.stderr)
    print()
    print(
        f"Vocoding real-time factor: {args.seconds:.1f} s of 22.05 kHz speech, median of "
        f"{args.repeats} interleaved runs, device {device}"
        + (f", {threads} threads" if device.type == "cpu" else "")
        + f", torch {torch.__version__}"
    )
    print(f"machine load (1 min) at the end: {os.getloadavg()[0]:.2f}")
    print(f"{'model':<6} {'variant':<40} {'RTF':>8} {'x real time':>12} {'vs reference':>13}")
    for model, variant, rtf, xrt, vs in rows:
        vs_s = f"{vs:.2f}x" if vs else "-"
        print(f"{model:<6} {variant:<40} {rtf:>8.4f} {xrt:>12.1f} {vs_s:>13}")
    for name, err in export_err.items():
        print(f"{name} vs eager fp32: max abs difference {err:.3g} (tolerance 1e-4)")
    for name, err in bf16_err.items():
        print(f"bf16 vs fp32 output, {name.upper()}: max abs difference {err:.2g} (random weights)")
    if ref_models is None:
        print(
            "(no --reference DIR: the reference rows need a checkout of jik876/hifi-gan; "
            "it is imported from there, never copied into this project)"
        )


# ------------------------------------------------------------------------- validation cost


def measure_step_time(device: torch.device, work: Path, steps: int) -> float:
    """Median seconds per real V1 training step (batch 16, segment 8192) on ``device``."""
    from trainer.demo_corpus import ensure_demo_corpus
    from trainer.train.loop import Trainer

    cfg = load(ROOT / CONFIGS["v1"])
    n = cfg.train.batch_size * (steps + 1) + 8  # one epoch covers every timed step
    corpus = ensure_demo_corpus(work / "corpus_22050", cfg.audio.sample_rate, n_utterances=n)
    cfg = replace(
        cfg,
        data={"corpus_dir": str(corpus), "val_size": 4},
        train={"device": device.type},
        log={"log_every": 1, "val_every": 10**9},
        checkpoint={"every": 10**9, "milestone_every": 0},
    )
    t = Trainer(cfg, work / "run_v1", "bench", target_step=10**9)
    t.setup()
    try:
        times = []
        it = iter(t.loader)
        for i in range(steps + 1):
            batch = next(it)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            torch.stack(t.train_step(batch)).tolist()
            if i:  # the first step is warm-up
                times.append(time.perf_counter() - t0)
        return statistics.median(times)
    finally:
        t.close()


def _v1_items(cfg: Config, n_utts: int) -> list:
    """``n_utts`` speech-like validation items (whole hops), as ValidationSet holds them."""
    from trainer.data import ValItem
    from trainer.demo_corpus import synthesize_utterance

    rng = np.random.default_rng(5)
    items = []
    for i in range(n_utts):
        wav, _ = synthesize_utterance(rng, cfg.audio.sample_rate)
        n = len(wav) // cfg.audio.hop_length * cfg.audio.hop_length
        items.append(ValItem(f"B{i:03d}", "", np.ascontiguousarray(wav[:n], np.float32), None))
    return items


def measure_validation(
    device: torch.device, work: Path, n_utts: int
) -> tuple[float, float, dict[str, float], list[str]]:
    """(seconds, seconds of audio, seconds per part, skipped metrics) of one validation of
    ``n_utts`` utterances by the trainer's own code (trainer.train.validation.Validator), with the
    metrics and composite of config/hifigan_v1.yaml and a V1 generator in eval mode."""
    from trainer.audio import MelSpectrogram
    from trainer.losses import ReconstructionLoss
    from trainer.train.validation import Validator

    cfg = load(ROOT / CONFIGS["v1"])
    torch.manual_seed(0)
    g = Generator(cfg.generator, cfg.audio.n_mels).to(device).eval()  # as validation runs it
    mel_fn = MelSpectrogram(cfg.audio).to(device)
    recon = ReconstructionLoss(cfg.loss, mel_fn=mel_fn).to(device)
    validator = Validator(cfg, work, mel_fn, recon, device)
    items = _v1_items(cfg, n_utts)
    audio_s = sum(len(it.audio) for it in items) / cfg.audio.sample_rate
    validator.run(g, items[:1], 0, write_samples=False)  # warm-up (kernels, PESQ import)
    r = validator.run(g, items, 0, write_samples=False)
    return r.duration, audio_s, r.seconds, sorted(validator.skipped)


def bench_validation(args: argparse.Namespace, device: torch.device) -> None:
    cfg = load(ROOT / CONFIGS["v1"])
    val_every, val_size = cfg.log.val_every, cfg.data.val_size
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        total, audio_s, parts, skipped = measure_validation(device, work, args.val_utts)
        if args.step_time:
            step_t, how = args.step_time, "given (--step-time)"
        else:
            step_t = measure_step_time(device, work, args.train_steps)
            how = f"measured, median of {args.train_steps} V1 steps at batch 16"
    target_audio = val_size * LJSPEECH_MEAN_SECONDS
    scale = target_audio / audio_s
    val_s = total * scale
    between = val_every * step_t
    metric_s = sum(v for k, v in parts.items() if k not in ("generator", "recon"))
    print()
    print(f"Validation cost, V1 generator, device {device}, torch {torch.__version__}")
    print(
        f"  trainer.train.validation.Validator on {args.val_utts} utterances, {audio_s:.1f} s of audio, "
        f"in {total:.2f} s: generator {parts['generator']:.2f} s, reconstruction loss and mel "
        f"L1 {parts['recon']:.2f} s, "
        + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items() if k not in ("generator", "recon"))
        + (f"; skipped (package missing): {', '.join(skipped)}" if skipped else "")
    )
    print(
        f"  scaled to data.val_size {val_size} LJSpeech-length utterances ({target_audio:.0f} s "
        f"of audio, x{scale:.1f}): {val_s:.1f} s per validation (quality metrics alone "
        f"{metric_s * scale:.1f} s)"
    )
    print(
        f"  training step: {step_t:.3f} s ({how}); log.val_every {val_every} -> "
        f"{between:.0f} s between validations"
    )
    ratio = val_s / between
    print(
        f"  validation / time between validations = {100 * ratio:.2f} % "
        f"({'within' if ratio <= 0.10 else 'ABOVE'} the 10 % budget)"
    )
    # The quality metrics run on the CPU whatever the device: their share on its own.
    print(
        f"  quality metrics alone / time between validations = "
        f"{100 * metric_s * scale / between:.2f} %"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--reference", type=Path, help="a jik876/hifi-gan checkout (you supply it)")
    p.add_argument("--configs", default="v1,v2,v3", help="comma list of v1,v2,v3 (or none)")
    p.add_argument("--reference-configs", default="v1,v3", help="which configs get a reference row")
    p.add_argument("--seconds", type=float, default=4.0, help="audio length vocoded per run")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--no-onnx", action="store_true")
    p.add_argument("--no-torchscript", action="store_true")
    p.add_argument("--no-bf16", action="store_true", help="skip the bf16 rows")
    p.add_argument("--ablation", action="store_true", help="also time eager with weight norm kept")
    p.add_argument("--validation", action="store_true", help="also measure validation cost")
    p.add_argument("--val-utts", type=int, default=8, help="utterances actually validated")
    p.add_argument("--train-steps", type=int, default=2, help="V1 steps timed (after 1 warm-up)")
    p.add_argument("--step-time", type=float, help="use this V1 step time (s) instead of measuring")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    threads = set_threads(args.threads)
    if args.configs != "none":
        bench_rtf(args, device, threads)
    if args.validation:
        bench_validation(args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
