"""A stand-in for ``nal-train train`` used by the control tests: a real, light process.

It takes the run lock and writes the PID file exactly as the trainer does (trainer.rundir),
logs run_start / step / run_end events, and stops on SIGTERM with run_end "stopped".
FAKE_TRAINER_MODE: "normal", "ignore_term" (survives SIGTERM), "fail" (exits 2 at once).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from trainer import events as ev
from trainer import rundir

STEP_S = 0.02


def main() -> int:
    p = argparse.ArgumentParser(prog="fake-trainer")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--config", type=Path)
    t.add_argument("--run-dir", type=Path, required=True)
    t.add_argument("--resume")
    t.add_argument("--target-step", type=int, default=1_000_000)
    args = p.parse_args()
    mode = os.environ.get("FAKE_TRAINER_MODE", "normal")
    print(f"fake trainer: mode {mode}, args {sys.argv[1:]}", flush=True)
    if mode == "fail":
        print("fake trainer: failing on purpose", file=sys.stderr, flush=True)
        return ev.EXIT_USAGE
    stop = {"sig": None}

    def handle(signum: int, _frame: object) -> None:
        stop["sig"] = signum

    if mode == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, handle)
    step = 0
    if args.resume:
        step = rundir.checkpoint_info(args.resume).step
    lock = rundir.RunLock(args.run_dir)
    try:
        lock.acquire()
    except rundir.RunLocked as e:
        print(f"fake trainer: {e}", file=sys.stderr, flush=True)
        return ev.EXIT_LOCKED
    try:
        with ev.EventWriter(args.run_dir / rundir.EVENTS) as w:
            w.write(
                ev.RunStart(
                    run_id="fake",
                    pid=os.getpid(),
                    config_path=str(args.config),
                    start_step=step,
                    target_step=args.target_step,
                    world_size=1,
                    device="cpu",
                    versions={},
                    resumed_from=args.resume,
                )
            )
            while step < args.target_step and stop["sig"] is None:
                time.sleep(STEP_S)
                step += 1
                w.write(
                    ev.Step(
                        step=step,
                        epoch=0,
                        g=1.0,
                        d=1.0,
                        stft=1.0,
                        adv=1.0,
                        fm=1.0,
                        recon="mrstft",
                        lr_g=2e-4,
                        lr_d=2e-4,
                        step_time=STEP_S,
                        samples_per_s=1.0,
                    )
                )
            status = ev.STATUS_STOPPED if stop["sig"] is not None else ev.STATUS_COMPLETED
            w.write(ev.RunEnd(step=step, status=status, reason="fake", exit_code=0))
    finally:
        lock.release()
    return ev.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
