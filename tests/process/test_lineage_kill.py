"""A checkpoint move SIGKILLed half-way, in a real child process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.lineage_factory import ckpt, steps, tree
from trainer.checkpointing import lineage
from trainer.rundir.checkpoints import list_abandoned, list_checkpoints
from trainer.rundir.layout import (
    MOVE_JOURNAL,
)

_KILLED_MOVE = textwrap.dedent("""
    import os, signal, sys
    from trainer.checkpointing import lineage
    from trainer.rundir.checkpoints import list_checkpoints
    run = sys.argv[1]
    real, n = os.rename, []
    def rename(src, dst):
        n.append(dst)
        if len(n) == 2:  # the journal is in place and one file has moved
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst)
    lineage.os.rename = rename
    lineage.apply_plan(run, lineage.plan_start(run, list_checkpoints(run)[0]))
""")


def test_a_move_killed_half_way_is_finished_at_the_next_start(tmp_path: Path) -> None:
    for s in (10, 20, 30):
        ckpt(tmp_path, s)
    before = tree(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _KILLED_MOVE, str(tmp_path)], timeout=120)
    assert proc.returncode == -9
    assert (tmp_path / "checkpoints" / MOVE_JOURNAL).exists()
    split = {(i.step, i.complete) for i in list_checkpoints(tmp_path)}
    assert (20, False) in split  # its .pt moved, its manifest not yet
    done = lineage.finish_interrupted_move(tmp_path)
    assert len(done) == 3  # 20's manifest and 30's two files
    assert steps(list_checkpoints(tmp_path)) == [10]
    ab = list_abandoned(tmp_path)
    assert steps(ab) == [20, 30] and all(i.complete for i in ab)
    assert tree(tmp_path) == before
    assert lineage.finish_interrupted_move(tmp_path) == []
