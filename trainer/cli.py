"""``nal-train``: train a HiFi-GAN vocoder, or print model sizes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from trainer import events as ev
from trainer import rundir
from trainer.config import Config, ConfigError, load


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
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    root = logging.getLogger("nal-train")
    # Under torchrun only rank 0 narrates; other ranks speak up for warnings and errors.
    root.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    root.handlers.clear()
    console = logging.StreamHandler(sys.stderr)
    if rank:
        fmt = logging.Formatter(
            f"%(asctime)s %(levelname)s [rank {rank}] %(message)s", "%Y-%m-%d %H:%M:%S"
        )
    console.setFormatter(fmt)
    root.addHandler(console)
    if run_dir is None:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / rundir.TRAIN_LOG
    try:
        same = log_path.exists() and os.path.samestat(
            os.fstat(sys.stderr.fileno()), os.stat(log_path)
        )
    except (OSError, ValueError):
        same = False
    if not same:
        fh = logging.FileHandler(log_path)
        fh.setFormatter(fmt)
        root.addHandler(fh)


def _cmd_train(args: argparse.Namespace) -> int:
    config_path = args.config
    if config_path is None:
        if args.resume and args.run_dir:
            config_path = args.run_dir / rundir.CONFIG_FILE
        else:
            print("nal-train: --config is required (or --resume with --run-dir)", file=sys.stderr)
            return ev.EXIT_USAGE
    try:
        cfg: Config = load(config_path)
    except ConfigError as e:
        print(f"nal-train: {e}", file=sys.stderr)
        return ev.EXIT_USAGE
    if args.target_step is not None and args.target_step < 1:
        print("nal-train: --target-step must be >= 1", file=sys.stderr)
        return ev.EXIT_USAGE
    run_dir = args.run_dir or Path("logs") / cfg.name
    rank = int(os.environ.get("RANK", "0"))
    _setup_logging(run_dir if rank == 0 else None, rank)
    __import__("trainer.console").console.attach(rank)  # progress line / periodic log lines
    from trainer.loop import train  # torch is imported only here

    code = train(
        cfg,
        run_dir,
        str(config_path),
        resume=args.resume,
        target_step=args.target_step,
        restore_signals=False,
    )
    # The run is over and saved: a late signal must not turn the exit code into a kill
    # (Python resets its own handlers to the default during interpreter shutdown).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    return code


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
    return _cmd_train(args)


if __name__ == "__main__":
    sys.exit(main())
