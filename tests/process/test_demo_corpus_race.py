"""Demo corpus generation raced by real processes."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.factory import tree_digest
from trainer.demo_corpus import ensure_demo_corpus

SR = 16000


def test_racing_processes_produce_one_complete_corpus(tmp_path):
    target = tmp_path / "raced"
    cmd = [sys.executable, "-m", "trainer.demo_corpus", str(target), "--n-utterances", "4"]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(3)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    assert tree_digest(target) == tree_digest(ensure_demo_corpus(tmp_path / "ref", SR, 4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raced", "ref"]
