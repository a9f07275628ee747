"""What the TensorBoard mirror (log.tensorboard) costs the training loop.

The mirror runs inside the event writer's observer, at the log's cadence: one step record
per log_every steps, one val record per validation. This times, in one process: the JSONL
write of a step record alone, the same with the mirror observing, and the mirror's share per
validation record with audio and spectrograms of real-length clips; then puts the per-step
cost beside the measured time of one training step of the demo config (the cheapest the
project trains), the comparison the issue asks for.

    python bench/bench_tensorboard.py [--records 20000] [--no-train-step]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.events import schema as ev  # noqa: E402
from trainer.events.writer import EventWriter, add_observer, remove_observer  # noqa: E402
from trainer.tools import tbmirror  # noqa: E402


def _step(i: int) -> ev.Step:
    return ev.Step(
        step=i,
        epoch=0,
        g=50.0 + i % 7,
        d=3.0,
        stft=1.0,
        adv=2.0,
        fm=0.5,
        recon="mrstft",
        lr_g=2e-4,
        lr_d=2e-4,
        step_time=0.3,
        samples_per_s=50.0,
        grad_norm_g=1.0,
        grad_norm_d=2.0,
    )


def _write(path: Path, n: int, mirror: tbmirror.TensorBoardMirror | None) -> float:
    if mirror is not None:
        add_observer(mirror.record)
    try:
        with EventWriter(path) as w:
            t0 = time.perf_counter()
            for i in range(1, n + 1):
                w.write(_step(i))
            return (time.perf_counter() - t0) / n
    finally:
        if mirror is not None:
            remove_observer(mirror.record)
            mirror.close()


def _val_cost(tmp: Path, seconds: float, sr: int, clips: int) -> float:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    samples = []
    for k in range(clips):
        p = tmp / f"utt{k}_gen.wav"
        sf.write(p, (rng.standard_normal(int(seconds * sr)) * 0.1).astype("float32"), sr)
        samples.append(p.name)
    mirror = tbmirror.TensorBoardMirror(tmp / "tb_val", tmp)
    rec = ev.Val(
        step=1000,
        losses={"mel_l1": 0.5},
        samples=samples,
        metrics={"mel_l1": 0.5, "mstft": 1.0, "pesq": 3.0},
    ).to_record()
    times = []
    for i in range(5):
        rec["step"] = 1000 * (i + 1)
        t0 = time.perf_counter()
        mirror.record(rec)
        times.append(time.perf_counter() - t0)
    mirror.close()
    return statistics.median(times)


def _train_step_seconds(steps: int) -> float:
    """Median time of one real training step of config/demo.yaml (the event's step_time)."""
    from trainer.config.yamlfile import load
    from trainer.train import loop

    with tempfile.TemporaryDirectory() as d:
        cfg = load(
            ROOT / "config" / "demo.yaml",
            {"data": {"corpus_dir": f"{d}/corpus"}, "log": {"val_every": 10**6}},
        )
        loop.train(cfg, Path(d) / "run", "demo.yaml", target_step=steps)
        times = [
            r["step_time"]
            for r in map(
                __import__("json").loads,
                (Path(d) / "run" / "events.jsonl").read_text().splitlines(),
            )
            if r["event"] == "step"
        ]
    return statistics.median(times[1:])


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--no-train-step", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        plain = _write(tmp / "a.jsonl", args.records, None)
        mirrored = _write(tmp / "b.jsonl", args.records, tbmirror.TensorBoardMirror(tmp / "tb"))
        val = _val_cost(tmp, 4.0, 22050, 3)
    extra = mirrored - plain
    print(f"step record, JSONL only:          {plain * 1e6:8.1f} us")
    print(
        f"step record, JSONL + mirror:      {mirrored * 1e6:8.1f} us  (mirror +{extra * 1e6:.1f} us)"
    )
    print(f"val record, 3 clips of 4 s audio + spectrograms: {val * 1e3:.1f} ms per validation")
    if not args.no_train_step:
        step = _train_step_seconds(12)
        print(f"one training step, config/demo.yaml (CPU): {step * 1e3:8.1f} ms")
        print(
            f"mirror per logged step: {extra / step * 100:.3f} % of a demo step (log_every 1; "
            f"less at larger log_every)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
