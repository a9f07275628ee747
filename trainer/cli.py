"""``nal-train``: train a HiFi-GAN vocoder, verify a checkpoint, vocode or export with it, import
the reference trainer's checkpoints, or print model sizes."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import os
import sys
from pathlib import Path

from trainer.config.locate import PRESET_SUFFIX, preset_summary, presets, resolve_config
from trainer.config.schema import Config, ConfigError
from trainer.config.yamlfile import load
from trainer.events import schema as ev
from trainer.rundir.checkpoints import CheckpointInfo
from trainer.rundir.history import fresh_start_refusal, run_history
from trainer.rundir.layout import (
    CONFIG_FILE,
    CheckpointError,
    default_run_dir,
)
from trainer.rundir.lock import PidFileError, process_matches, read_pid_file
from trainer.rundir.manifest import read_manifest
from trainer.rundir.resolve import find_resume_checkpoint, init_source_refusal, run_dir_of
from trainer.tools.commands import add_export_parser, add_import_parser, add_vocode_parser
from trainer.train import console, logsetup
from trainer.train.signals import StopFlag, ignore_stop_signals, signal_name


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nal-train", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) a run")
    t.add_argument(
        "--config",
        type=Path,
        help="YAML config, or a shipped preset by name (demo, hifigan_v1, ...: nal-train "
        "configs); default when resuming: the run dir's config.yaml",
    )
    t.add_argument(
        "--run-dir", type=Path, help=f"run directory (default {default_run_dir('<config name>')})"
    )
    start = t.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        metavar="latest|best|PATH",
        help="resume from the newest usable checkpoint of the live branch, from the best one "
        "(checkpoint.best's ledger; resuming from an older checkpoint starts a new branch), "
        "or from PATH (also one in checkpoints/abandoned/)",
    )
    start.add_argument(
        "--new-branch",
        action="store_true",
        help="start over from step 0 in a run dir that already holds a run; its checkpoints "
        "are moved aside to checkpoints/abandoned/, nothing is deleted",
    )
    t.add_argument("--target-step", type=int, help="train up to this step (overrides max_steps)")
    t.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="intra-op CPU threads per process (overrides train.threads; default one per "
        "physical core)",
    )
    t.add_argument(
        "--init-from",
        metavar="CKPT",
        help="fine-tune: start a new run (step 0, fresh optimizers, the config's learning rate "
        "and schedule) from another run's generator and discriminator weights",
    )
    t.add_argument(
        "--init-from-generator-only",
        action="store_true",
        help="with --init-from: take only the generator (the discriminators start fresh)",
    )
    t.add_argument(
        "--init-optimizers",
        action="store_true",
        help="with --init-from: also take the source's Adam moments (the learning rate, its "
        "schedule and the step count still start fresh)",
    )
    v = sub.add_parser(
        "verify",
        help="check that a checkpoint can be resumed (hash, safe load, format, keys, shapes)",
    )
    v.add_argument("--run-dir", type=Path, help="run directory (default: from the path or config)")
    v.add_argument(
        "--checkpoint", default="latest", metavar="latest|best|PATH", help="default: latest"
    )
    v.add_argument(
        "--config", type=Path, help="config to check shapes against (default: the run dir's)"
    )
    v.add_argument("--json", action="store_true", help="print one JSON object")
    c = sub.add_parser(
        "configs", help="list the shipped configs (name them without a path: --config demo)"
    )
    c.add_argument("--show", metavar="NAME", help="print one (e.g. > mine.yaml to edit a copy)")
    s = sub.add_parser("summary", help="print parameter counts as JSON")
    s.add_argument("--config", type=Path, required=True)
    add_vocode_parser(sub)
    add_export_parser(sub)
    add_import_parser(sub)
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
    if args.resume and args.run_dir is not None and not args.run_dir.is_dir():
        # A mistyped run dir must not become a new, empty one.
        _say(f"--resume: {_no_run_dir(args.run_dir)}")
        return ev.EXIT_NO_CHECKPOINT
    config_path = args.config
    if config_path is None:
        if args.resume and args.run_dir:
            config_path = args.run_dir / CONFIG_FILE
        else:
            _say("--config is required (or --resume with --run-dir)")
            return ev.EXIT_USAGE
    config_path = resolve_config(config_path)  # a preset's name becomes its file
    try:
        cfg: Config = load(config_path)
    except ConfigError as e:
        _say(str(e))
        return ev.EXIT_USAGE
    if args.target_step is not None and args.target_step < 1:
        _say("--target-step must be >= 1")
        return ev.EXIT_USAGE
    if args.threads is not None:
        if args.threads < 1:
            _say(f"--threads must be >= 1, got {args.threads}")
            return ev.EXIT_USAGE
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=args.threads))
    if args.init_from and args.resume:
        _say(
            "--init-from starts a new run from another run's weights; --resume continues "
            "this one: choose one"
        )
        return ev.EXIT_USAGE
    if (args.init_from_generator_only or args.init_optimizers) and not args.init_from:
        _say("--init-from-generator-only and --init-optimizers go with --init-from CKPT")
        return ev.EXIT_USAGE
    if args.init_from:
        # Checked before the run directory exists: a refused source leaves nothing behind.
        refused = init_source_refusal(args.init_from)
        if refused:
            _say(refused)
            return ev.EXIT_NO_CHECKPOINT
    if solo and stop.set:
        _say(f"stopped by {signal_name(stop.signum)} before start-up; nothing was written")
        return ev.EXIT_OK
    run_dir = args.run_dir or default_run_dir(cfg.name)
    refusal = _fresh_start_refusal(run_dir) if not (args.resume or args.new_branch) else None
    if refusal:
        _say(refusal)
        return ev.EXIT_USAGE
    rank = int(os.environ.get("RANK", "0"))
    _setup_logging(run_dir if rank == 0 else None, rank)
    log = logging.getLogger(logsetup.LOGGER)
    log.info("start-up: loading torch")
    console.attach(rank)  # a live progress line on a terminal, periodic log lines otherwise
    from trainer.train.loop import train  # torch is imported only here

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
        new_branch=args.new_branch,
        stop=stop,
        init_from=args.init_from,
        init_generator_only=args.init_from_generator_only,
        init_optimizers=args.init_optimizers,
    )


def _no_run_dir(run_dir: Path) -> str:
    """'no run directory X' with the closest existing sibling, if any (a typo is likely)."""
    msg = f"there is no run directory {run_dir}"
    try:
        siblings = [p.name for p in run_dir.parent.iterdir() if p.is_dir()]
    except OSError:
        siblings = []
    close = difflib.get_close_matches(run_dir.name, siblings, n=1)
    return msg + (f" (did you mean {run_dir.parent / close[0]}?)" if close else "")


def _fresh_start_refusal(run_dir: Path) -> str | None:
    """Why a start without --resume must not use ``run_dir`` (it holds a run), or None.

    Checked here, before torch is imported, on every rank alike; the trainer checks again
    under the run lock. A run dir in use by a live trainer is left to the lock (exit 3).
    """
    try:
        pid = read_pid_file(run_dir)
    except PidFileError:
        pid = None
    if pid is not None and process_matches(pid):
        return None
    hist = run_history(run_dir)
    return fresh_start_refusal(run_dir, hist) if hist is not None else None


def _cmd_verify(args: argparse.Namespace) -> int:
    """The trainer's full load test on one checkpoint; exit 0 usable, 5 not, 2 usage."""
    which = args.checkpoint
    run_dir = args.run_dir
    if run_dir is None and which != "latest":
        run_dir = run_dir_of(which, require_config=False)
    cfg: Config | None = None
    if args.config is not None:
        try:
            cfg = load(args.config)
        except ConfigError as e:
            print(f"nal-train: {e}", file=sys.stderr)
            return ev.EXIT_USAGE
        run_dir = run_dir or default_run_dir(cfg.name)
    if run_dir is None:
        print(
            "nal-train verify: give --run-dir (or --config, or a checkpoint path)", file=sys.stderr
        )
        return ev.EXIT_USAGE
    if not run_dir.is_dir():
        print(f"nal-train verify: {_no_run_dir(run_dir)}", file=sys.stderr)
        return ev.EXIT_NO_CHECKPOINT
    note = ""
    if cfg is None and (run_dir / CONFIG_FILE).is_file():
        try:
            cfg = load(run_dir / CONFIG_FILE)
        except ConfigError as e:
            print(f"nal-train: {e}", file=sys.stderr)
            return ev.EXIT_USAGE
    if cfg is None:
        note = " (shapes not checked: no config)"
    from trainer.checkpointing.loadtest import LoadTest  # torch loads here

    test = LoadTest(cfg)
    skipped: list[tuple[CheckpointInfo, str]] = []
    try:
        info, skipped = find_resume_checkpoint(run_dir, which, test)
        if read_manifest(info.manifest_path).generator_only:
            note += (
                " (imported generator-only: fine-tune from it with --init-from-generator-only; "
                "--resume refuses it)"
            )
        ok, message = True, f"usable: {info.path} (step {info.step}){note}"
    except CheckpointError as e:
        info, ok, message = None, False, str(e)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "checkpoint": str(info.path) if info else None,
                    "step": info.step if info else None,
                    "message": message,
                    "skipped": [{"path": str(i.path), "reason": r} for i, r in skipped],
                }
            )
        )
    else:
        for i, r in skipped:
            print(f"skipped {i.path}: {r}")
        print(message if ok else f"not usable: {message}")
    return ev.EXIT_OK if ok else ev.EXIT_NO_CHECKPOINT


def _cmd_configs(args: argparse.Namespace) -> int:
    """List the shipped presets, or print one (``--show NAME``) to copy and edit."""
    found = presets()
    if args.show is not None:
        path = found.get(args.show.removesuffix(PRESET_SUFFIX))
        if path is None:
            close = difflib.get_close_matches(args.show, list(found), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            _say(f"no shipped config named {args.show!r}{hint}; they are: {', '.join(found)}")
            return ev.EXIT_USAGE
        sys.stdout.write(path.read_text(encoding="utf-8"))
        return ev.EXIT_OK
    width = max((len(n) for n in found), default=0)
    for name, path in found.items():
        print(f"{name:<{width}}  {preset_summary(path)}")
    print(
        "\nuse: nal-train train --config NAME; copy one to edit: nal-train configs --show NAME > mine.yaml"
    )
    return ev.EXIT_OK


def _cmd_summary(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.config)
    except ConfigError as e:
        print(f"nal-train: {e}", file=sys.stderr)
        return ev.EXIT_USAGE
    from trainer.models import param_counts  # torch loads here

    print(json.dumps(param_counts(cfg)))
    return ev.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if hasattr(args, "func"):  # subcommands registered by their own modules
        return args.func(args)
    if args.cmd == "configs":
        return _cmd_configs(args)
    if args.cmd == "summary":
        return _cmd_summary(args)
    if args.cmd == "verify":
        return _cmd_verify(args)
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
