"""The measuring half of ``bench/gpu_check.sh``: train, vocode and validate on one device.

Trains each config for ``--steps`` steps in each mode (fp32, bf16, fp16, compile) with the
real training loop on a demo corpus generated at the config's rate, and prints steps/s,
samples/s, peak GPU memory and wall time per run; then vocodes a batch with the fp32 V1 run
(real-time factor) and measures one validation's cost with every metric against the
measured step time. ``--device cpu`` with tiny sizes is the dry run the test suite runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from trainer.config.build import replace  # noqa: E402
from trainer.config.yamlfile import load  # noqa: E402
from trainer.demo_corpus import ensure_demo_corpus  # noqa: E402
from trainer.events import schema as ev  # noqa: E402
from trainer.train import loop  # noqa: E402

CONFIGS = {
    "v1": "config/hifigan_v1.yaml",
    "48k": "config/hifigan_48k.yaml",
    "v3": "config/hifigan_v3.yaml",
    "demo": "config/demo.yaml",
}
MODES = {
    "fp32": {"precision": "fp32", "compile": False},
    "bf16": {"precision": "bf16", "compile": False},
    "fp16": {"precision": "fp16", "compile": False},
    "compile": {"precision": "fp32", "compile": True},
}


def _events(run_dir: Path) -> list[dict]:
    p = run_dir / ev.EVENTS_FILE
    if not p.exists():
        return []
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()]


def train_one(name: str, mode: str, args: argparse.Namespace, corpus: Path, work: Path) -> dict:
    cfg = load(ROOT / CONFIGS[name])
    steps = args.steps
    over: dict = {
        "data": {"corpus_dir": str(corpus), "demo": False, "val_size": 4, "num_workers": 2},
        "train": {"device": args.device, "max_steps": steps, **MODES[mode]},
        "log": {"log_every": max(1, steps // 20), "val_every": steps, "val_samples": 1},
        "checkpoint": {"every": 10**9, "milestone_every": 0, "keep_last": 1},
    }
    if args.batch:
        over["train"]["batch_size"] = args.batch
    if args.segment:
        over["audio"] = {"segment_size": args.segment}
    cfg = replace(cfg, **over)
    run_dir = work / f"run_{name}_{mode}"
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    code = loop.train(cfg, run_dir, f"{CONFIGS[name]} ({mode})", target_step=steps)
    wall = time.perf_counter() - t0
    recs = _events(run_dir)
    step_recs = [r for r in recs if r["event"] == "step"]
    warm = max(10, steps // 5)
    steady = [r for r in step_recs if r["step"] > warm] or step_recs[-1:]
    start = next((r for r in recs if r["event"] == "run_start"), {})
    alerts = [r["kind"] for r in recs if r["event"] == "alert"]
    vals = [r for r in recs if r["event"] == "val"]
    res = {
        "config": name,
        "mode": mode,
        "exit": code,
        "precision": start.get("precision"),
        "steps": step_recs[-1]["step"] if step_recs else 0,
        "steps_per_s": 1 / statistics.median(r["step_time"] for r in steady) if steady else None,
        "samples_per_s": statistics.median(r["samples_per_s"] for r in steady) if steady else None,
        "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "wall_s": wall,
        "val_s": vals[-1]["duration"] if vals else None,
        "alerts": alerts,
        "run_dir": str(run_dir),
        "batch": cfg.train.batch_size,
        "segment": cfg.audio.segment_size,
    }
    print(json.dumps(res), flush=True)
    return res


def vocode_check(run_dir: Path, corpus: Path, device: str, batch: int) -> dict:
    from trainer import cli
    from trainer.tools.inference import MelExtractor, MelInput, load_generator, vocode

    wavs = sorted((corpus / "wavs").glob("*.wav"))[: 2 * batch]
    loaded = load_generator(run_dir, "latest", device)
    cfg = loaded.cfg
    ext = MelExtractor(cfg, device)
    items = [MelInput(w.stem, w, ext.from_wav(w)) for w in wavs]
    sr, hop = cfg.audio.sample_rate, cfg.audio.hop_length
    vocode(loaded.generator, items, sr, hop, batch_size=batch)  # warm-up
    out = vocode(loaded.generator, items, sr, hop, batch_size=batch)
    seconds = sum(r.seconds for r in out)
    audio = sum(r.duration for r in out)
    res = {"files": len(out), "audio_s": audio, "rtf": seconds / audio, "batch": batch}
    print(json.dumps({"vocode": res}), flush=True)
    # The command itself, end to end on this device.
    code = cli.main(
        [
            "vocode",
            "--run-dir",
            str(run_dir),
            *map(str, wavs[:batch]),
            "--out",
            str(run_dir / "vocoded"),
            "--device",
            device,
            "--batch",
            str(batch),
        ]
    )
    res["cli_exit"] = code
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--configs", default="v1,48k")
    p.add_argument("--modes", default="fp32,bf16,fp16,compile")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, help="batch size (default: the config's)")
    p.add_argument("--segment", type=int, help="segment size (default: the config's)")
    p.add_argument("--budget", type=float, default=390, help="seconds for all training runs")
    p.add_argument("--val-utts", type=int, default=16)
    p.add_argument("--work", type=Path, help="work directory (default: a temp dir)")
    p.add_argument("--json", type=Path, help="also write every result here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (use --device cpu for a dry run)", file=sys.stderr)
        return 2
    dev = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"torch {torch.__version__}, device {dev}, python {sys.version.split()[0]}", flush=True)
    tmp = tempfile.TemporaryDirectory() if args.work is None else None
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    results, skipped = [], []
    corpora: dict[int, Path] = {}
    for name in args.configs.split(","):
        sr = load(ROOT / CONFIGS[name]).audio.sample_rate
        if sr not in corpora:
            corpora[sr] = ensure_demo_corpus(work / f"corpus_{sr}", sr, n_utterances=48)
        for mode in args.modes.split(","):
            if time.perf_counter() - t_start > args.budget:
                skipped.append(f"{name}/{mode}")
                continue
            results.append(train_one(name, mode, args, corpora[sr], work))
    extra: dict = {}
    first = next((r for r in results if r["mode"] == "fp32" and r["exit"] == 0), None)
    if first is not None:
        sr = load(ROOT / CONFIGS[first["config"]]).audio.sample_rate
        extra["vocode"] = vocode_check(Path(first["run_dir"]), corpora[sr], args.device, 8)
        from bench_vocode import LJSPEECH_MEAN_SECONDS, measure_validation

        v1 = next((r for r in results if r["config"] == "v1" and r["mode"] == "fp32"), None)
        total, audio_s, parts, skipped = measure_validation(
            torch.device(args.device), work, args.val_utts
        )
        val_size = load(ROOT / CONFIGS["v1"]).data.val_size
        val_s = total / audio_s * val_size * LJSPEECH_MEAN_SECONDS
        extra["validation"] = {
            "utterances": args.val_utts,
            "seconds": total,
            "audio_s": audio_s,
            "val_size": val_size,
            "scaled_val_size_s": val_s,
            "skipped_metrics": skipped,
            **{k: v for k, v in parts.items()},
        }
        if v1 and v1["steps_per_s"]:
            between = load(ROOT / CONFIGS["v1"]).log.val_every / v1["steps_per_s"]
            extra["validation"]["ratio"] = val_s / between
    print()
    print(
        f"{'config':<6} {'mode':<8} {'prec':<5} {'exit':>4} {'steps':>6} {'steps/s':>8} "
        f"{'samples/s':>10} {'peak MiB':>9} {'wall s':>7} {'val s':>6}  alerts"
    )
    for r in results:

        def f(v, fmt):
            return format(v, fmt) if v is not None else "-"

        print(
            f"{r['config']:<6} {r['mode']:<8} {str(r['precision']):<5} {r['exit']:>4} "
            f"{r['steps']:>6} {f(r['steps_per_s'], '8.2f')} {f(r['samples_per_s'], '10.1f')} "
            f"{f(r['peak_mib'], '9.0f')} {r['wall_s']:>7.1f} {f(r['val_s'], '6.2f')}  "
            f"{','.join(r['alerts']) or '-'}"
        )
    if skipped:
        print(f"skipped (over the {args.budget:.0f} s training budget): {', '.join(skipped)}")
    if "vocode" in extra:
        v = extra["vocode"]
        print(
            f"vocoding: {v['files']} files, {v['audio_s']:.1f} s of audio, batch {v['batch']}: "
            f"RTF {v['rtf']:.5f} ({1 / v['rtf']:.0f}x real time); CLI exit {v['cli_exit']}"
        )
    if "validation" in extra:
        v = extra["validation"]
        line = (
            f"validation ({v['utterances']} utterances, V1): {v['seconds']:.2f} s for "
            f"{v['audio_s']:.1f} s of audio -> {v['scaled_val_size_s']:.1f} s for "
            f"{v['val_size']} LJSpeech-length utterances (data.val_size)"
            + (f"; skipped: {', '.join(v['skipped_metrics'])}" if v["skipped_metrics"] else "")
        )
        if "ratio" in v:
            line += f"; {100 * v['ratio']:.2f} % of the time between validations"
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"runs": results, **extra}, indent=1))
    failed = [r for r in results if r["exit"] != 0]
    if tmp is not None:
        tmp.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
