"""``nal-train``: train a HiFi-GAN vocoder, or print model sizes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from trainer import events as ev
from trainer import logsetup, rundir
from trainer.config import Config, ConfigError, load
from trainer.signals import StopFlag, ignore_stop_signals, signal_name


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nal-train", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) a run")
    t.add_argument(
        "--config", type=Path, help="YAML config (default when resuming: the run dir's config.yaml)"
    )
    t.add_argument("--run-dir", type=Path, help="run directory (default logs/<config name>)")
    t.add_argument(
        "--resume",
        metavar="latest|PATH",
        help="resume from the newest verified checkpoint, or from PATH",
    )
    t.add_argument("--target-step", type=int, help="train up to this step (overrides max_steps)")
    s = sub.add_parser("summary", help="print parameter counts as JSON")
    s.add_argument("--config", type=Path, required=True)
    return p


def _setup_logging(run_dir: Path | None, rank: int = 0) -> None:
    """Console logging, plus train.log in the run dir unless stderr already goes there."""
    logsetup.setup_logging(run_dir, rank)


def _say(text: str) -> None:
    """One line on stderr that cannot fail (the terminal may be gone)."""
    try:
        print(f"nal-train: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        logsetup.silence_console()


def _cmd_train(args: argparse.Namespace, stop: StopFlag) -> int:
    # Under torchrun a rank must not leave alone before the process group is up (the others
    # would wait for it); ranks decide together once it is (Trainer's start-up phases).
    solo = int(os.environ.get("WORLD_SIZE", "1")) <= 1
    config_path = args.config
    if config_path is None:
        if args.resume and args.run_dir:
            config_path = args.run_dir / rundir.CONFIG_FILE
        else:
            _say("--config is required (or --resume with --run-dir)")
            return ev.EXIT_USAGE
    try:
        cfg: Config = load(config_path)
    except ConfigError as e:
        _say(str(e))
        return ev.EXIT_USAGE
    if args.target_step is not None and args.target_step < 1:
        _say("--target-step must be >= 1")
        return ev.EXIT_USAGE
    if solo and stop.set:
        _say(f"stopped by {signal_name(stop.signum)} before start-up; nothing was written")
        return ev.EXIT_OK
    run_dir = args.run_dir or Path("logs") / cfg.name
    rank = int(os.environ.get("RANK", "0"))
    _setup_logging(run_dir if rank == 0 else None, rank)
    log = logging.getLogger(logsetup.LOGGER)
    log.info("start-up: loading torch")
    from trainer.loop import train  # torch is imported only here

    if solo and stop.set:
        log.warning(
            "stopped by %s during start-up, before the run directory was opened",
            signal_name(stop.signum),
        )
        return ev.EXIT_OK
    return train(
        cfg,
        run_dir,
        str(config_path),
        resume=args.resume,
        target_step=args.target_step,
        restore_signals=False,
        stop=stop,
    )


def _cmd_summary(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(f"nal-train: {e}", file=sys.stderr)
        return ev.EXIT_USAGE
    from trainer.models import param_counts

    print(json.dumps(param_counts(cfg)))
    return ev.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "summary":
        return _cmd_summary(args)
    # First thing, before torch is imported: a stop request during start-up is honoured
    # at the next phase boundary instead of killing a half-opened run.
    stop = StopFlag().install()
    try:
        code = _cmd_train(args, stop)
    finally:
        # The run is over and saved: a late signal must not turn the exit code into a kill
        # (Python resets its own handlers to the default during interpreter shutdown).
        ignore_stop_signals()
        logsetup.quiet_exit()
    return code


if __name__ == "__main__":
    sys.exit(main())
