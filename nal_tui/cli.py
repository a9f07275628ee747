"""``nal-tui``: the dashboard, ``--preflight``, and headless ``start|stop|resume|status``.

Exit codes: 0 success, 1 failure (a failed check, a refused or failed action), 2 usage
(also a fresh ``start`` in a run dir that already holds a run, as ``nal-train`` refuses it).
Imports stay light: the Textual app is imported only when the dashboard opens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from nal_tui.core.defaults import (
    DEFAULT_GRACE_S,
    DEFAULT_LOGS,
    START_WAIT_S,
    config_for_run,
    default_run_dir,
)
from nal_tui.core.vocab import PID_LIVE

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nal-tui",
        description="Terminal dashboard for nal-train runs. Without a command it opens the "
        "most recent run under --logs-dir (or the demo config on a fresh clone); "
        "`nal-tui RUN_DIR` opens that run (as --run-dir RUN_DIR).",
        epilog="exit codes: 0 ok, 1 failure (a failed check or action), 2 usage error (also a "
        "start in a run dir that already holds a run)",
    )
    p.add_argument("--run-dir", type=Path, help="run directory to open / check")
    p.add_argument("--logs-dir", type=Path, default=DEFAULT_LOGS, help="where runs live (logs)")
    p.add_argument(
        "--config",
        type=Path,
        help="config for a new run, a path or a preset's name (nal-train configs); default: the "
        "run's config.yaml, else config/demo.yaml (outside a clone: the shipped demo)",
    )
    p.add_argument(
        "--polling",
        action="store_true",
        help="poll the event log instead of using inotify (network filesystems)",
    )
    p.add_argument(
        "--bell", action="store_true", help="ring the terminal bell on new alerts (key b)"
    )
    p.add_argument(
        "--read-only",
        action="store_true",
        help="the dashboard refuses start, stop, resume and kill (nal-tui serve's default)",
    )
    p.add_argument("--preflight", action="store_true", help="run the preflight checks and exit")
    p.add_argument(
        "--resume",
        metavar="latest|best|PATH",
        help="with --preflight: also check this resume checkpoint",
    )
    p.add_argument(
        "--new-branch",
        action="store_true",
        help="with --preflight: the start will start over as a new branch in a run dir that "
        "already holds a run",
    )
    p.add_argument(
        "--skip-models",
        action="store_true",
        help="with --preflight: do not build the models (faster)",
    )
    p.add_argument(
        "--nproc",
        type=_positive,
        default=1,
        help="with --preflight: processes the run will use (batch check)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    sub = p.add_subparsers(
        dest="cmd", metavar="{start,stop,resume,status,watch,serve,compare,export}"
    )
    keep = argparse.SUPPRESS  # sub-command options never overwrite the top-level ones

    s = sub.add_parser("start", help="start a new run (detached)")
    s.add_argument(
        "--config",
        type=Path,
        default=keep,
        help="config: a path or a preset's name (default config/demo.yaml, else the shipped demo)",
    )
    s.add_argument("--run-dir", type=Path, default=keep, help="default logs/<config name>")
    s.add_argument("--target-step", type=_positive, help="train up to this step")
    s.add_argument(
        "--nproc",
        type=_positive,
        default=keep,
        help="processes (> 1 starts torchrun --nproc-per-node N)",
    )
    s.add_argument(
        "--new-branch",
        action="store_true",
        default=keep,
        help="in a run dir that already holds a run: start over from step 0 as a new branch "
        "(its checkpoints are moved aside to checkpoints/abandoned/, nothing is deleted)",
    )
    s.add_argument(
        "--init-from",
        metavar="CKPT",
        help="fine-tune: start from another run's (or an imported run's) checkpoint; "
        "preflight checks it against the config and the corpus first",
    )
    s.add_argument(
        "--init-from-generator-only",
        action="store_true",
        help="with --init-from: take only the generator (fresh discriminators)",
    )
    s.add_argument("--no-preflight", action="store_true", help="start without the checks")
    s.add_argument(
        "--wait",
        type=float,
        default=START_WAIT_S,
        metavar="S",
        help=f"seconds to wait for the trainer to take the run lock ({START_WAIT_S:.0f})",
    )
    s.add_argument("--json", action="store_true", default=keep)

    t = sub.add_parser("stop", help="stop a run (SIGTERM; it saves a checkpoint first)")
    t.add_argument("--run-dir", type=Path, default=keep, help="default: the latest run")
    t.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_S,
        metavar="S",
        help=f"seconds to wait for a graceful exit ({DEFAULT_GRACE_S:.0f})",
    )
    t.add_argument(
        "--kill-after",
        type=float,
        metavar="S",
        help="send SIGKILL if still alive S seconds after SIGTERM (not by default)",
    )
    t.add_argument("--json", action="store_true", default=keep)

    r = sub.add_parser("resume", help="resume a run from a verified checkpoint (detached)")
    r.add_argument("--run-dir", type=Path, default=keep, help="default: the latest run")
    r.add_argument(
        "--checkpoint",
        default="latest",
        metavar="latest|best|PATH",
        help="checkpoint to resume from: latest (the default), best (the best-checkpoint "
        "ledger's, with checkpoint.best), or a path (also one in checkpoints/abandoned/)",
    )
    r.add_argument("--target-step", type=_positive, help="new target step")
    r.add_argument("--nproc", type=_positive, default=keep)
    r.add_argument("--wait", type=float, default=START_WAIT_S, metavar="S")
    r.add_argument("--json", action="store_true", default=keep)

    x = sub.add_parser(
        "export",
        help="write a run's live-branch series as CSV (pandas, spreadsheets) or a TensorBoard log",
    )
    x.add_argument("export_run_dir", type=Path, metavar="RUN_DIR")
    x.add_argument("--csv", type=Path, metavar="FILE", help="one row per step, val metrics by set")
    x.add_argument(
        "--tensorboard",
        type=Path,
        metavar="DIR",
        help="a TensorBoard log of the scalars (needs the [tensorboard] extra)",
    )

    st = sub.add_parser("status", help="print a run's status")
    st.add_argument("--run-dir", type=Path, default=keep, help="default: the latest run")
    st.add_argument("--json", action="store_true", default=keep)

    c = sub.add_parser(
        "compare",
        help="2-6 runs side by side: overlaid series, config diff, best scores, A/B samples",
    )
    c.add_argument(
        "run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="2 to 6 run directories"
    )

    w = sub.add_parser(
        "watch",
        help="follow runs headless and notify (Apprise, command hooks)",
        description="Follow run directories with the dashboard's reducer and tell of every "
        "alert, run start and run end: Apprise URLs (--notify, --notify-file, "
        "$NAL_NOTIFY_URLS; the [notify] extra), --on-alert / --on-end commands (the notice as "
        "JSON on stdin; NAL_RUN_DIR, NAL_ALERT_KIND, NAL_ALERT_LEVEL, NAL_STEP set). What was "
        "told is kept in RUN_DIR/watch.json, so a restart sends nothing twice.",
        epilog="--once exit codes: 0 healthy, 1 warnings, 2 errors (also crashed or failed), "
        "3 not running; several runs: the most severe (2, then 1, then 3)",
    )
    w.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="run directories (one that does not exist yet is waited for)",
    )
    w.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="an Apprise URL (repeatable; prefer --notify-file or $NAL_NOTIFY_URLS "
        "for secrets: a command line shows in ps and shell history)",
    )
    w.add_argument(
        "--notify-file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a file of Apprise URLs, one per line (# comments)",
    )
    w.add_argument("--on-alert", metavar="CMD", help="shell command run per notice")
    w.add_argument(
        "--on-end",
        metavar="CMD",
        help="shell command run when a run ends (completed, stopped, failed, crashed)",
    )
    w.add_argument(
        "--level",
        choices=("info", "warning", "error"),
        default="info",
        help="the least level told (info: also run start and end)",
    )
    w.add_argument(
        "--window",
        type=float,
        default=600.0,
        metavar="S",
        help="one notice per alert kind per run within S seconds; the rest are "
        "summed up as 'and N more' (600; 0 tells each)",
    )
    w.add_argument("--best", action="store_true", help="also tell of each new best checkpoint")
    w.add_argument(
        "--once",
        action="store_true",
        help="read, deliver what is new, print a report, exit with a health code",
    )
    w.add_argument(
        "--retry-for",
        type=float,
        default=120.0,
        metavar="S",
        help="retry a failed notification with backoff for S seconds (120)",
    )
    w.add_argument(
        "--hook-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="kill a hook still running after S seconds (30)",
    )
    w.add_argument("--polling", action="store_true", default=keep)

    v = sub.add_parser(
        "serve",
        help="the dashboard in a browser (textual-serve; the [serve] extra)",
        description="Serve the dashboard over HTTP for a browser (e.g. through an SSH tunnel). "
        "Each page load runs its own dashboard on the run; a token printed at start is "
        "required (403 without it). Read-only unless --allow-control.",
    )
    v.add_argument("--run-dir", type=Path, default=keep, help="default: the latest run")
    v.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    v.add_argument("--port", type=int, default=8000, help="port (8000)")
    v.add_argument(
        "--public",
        action="store_true",
        help="allow a non-loopback --host (anyone who can reach it and has the token sees "
        "the dashboard)",
    )
    v.add_argument(
        "--allow-control",
        action="store_true",
        help="let the browser start, stop, resume and kill (refused by default)",
    )
    v.add_argument("--polling", action="store_true", default=keep)
    return p


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be >= 1")
    return v


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str, ok: bool) -> int:
    if args.json:
        print(json.dumps(data, indent=1, default=str))
    else:
        print(text, file=sys.stdout if ok else sys.stderr)
    return EXIT_OK if ok else EXIT_FAIL


def _session(args: argparse.Namespace) -> Any:
    # only when this command runs: the others stay light
    from nal_tui.core.control.session import RunSession

    return RunSession.open(args.run_dir, args.logs_dir)


def cmd_preflight(args: argparse.Namespace) -> int:
    # only when this command runs: the others stay light
    from nal_tui.preflight import print_report, run_checks

    report = run_checks(
        config_for_run(args.run_dir, args.config),
        args.run_dir,
        resume=args.resume,
        build_models=not args.skip_models,
        nproc=args.nproc,
        logs_dir=args.logs_dir,
        new_branch=args.new_branch,
    )
    print_report(report, json_out=args.json)
    return EXIT_OK if report.ok else EXIT_FAIL


def cmd_start(args: argparse.Namespace) -> int:
    # only when this command runs: the others stay light
    from nal_tui.core.control.session import RunSession
    from trainer.config.schema import ConfigError

    config = config_for_run(None, args.config)
    run_dir = args.run_dir
    if run_dir is None:
        try:
            run_dir = default_run_dir(config, args.logs_dir)
        except ConfigError:
            run_dir = None  # preflight (or the start) names the config's problem
    if args.init_from_generator_only and not args.init_from:
        print(
            "nal-tui start: --init-from-generator-only goes with --init-from CKPT", file=sys.stderr
        )
        return EXIT_USAGE
    session = RunSession(run_dir, logs_dir=args.logs_dir)
    too_many = session.nproc_limit(config).refusal(args.nproc)
    if too_many is not None:  # before the checks: a typo, not something to check
        print(f"nal-tui start: --nproc {args.nproc}: {too_many}", file=sys.stderr)
        return EXIT_USAGE
    refused = None if args.new_branch else session.start_refusal(config)
    if refused is not None:  # refused like nal-train refuses it: a usage error, exit 2
        _emit(args, refused.to_dict(), f"nal-tui start: {refused.message}", False)
        return EXIT_USAGE
    if not args.no_preflight:
        # only when this command runs: the others stay light
        from nal_tui.preflight import run_checks
        from nal_tui.preflight.report import FAIL

        report = run_checks(
            config, run_dir, build_models=False, nproc=args.nproc, logs_dir=args.logs_dir,
            new_branch=args.new_branch, init_from=args.init_from,
            init_generator_only=args.init_from_generator_only,
        )  # fmt: skip
        if not report.ok:
            bad = [c for c in report.checks if c.status == FAIL]
            lines = (
                ["not starting: preflight failed"]
                + [
                    f"  ✗ {c.name}: {c.message}"
                    + "".join(f"\n    {d}" for d in c.details[:4])
                    + (f"\n    fix: {c.fix}" if c.fix else "")
                    for c in bad
                ]
                + [f"  {report.summary()} (run nal-tui --preflight for details)"]
            )
            return _emit(
                args,
                {"ok": False, "message": lines[0], "preflight": report.to_dict()},
                "\n".join(lines),
                False,
            )
    res = session.start(
        config, target_step=args.target_step, nproc=args.nproc, wait_s=args.wait,
        new_branch=args.new_branch, init_from=args.init_from,
        init_generator_only=args.init_from_generator_only,
    )  # fmt: skip
    if res.refused:
        _emit(args, res.to_dict(), f"nal-tui start: {res.message}", False)
        return EXIT_USAGE
    return _emit(args, res.to_dict(), res.message, res.ok)


def cmd_resume(args: argparse.Namespace) -> int:
    res = _session(args).resume(
        args.checkpoint,
        target_step=args.target_step,
        nproc=args.nproc,
        config_path=args.config,
        wait_s=args.wait,
    )
    return _emit(
        args, res.to_dict(), f"nal-tui resume: {res.message}" if not res.ok else res.message, res.ok
    )


def cmd_stop(args: argparse.Namespace) -> int:
    session = _session(args)
    if not args.json and session.problem() is None and session.trainer().state == PID_LIVE:
        wait = args.kill_after if args.kill_after is not None else args.grace
        print(
            f"stopping the trainer in {session.run_dir} (SIGTERM; up to {wait:.0f} s)...",
            flush=True,
        )
    res = session.stop(grace_s=args.grace, kill_after_s=args.kill_after)
    text = res.message if res.ok else f"nal-tui stop: {res.message}"
    return _emit(args, res.to_dict(), text, res.ok)


def cmd_status(args: argparse.Namespace) -> int:
    st = _session(args).status()
    if not st.ok:
        return _emit(args, st.to_dict(), f"nal-tui status: {st.message}", False)
    age = ""
    if st.last_event_t:
        ago = time.time() - st.last_event_t
        age = (
            f", last event {ago:.0f} s ago"
            if ago > -1
            else f", last event {-ago:.0f} s in the future (check the clocks)"
        )
    step = "no steps yet" if st.step is None else f"step {st.step}"
    if st.step is not None and st.target_step:
        step += f"/{st.target_step}"
    lines = [f"{st.run_dir}: {st.status}, {step}{age}"]
    if st.pid_file != "none":
        lines.append(f"  {st.pid_message}")
    if st.latest_checkpoint:
        lines.append(
            f"  latest checkpoint: {Path(st.latest_checkpoint).name} (step {st.latest_step})"
        )
    if st.run_end is not None:
        lines.append(f"  run_end: {st.run_end.get('status')} ({st.run_end.get('reason')})")
    # only when this command runs: the others stay light
    from nal_tui.core.control.runs import REFUSED_NOTE

    refused = st.reason.find(REFUSED_NOTE)
    if refused >= 0:
        lines.append(f"  {st.reason[refused:]}")
    return _emit(args, st.to_dict(), "\n".join(lines), True)


def cmd_watch(args: argparse.Namespace) -> int:
    # only when this command runs: the others stay light
    from nal_tui.core.watch.cli import run_watch

    return run_watch(args)


def cmd_compare(args: argparse.Namespace) -> int:
    """Load each run as the dashboard does, then open the compare app (exit 2: bad dirs)."""
    from nal_tui.core.compare.runs import CompareError, load_runs  # only when comparing
    from nal_tui.ui.compare.app import CompareApp  # Textual is imported only here

    try:
        runs = load_runs(args.run_dirs)
    except CompareError as e:
        print(f"nal-tui compare: {e}", file=sys.stderr)
        return EXIT_USAGE
    app = CompareApp(runs)
    app.run()
    return EXIT_FAIL if app.return_code else EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    # only when this command runs: the others stay light
    from nal_tui.ui.serve import (
        LOOPBACK,
        ServeError,
        app_command,
        is_local,
        make_server,
        new_token,
    )

    if not is_local(args.host) and not args.public:
        print(
            f"nal-tui serve: --host {args.host} is not a loopback address; add --public to "
            f"serve beyond this machine (or use an SSH tunnel to {LOOPBACK})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not 0 < args.port < 65536:
        print(f"nal-tui serve: --port {args.port} is not a port", file=sys.stderr)
        return EXIT_USAGE
    if not is_local(args.host):
        print(
            f"warning: serving on {args.host}: anyone who can reach it and has the token sees "
            "the dashboard" + (" and can stop the run" if args.allow_control else ""),
            file=sys.stderr,
        )
    run_dir = _session(args).run_dir
    token = new_token()
    command = app_command(run_dir, args.logs_dir, args.allow_control, args.polling)
    try:
        server = make_server(command, args.host, args.port, token, "nal-tui")
    except ServeError as e:
        print(f"nal-tui serve: {e}", file=sys.stderr)
        return EXIT_USAGE
    mode = "control allowed" if args.allow_control else "read-only"
    print(f"nal-tui serve ({mode}): open http://{args.host}:{args.port}/?token={token}", flush=True)
    server.serve()
    return EXIT_OK


def open_app(args: argparse.Namespace) -> int:
    """Open the dashboard on --run-dir, else the latest run, else the demo config.

    Exit code: 0 after a normal quit, 1 when the app died of an exception (Textual has
    printed the traceback). A --run-dir that does not exist is shown as such on screen.
    """
    from nal_tui.ui.app import NalTuiApp  # Textual is imported only here

    session = _session(args)
    app = NalTuiApp(
        session,
        config_path=config_for_run(session.run_dir, args.config),
        polling=args.polling,
        bell=args.bell,
        read_only=args.read_only,
    )
    app.run()
    code = app.return_code
    return EXIT_FAIL if code else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `nal-tui status | head`: the reader left; no traceback
        try:  # stop the interpreter's final flush of stdout from raising again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_FAIL


def cmd_export(args: argparse.Namespace) -> int:
    # only when this command runs: the others stay light
    from nal_tui.core.export import ExportError, live_records, write_csv, write_tensorboard
    from nal_tui.core.text import clean

    if args.csv is None and args.tensorboard is None:
        print("nal-tui export: give --csv FILE and/or --tensorboard DIR", file=sys.stderr)
        return EXIT_USAGE
    run_dir: Path = args.export_run_dir
    if not run_dir.is_dir():
        print(f"nal-tui export: there is no run directory {run_dir}", file=sys.stderr)
        return EXIT_FAIL
    try:
        log = live_records(run_dir)
        if log.garbled:
            print(
                f"nal-tui export: skipped {log.garbled} garbled line(s), e.g. {clean(log.sample)}"
            )
        if args.csv is not None:
            n = write_csv(log, args.csv)
            print(f"wrote {args.csv}: {n} steps of the live branch")
        if args.tensorboard is not None:
            print(write_tensorboard(log, args.tensorboard))
    except ExportError as e:
        print(f"nal-tui export: {e}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def _run_dir_word(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``nal-tui logs/demo`` as ``nal-tui --run-dir logs/demo``: a first word that is not a
    command but names a directory (or looks like a path) is the run to open. Anything else
    is a usage error naming the commands (and ``logs/WORD`` when that is a run)."""
    commands: set[str] = set()
    takes_value: set[str] = set()
    for action in parser._actions:  # argparse keeps no public list of them
        if isinstance(action, argparse._SubParsersAction):
            commands.update(action.choices)
        elif action.option_strings and action.nargs != 0:
            takes_value.update(action.option_strings)
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return argv
        if word.startswith("-"):
            i += 2 if word in takes_value else 1
            continue
        if word in commands:
            return argv
        if not (os.sep in word or Path(word).is_dir()):
            near = DEFAULT_LOGS / word
            hint = f" (did you mean {near}?)" if near.is_dir() else ""
            parser.error(
                f"{word!r} is neither a command ({', '.join(sorted(commands))}) nor a run "
                f"directory here{hint}"
            )
        if any(w == "--run-dir" or w.startswith("--run-dir=") for w in argv):
            parser.error(f"a run directory twice: {word!r} and --run-dir")
        return [*argv[:i], "--run-dir", word, *argv[i + 1 :]]
    return argv


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = _run_dir_word(parser, list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    if args.preflight and args.cmd is not None:
        parser.error("--preflight cannot be combined with a command")
    if args.cmd is None:
        return cmd_preflight(args) if args.preflight else open_app(args)
    try:
        return {
            "start": cmd_start,
            "stop": cmd_stop,
            "resume": cmd_resume,
            "status": cmd_status,
            "export": cmd_export,
            "watch": cmd_watch,
            "compare": cmd_compare,
            "serve": cmd_serve,
        }[args.cmd](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
