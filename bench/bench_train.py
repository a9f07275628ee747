"""Trainer throughput: seconds per training step and samples/s, plus the event-log overhead.

Runs the real training step (data loader, mel on device, D update, G update) on a corpus
generated at the config's sample rate, after warm-up steps, and prints one JSON line per
config with the median/min/max step time. Example:

    python bench/bench_train.py --config config/demo.yaml --steps 30
    python bench/bench_train.py --config config/hifigan_48k.yaml --batch 4 --segment 8192 --steps 5
    python bench/bench_train.py --config config/hifigan_v1.yaml --recon mel --batch 16 --segment 8192 --steps 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer.config.build import replace
from trainer.config.schema import DEVICES, PRECISIONS, RECON_LOSSES  # noqa: E402
from trainer.config.yamlfile import load
from trainer.demo_corpus import ensure_demo_corpus  # noqa: E402
from trainer.events import schema as ev
from trainer.events.writer import EventWriter  # noqa: E402
from trainer.train.loop import Trainer  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(args: argparse.Namespace, config_path: str, work: Path) -> dict:
    cfg = load(config_path)
    sr = cfg.audio.sample_rate
    corpus = ensure_demo_corpus(
        work / f"corpus_{sr}", sr, n_utterances=max(48, 2 * (args.batch or 16) + 8)
    )
    over: dict = {
        "data": {
            "corpus_dir": str(corpus),
            "demo": False,
            "val_size": 4,
            "num_workers": args.workers,
        },
        "train": {"device": args.device, "precision": args.precision, "compile": args.compile},
        "log": {"log_every": 1, "val_every": 10**9},
        "checkpoint": {"every": 10**9, "milestone_every": 0},
    }
    if args.batch:
        over["train"]["batch_size"] = args.batch
    if args.segment:
        over["audio"] = {"segment_size": args.segment}
    if args.recon:
        over["loss"] = {"recon": args.recon}
    cfg = replace(cfg, **over)
    run = work / f"run_{cfg.name}"
    t = Trainer(cfg, run, config_path, target_step=10**9)
    t.setup()
    try:
        times: list[float] = []
        it = iter(t.loader)
        total = args.warmup + args.steps
        for i in range(total):
            try:
                batch = next(it)
            except StopIteration:  # epoch boundary: a new iterator, as the loop does
                t.data.sampler.set_epoch(t.pos.epoch + 1)
                t.pos.epoch += 1
                it = iter(t.loader)
                batch = next(it)
            _sync(t.device)
            t0 = time.perf_counter()
            out = t.train_step(batch)
            torch.stack(out).tolist()  # the loop's per-logging-step sync (StepTotals.means)
            _sync(t.device)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        # Event logging cost: write the same step record the loop writes, many times.
        writer = EventWriter(work / "bench_events.jsonl")
        rec = ev.Step(
            step=1,
            epoch=0,
            g=1.0,
            d=1.0,
            stft=1.0,
            adv=1.0,
            fm=1.0,
            recon="mrstft",
            lr_g=2e-4,
            lr_d=2e-4,
            step_time=0.1,
            samples_per_s=1.0,
            grad_norm_g=1.0,
            grad_norm_d=1.0,
        )
        n = 2000
        t0 = time.perf_counter()
        for _ in range(n):
            writer.write(rec)
        log_s = (time.perf_counter() - t0) / n
        writer.close()
        med = statistics.median(times)
        per_step = cfg.train.batch_size
        mem = torch.cuda.max_memory_allocated(t.device) / 2**30 if t.device.type == "cuda" else None
        return {
            "config": config_path,
            "device": str(t.device),
            "precision": t.precision.name,
            "compile": cfg.train.compile,
            "batch": cfg.train.batch_size,
            "segment": cfg.audio.segment_size,
            "recon": cfg.loss.recon,
            "steps": len(times),
            "warmup": args.warmup,
            "s_per_step_median": round(med, 4),
            "s_per_step_min": round(min(times), 4),
            "s_per_step_max": round(max(times), 4),
            "steps_per_s": round(1 / med, 3),
            "samples_per_s": round(per_step / med, 2),
            "event_write_s": round(log_s, 7),
            "event_overhead_pct_log_every_1": round(100 * log_s / med, 4),
            "event_overhead_pct_at_config_log_every": round(
                100 * log_s / (med * load(config_path).log.log_every), 5
            ),
            "gpu_mem_gib": round(mem, 2) if mem is not None else None,
            "threads": torch.get_num_threads(),
        }
    finally:
        t.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--config", action="append", help="config file (repeatable); default: demo and 48k"
    )
    p.add_argument("--batch", type=int, help="batch size (default: the config's)")
    p.add_argument("--segment", type=int, help="segment size in samples (default: the config's)")
    p.add_argument("--recon", choices=RECON_LOSSES, help="reconstruction loss override")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    args = p.parse_args()
    configs = args.config or ["config/demo.yaml", "config/hifigan_48k.yaml"]
    with tempfile.TemporaryDirectory(prefix="nal-bench-") as d:
        for c in configs:
            print(json.dumps(bench(args, c, Path(d))), flush=True)


if __name__ == "__main__":
    main()
