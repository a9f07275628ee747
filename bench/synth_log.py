"""Write a realistic synthetic ``events.jsonl`` (for benchmarks and tests).

One step event per step, validation every ``val_every`` steps, checkpoints every
``checkpoint_every``, milestones, an optional resume from an earlier checkpoint in the
middle, and a few NaN spikes. Records are built with trainer.events' classes and encoder.

    python bench/synth_log.py /tmp/run --steps 500000
"""

from __future__ import annotations

import argparse
import math
import os
import random
from dataclasses import fields
from pathlib import Path

from trainer.events import schema as ev
from trainer.events.codec import encode

_STEP_KEYS = [f.name for f in fields(ev.Step)]


def _run_start(step: int, target: int, name: str, every: tuple[int, int, int], resumed: str | None):
    val_every, ckpt_every, ms_every = every
    return ev.RunStart(
        run_id=f"synthetic-{step}",
        pid=os.getpid(),
        config_path="config/synthetic.yaml",
        start_step=step,
        target_step=target,
        world_size=1,
        device="cpu",
        versions={"python": "3"},
        resumed_from=resumed,
        run_name=name,
        batch_size=16,
        segment_size=8192,
        sample_rate=22050,
        recon_loss="mrstft",
        log_every=1,
        val_every=val_every,
        checkpoint_every=ckpt_every,
        milestone_every=ms_every,
    )


def write_synthetic_run(
    run_dir: str | os.PathLike[str],
    steps: int,
    *,
    target_step: int | None = None,
    val_every: int = 1000,
    checkpoint_every: int = 5000,
    milestone_every: int = 10_000,
    resume_at: int | None = None,
    resume_from: int | None = None,
    nan_steps: tuple[int, ...] | None = None,
    step_time: float = 0.2,
    t0: float = 1_700_000_000.0,
    seed: int = 0,
    run_end: str | None = None,
) -> Path:
    """Write ``run_dir/events.jsonl`` for a run that reached ``steps``; returns its path.

    With ``resume_at`` (default: half way) the trainer "dies" there and resumes from the
    checkpoint ``resume_from`` (default: the one before that step), re-logging the steps in
    between. ``nan_steps`` (default: three spread out) get NaN losses. ``run_end`` adds a
    final run_end with that status.
    """
    rng = random.Random(seed)
    target = target_step or steps
    if resume_at is None:
        resume_at = steps // 2 if steps >= 4 * checkpoint_every else 0
    if resume_at and resume_from is None:
        resume_from = (resume_at - 1) // checkpoint_every * checkpoint_every
    if nan_steps is None:
        nan_steps = tuple(max(1, steps * k // 7) for k in (2, 3, 5))
    nan_set = set(nan_steps)
    every = (val_every, checkpoint_every, milestone_every)
    path = Path(run_dir) / ev.EVENTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    enc = encode
    t = t0
    with open(path, "wb", buffering=1 << 20) as f:
        f.write(enc(_run_start(0, target, "synthetic", every, None).to_record(t)))
        step = 0
        resumed = False
        while step < steps:
            step += 1
            t += step_time * (0.9 + 0.2 * rng.random())
            x = step / max(steps, 1)
            stft = 1.0 + 2.0 * math.exp(-5 * x) + 0.05 * rng.random()
            adv, fm, d = 2.5 + 0.3 * rng.random(), 4.0 + rng.random(), 3.0 + 0.5 * rng.random()
            g = adv + 2 * fm + 45 * stft
            if step in nan_set:
                g = d = math.nan
            vals = (
                step,
                1 + step // 1000,
                g,
                d,
                stft,
                adv,
                fm,
                "mrstft",
                2e-4,
                2e-4,
                step_time,
                16 / step_time,
                1.5,
                0.7,
            )
            rec = {
                ev.K_VERSION: ev.SCHEMA_VERSION,
                ev.K_EVENT: ev.Step.EVENT,
                ev.K_TIME: round(t, 6),
            }
            rec.update(zip(_STEP_KEYS, vals, strict=True))
            f.write(enc(rec))
            if step % val_every == 0:
                t += 2.0
                # Both sets, every metric (the validation chart's series), unseen first.
                mets = {"mel_l1": 0.4 + stft / 100, "mstft": stft, "pesq": 3.0, "stoi": 0.9,
                        "composite": 2.0 + stft / 50}  # fmt: skip
                for vset in (ev.UNSEEN_SET, ev.VAL_SET):
                    val = ev.Val(
                        step=step,
                        losses={"stft": stft, "mel_l1": 0.4},
                        duration=2.0,
                        samples=[f"samples/step{step:08d}_0.wav"],
                        metrics=mets,
                        set=vset,
                    )
                    f.write(enc(val.to_record(t)))
            if step % checkpoint_every == 0:
                t += 1.0
                ck = ev.Checkpoint(
                    step=step,
                    path=f"checkpoints/step_{step:08d}.pt",
                    bytes=56_000_000,
                    sha256=f"{step:064x}",
                    milestone=bool(milestone_every and step % milestone_every == 0),
                    duration=1.0,
                )
                f.write(enc(ck.to_record(t)))
            if milestone_every and step % milestone_every == 0:
                ms = ev.Milestone(
                    step=step, name=f"step {step:,}", message=f"reached step {step:,}"
                )
                f.write(enc(ms.to_record(t)))
            if resume_at and not resumed and step == resume_at:
                resumed = True
                t += 30.0
                step = resume_from or 0
                rs = _run_start(step, target, "synthetic", every, f"checkpoints/step_{step:08d}.pt")
                f.write(enc(rs.to_record(t)))
        if run_end:
            end = ev.RunEnd(step=step, status=run_end, reason="synthetic", exit_code=0)
            f.write(enc(end.to_record(t + 1)))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--steps", type=int, default=500_000)
    p.add_argument("--target-step", type=int, default=None)
    p.add_argument("--no-resume", action="store_true")
    a = p.parse_args()
    path = write_synthetic_run(
        a.run_dir, a.steps, target_step=a.target_step, resume_at=0 if a.no_resume else None
    )
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
