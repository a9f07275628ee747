"""Hostile configs given to the real ``nal-train`` (and to preflight, which loads configs with
the same function): exit 2 with the file and key named, in bounded time and memory."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, nal_train_cmd
from trainer.events import schema as ev

MEMORY_CAP = 1 << 30  # address space for the whole process: the bomb must fit in it


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


BOMB = (
    "name: bomb\n"
    "train:\n  batch_size: 4\n"
    "loss:\n  stft_resolutions:\n"
    '    - &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join(
        f"    - &{b} [{', '.join([f'*{a}'] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
)

CASES = {
    "alias-bomb": (BOMB.encode(), "'loss.stft_resolutions["),
    "not-utf8": (b"name: x\ndata:\n  corpus_dir: caf\xe9\n", "'data.corpus_dir'"),
    "empty": (b"", "config file is empty"),
    "absurd-segment": (b"audio:\n  segment_size: 100000000000\n", "'audio.segment_size'"),
    "absurd-batch": (b"train:\n  batch_size: 50000000\n", "'train.batch_size'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_nal_train_refuses_hostile_config(tmp_path: Path, case: str) -> None:
    data, needle = CASES[case]
    cfg = tmp_path / "hostile.yaml"
    cfg.write_bytes(data)
    p = subprocess.run(
        nal_train_cmd() + ["train", "--config", str(cfg), "--run-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        preexec_fn=_cap_memory,
    )
    assert p.returncode == ev.EXIT_USAGE, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 600, p.stderr[-2000:]
    assert str(cfg) in lines[0] and needle in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", ["alias-bomb", "not-utf8", "empty"])
def test_preflight_gives_the_same_verdict(tmp_path: Path, case: str) -> None:
    data, needle = CASES[case]
    cfg = tmp_path / "hostile.yaml"
    cfg.write_bytes(data)
    p = subprocess.run(
        [sys.executable, "-m", "nal_tui", "--preflight", "--json", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        preexec_fn=_cap_memory,
    )
    assert p.returncode == 1, p.stderr[-2000:]
    checks = {c["name"]: c for c in json.loads(p.stdout)["checks"]}
    conf = checks["Configuration"]
    assert conf["status"] == "fail" and needle in conf["message"]
