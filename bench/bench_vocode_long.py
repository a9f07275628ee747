"""Vocoding a long file: peak memory and time of ``nal-train vocode`` whole vs in windows.

Makes a run directory with a freshly initialised generator of the chosen config (RTF and
memory do not depend on the weights), writes a speech-like WAV of ``--minutes`` at the
model's rate, then runs the real command line in a child process for each variant, in turn,
and prints its wall time, its own reported RTF and its peak RSS (the child's ``ru_maxrss``):

    python bench/bench_vocode_long.py                       # V1, 10 minutes, --chunk 0 vs default
    python bench/bench_vocode_long.py --config hifigan_v3 --minutes 2 --engine onnx

``--chunk 0`` vocodes the file in one forward pass (what vocode did before windows); the
default vocodes it in overlapping windows with the same output.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from trainer.checkpointing.store import save_checkpoint  # noqa: E402
from trainer.config.yamlfile import dump, load  # noqa: E402
from trainer.demo_corpus import synthesize_utterance  # noqa: E402
from trainer.models import build_models  # noqa: E402
from trainer.rundir.layout import CHECKPOINTS_DIR, CONFIG_FILE, atomic_write_text  # noqa: E402


def make_run(config: str, run_dir: Path) -> int:
    cfg = load(ROOT / "config" / f"{config}.yaml")
    (run_dir / CHECKPOINTS_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, dump(cfg))
    torch.manual_seed(0)
    g, d = build_models(cfg)
    state = {"format": 1, "generator": g.state_dict(), "discriminators": d.state_dict()}
    save_checkpoint(run_dir, 1, 0, {**state, "step": 1, "epoch": 0})
    return cfg.audio.sample_rate


def make_wav(path: Path, sr: int, minutes: float) -> None:
    wav, _ = synthesize_utterance(np.random.default_rng(7), sr)
    sf.write(path, np.resize(wav, int(minutes * 60 * sr)), sr, subtype="PCM_16")


def run_variant(run_dir: Path, wav: Path, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "trainer", "vocode", "--run-dir", str(run_dir), str(wav)]
    cmd += ["--out", str(out), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    m = re.search(r"RTF ([\d.]+)", p.stdout.splitlines()[-1])
    # ru_maxrss of children is the largest of any child so far: each variant runs after the
    # smaller ones (the windowed run first), so the figure is its own when it is the largest.
    return {
        "wall_s": wall,
        "rtf": float(m.group(1)) if m else float("nan"),
        "peak_rss_mib": peak_kib / 1024,
        "grew": peak_kib > before,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="hifigan_v1", help="a shipped config name")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--engine", default="eager", choices=("eager", "onnx"))
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    extra = ["--engine", args.engine] + (["--threads", str(args.threads)] if args.threads else [])
    with tempfile.TemporaryDirectory(prefix="bench_long_") as tmp:
        work = Path(tmp)
        sr = make_run(args.config, work / "run")
        wav = work / "long.wav"
        make_wav(wav, sr, args.minutes)
        rows = {}
        # Windowed first: ru_maxrss of children only grows, so the larger run goes second.
        rows["windows (default --chunk)"] = run_variant(work / "run", wav, work / "a", extra)
        rows["whole file (--chunk 0)"] = run_variant(
            work / "run", wav, work / "b", [*extra, "--chunk", "0"]
        )
        a, _ = sf.read(work / "a" / "long.wav", dtype="float32")
        b, _ = sf.read(work / "b" / "long.wav", dtype="float32")
    print(
        f"\nVocoding one {args.minutes:g}-minute file, {args.config}, engine {args.engine}, "
        f"torch {torch.__version__}, load (1 min) {os.getloadavg()[0]:.2f}"
    )
    print(f"{'variant':<28} {'wall s':>8} {'RTF':>8} {'peak RSS MiB':>13}")
    for name, r in rows.items():
        rss = f"{r['peak_rss_mib']:.0f}" if r["grew"] or name.startswith("windows") else "<= above"
        print(f"{name:<28} {r['wall_s']:>8.1f} {r['rtf']:>8.4f} {rss:>13}")
    same = a.shape == b.shape
    diff = float(np.abs(a - b).max()) if same else float("nan")
    print(f"outputs: same length {same}, max abs difference {diff:.3g} (16-bit WAVs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
