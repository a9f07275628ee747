"""``nal-tui watch``'s face: arguments in, notifiers built, the loop run, signals handled.

SIGTERM, SIGINT and SIGHUP (an SSH session closing) end the loop cleanly: queued notices
get a few seconds to go out and the state file is written.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from nal_tui.core.text import clean
from nal_tui.core.watch.notifiers import (
    AppriseNotifier,
    NotifyConfigError,
    gather_urls,
)
from nal_tui.core.watch.watcher import Watcher, WatchOptions

EXIT_USAGE = 2


def _say(text: str) -> None:
    print(clean(text, 600), flush=True)


def _warn(text: str) -> None:
    print(f"nal-tui watch: {clean(text, 600)}", file=sys.stderr, flush=True)


def run_watch(args: argparse.Namespace) -> int:
    for name in ("window", "retry_for", "hook_timeout"):
        if getattr(args, name) < 0:
            _warn(f"--{name.replace('_', '-')} must be >= 0")
            return EXIT_USAGE
    try:
        urls = gather_urls(args.notify, args.notify_file)
        notifiers = [AppriseNotifier(u) for u in urls]
    except NotifyConfigError as e:
        _warn(str(e))
        return EXIT_USAGE
    opts = WatchOptions(
        on_alert=args.on_alert, on_end=args.on_end, level=args.level, window_s=args.window,
        best=args.best, polling=args.polling, retry_for_s=args.retry_for,
        hook_timeout_s=args.hook_timeout,
    )  # fmt: skip
    for rd in args.run_dirs:
        if rd.exists() and not rd.is_dir():
            _warn(f"{rd} is not a directory")
            return EXIT_USAGE
    if not notifiers and not args.on_alert and not args.on_end and not args.once:
        _warn("nothing to notify: give --notify URL, --notify-file, $NAL_NOTIFY_URLS, "
              "--on-alert or --on-end (printing notices to stdout only)")  # fmt: skip
    if notifiers:
        _say("notifying " + ", ".join(n.name for n in notifiers))
    watcher = Watcher(list(args.run_dirs), notifiers, opts, say=_say, warn=_warn)
    if args.once:
        code, lines = watcher.once(wait_s=args.retry_for + args.hook_timeout + 5)
        for line in lines:
            print(line)
        return code
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()
        watcher.wake.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    watcher.run(stop)
    return 0
