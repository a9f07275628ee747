"""Shared fixtures: a demo corpus generated once per session, and small run configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "config" / "demo.yaml"


@pytest.fixture(scope="session", autouse=True)
def _user_cache(tmp_path_factory: pytest.TempPathFactory):
    """What the project caches per user (vocode's ONNX exports) goes to a temp directory,
    never the real ~/.cache; subprocesses inherit it."""
    old = os.environ.get("NAL_CACHE_DIR")
    os.environ["NAL_CACHE_DIR"] = str(tmp_path_factory.mktemp("user_cache"))
    yield
    if old is None:
        os.environ.pop("NAL_CACHE_DIR", None)
    else:
        os.environ["NAL_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _chart_prefs_isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """nal-tui's per-user state (remembered chart settings) in a temp dir, never the
    user's own: tests and the processes they start read NAL_STATE_DIR."""
    monkeypatch.setenv("NAL_STATE_DIR", str(tmp_path_factory.mktemp("nal_state")))


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated demo corpus (16 kHz), shared by every test that trains."""
    from trainer.demo_corpus import ensure_demo_corpus

    return ensure_demo_corpus(tmp_path_factory.mktemp("corpus") / "demo", 16000)


def demo_config_dict(corpus: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """config/demo.yaml pointed at ``corpus`` with some section fields overridden."""
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["data"]["corpus_dir"] = str(corpus)
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return data


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    p = run_dir / "events.jsonl"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def nal_train_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("nal-train")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "trainer"]


def wait_for(pred, timeout: float = 60.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return False


def start_trainer(args: list[str], log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        nal_train_cmd() + args,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def sampled_run(demo_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run made by the trainer (in-process, tiny): 4 steps, a validation every 2
    (2 samples each, with their mel pictures), mel L1 only so it stays quick. Copy it
    (``shutil.copytree``) before changing it."""
    from trainer.config.build import from_dict
    from trainer.train import loop

    cfg = from_dict(demo_config_dict(
        demo_corpus,
        log={"log_every": 1, "val_every": 2, "val_samples": 2, "val_metrics": ["mel_l1"]},
        checkpoint={"every": 2, "keep_last": 3, "milestone_every": 0,
                    "best": {"metric": "mel_l1", "keep": 1, "patience": 0}},
    ), "demo")  # fmt: skip
    run = tmp_path_factory.mktemp("sampled") / "logs" / "demo"
    assert loop.train(cfg, run, "demo.yaml", target_step=4) == 0
    return run
