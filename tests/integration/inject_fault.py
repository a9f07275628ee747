"""Run ``nal-train`` with one injected I/O error (tests only; used where no real device can
produce it, e.g. EIO). ``NAL_TEST_FAULT=eio-events:N``: the event log's write of its N-th
record (counted from this process's first) stores half its bytes, then fails with EIO.
``NAL_TEST_FAULT=nonfinite:FIRST:COUNT``: the generator loss of this process's train steps
FIRST .. FIRST+COUNT-1 (counted from 1) is NaN (what a diverging run logs).

Usage: python tests/integration/inject_fault.py train --config ... (nal-train's arguments)
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from trainer.events.writer import EventWriter  # noqa: E402


def _nonfinite(arg: str) -> None:
    from trainer.train import step as step_mod  # torch: only for this fault

    first, count = (int(x) for x in arg.split(":"))
    real = step_mod.hifigan_generator_loss
    calls = [0]

    def poisoned(*args, **kw):
        out = real(*args, **kw)
        calls[0] += 1
        if first <= calls[0] < first + count:
            return out._replace(total=out.total * float("nan"))
        return out

    step_mod.hifigan_generator_loss = poisoned


def _install(spec: str) -> None:
    kind, _, arg = spec.partition(":")
    if kind == "nonfinite":
        _nonfinite(arg)
        return
    if kind != "eio-events":
        raise SystemExit(f"unknown NAL_TEST_FAULT {spec!r}")
    fail_at = int(arg)
    fds: set[int] = set()
    count = [0]
    real_init, real_write = EventWriter.__init__, os.write

    def init(self: EventWriter, path: str) -> None:
        real_init(self, path)
        fds.add(self._fd)

    def write(fd: int, data: bytes) -> int:
        if fd in fds:
            count[0] += 1
            if count[0] >= fail_at:
                real_write(fd, bytes(data[: len(data) // 2]))  # a real torn line on disk
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_write(fd, data)

    EventWriter.__init__ = init  # type: ignore[method-assign]
    os.write = write  # type: ignore[assignment]


if __name__ == "__main__":
    _install(os.environ["NAL_TEST_FAULT"])
    from trainer.cli import main

    sys.exit(main(sys.argv[1:]))
