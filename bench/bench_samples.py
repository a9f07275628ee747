"""How long the samples view (key ``v``) takes to open on a 48 kHz sample (target <= 300 ms).

The run directory holds mel pictures made by the trainer's own code
(``trainer.train.pictures.mel_picture`` on ``trainer.audio.MelSpectrogram`` of
config/hifigan_48k.yaml: 128 mels) from a synthesised 48 kHz utterance of ``--seconds``
seconds (pooled to 512 columns, the format's largest picture), generated and ground truth,
at two validation steps. The dashboard runs headless (Textual's test driver) at the given
size; each round presses ``v`` and stops the clock once both spectrograms have drawn their
grids and the screen has refreshed, then closes the view. Printed beside the target, with
the pure-Python picture decode and grid on their own.

    python bench/bench_samples.py
    python bench/bench_samples.py --rounds 10 --size 200x60
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nal_tui.core.control.session import RunSession  # noqa: E402
from nal_tui.core.samples.raster import db_grid  # noqa: E402
from nal_tui.ui.app import NalTuiApp  # noqa: E402
from nal_tui.ui.samples.screen import SamplesScreen  # noqa: E402
from nal_tui.ui.samples.spectro import Spectrogram  # noqa: E402
from tests.factory import val_record, write_run  # noqa: E402
from trainer.audio import MelSpectrogram  # noqa: E402
from trainer.config.yamlfile import load  # noqa: E402
from trainer.demo_corpus import synthesize_utterance  # noqa: E402
from trainer.events.codec import encode  # noqa: E402
from trainer.rundir.melpic import read_picture  # noqa: E402
from trainer.train.pictures import mel_picture  # noqa: E402

TARGET_MS = 300.0


def make_run(root: Path, seconds: float) -> tuple[Path, Path]:
    cfg = load(ROOT / "config/hifigan_48k.yaml")
    sr = cfg.audio.sample_rate
    rng = np.random.default_rng(1)
    wav = np.concatenate([synthesize_utterance(rng, sr)[0] for _ in range(8)])
    n = int(seconds * sr) // cfg.audio.hop_length * cfg.audio.hop_length
    wav = np.resize(wav, n).astype(np.float32)
    mel_fn = MelSpectrogram(cfg.audio)
    with torch.no_grad():
        truth = mel_fn(torch.from_numpy(wav)[None])[0].numpy()
        noisy = wav + 0.01 * rng.standard_normal(n).astype(np.float32)
        gen = mel_fn(torch.from_numpy(noisy)[None])[0].numpy()
    rd = write_run(root / "logs" / "vctk48k", 2000, checkpoints=())
    (rd / "samples" / "gt").mkdir(parents=True)
    (rd / "samples" / "gt" / "p225_001.wav").write_bytes(b"RIFF")
    (rd / "samples" / "gt" / "p225_001.logmel").write_bytes(mel_picture(truth, cfg.audio, n))
    recs = []
    for step in (1000, 2000):
        d = rd / "samples" / f"step_{step:08d}"
        d.mkdir(parents=True)
        (d / "p225_001_gen.wav").write_bytes(b"RIFF")
        (d / "p225_001_gen.logmel").write_bytes(mel_picture(gen, cfg.audio, n))
        recs.append(val_record(step, set="val", metrics={"mel_l1": 0.4, "pesq": 3.1}))
    with open(rd / "events.jsonl", "ab") as f:
        for r in recs:
            f.write(encode(r))
    return rd, d / "p225_001_gen.logmel"


async def time_opens(rd: Path, rounds: int, size: tuple[int, int]) -> list[tuple[float, float]]:
    """(wall ms, CPU ms of this process) per open."""
    app = NalTuiApp(RunSession(rd, logs_dir=rd.parent), config_path=ROOT / "config/demo.yaml",
                    build_models=False, sample_system=False)  # fmt: skip
    out = []
    async with app.run_test(size=size) as pilot:
        while app.feeds.loading or app.state.step != 2000:
            await pilot.pause(0.05)
        for _ in range(rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            await pilot.press("v")
            while not (
                isinstance(app.screen, SamplesScreen)
                and all(w.grid is not None for w in app.screen.query(Spectrogram))
            ):
                await pilot.pause(0.001)
            await pilot.wait_for_scheduled_animations()
            out.append((1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0)))
            await pilot.press("escape")
            while isinstance(app.screen, SamplesScreen):
                await pilot.pause(0.01)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seconds", type=float, default=10.0, help="length of the 48 kHz sample")
    p.add_argument("--size", default="160x45", help="terminal size, COLSxROWS")
    args = p.parse_args(argv)
    size = tuple(int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        rd, pic_path = make_run(Path(tmp), args.seconds)
        nbytes = pic_path.stat().st_size
        t0 = time.perf_counter()
        pic = read_picture(pic_path)
        t1 = time.perf_counter()
        db_grid(pic, size[0], size[1])
        t2 = time.perf_counter()
        times = asyncio.run(time_opens(rd, args.rounds, size))
    print(f"Samples view open, 48 kHz sample ({args.seconds:.0f} s, picture {pic.mels}x"
          f"{pic.frames}, {nbytes} B), "
          f"terminal {args.size}, {args.rounds} rounds")  # fmt: skip
    print(
        f"  picture decode {1000 * (t1 - t0):.1f} ms, grid {size[0]}x{size[1]} px "
        f"{1000 * (t2 - t1):.1f} ms (pure Python)"
    )
    wall = [w for w, _ in times]
    cpu = [c for _, c in times]
    med, worst = statistics.median(wall), max(wall)
    load = os.getloadavg()[0]
    print(
        f"  CPU time of this process per open: median {statistics.median(cpu):.0f} ms, "
        f"max {max(cpu):.0f} ms (what an idle machine's wall time would be, about)"
    )
    print(
        f"  v -> both spectrograms drawn: median {med:.0f} ms, max {worst:.0f} ms "
        f"(target <= {TARGET_MS:.0f} ms: {'within' if worst <= TARGET_MS else 'ABOVE'}); "
        f"load average {load:.1f} on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
