"""train.threads: the key, what it resolves to, and the busy-machine warning's text (the
measurement of real processes is in tests/process/test_busy_cpus.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nal_tui.core.reducer.views import SystemView
from nal_tui.preflight.checks_env import check_resources
from nal_tui.preflight.report import PASS, WARN
from nal_tui.ui.run.system import system_text
from tests.conftest import DEMO_CONFIG
from trainer.config import threads as th
from trainer.config.build import from_dict
from trainer.config.schema import ConfigError
from trainer.config.yamlfile import load

HOG = th.BusyProcess(4242, "python train_other.py", 187.0)


def test_threads_key_defaults_to_auto_and_rejects_a_negative_count():
    assert load(DEMO_CONFIG).train.threads == 0
    assert from_dict({"train": {"threads": 3}}).train.threads == 3
    with pytest.raises(ConfigError, match="train.threads"):
        from_dict({"train": {"threads": -1}}, "c.yaml")


def test_resolve_threads_one_per_physical_core_shared_among_ranks(monkeypatch):
    monkeypatch.setattr(th, "physical_cores", lambda: 16)
    assert th.resolve_threads(0) == 16
    assert th.resolve_threads(0, local_ranks=4) == 4
    assert th.resolve_threads(0, local_ranks=32) == 1
    assert th.resolve_threads(5, local_ranks=4) == 5  # a setting is taken as it is


def test_physical_cores_follow_the_affinity(monkeypatch):
    monkeypatch.setattr(th.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(th.psutil, "cpu_count", lambda logical=True: 8)
    monkeypatch.setattr(th, "usable_cpus", lambda: 4)  # taskset -c 0-3
    assert th.physical_cores() == 2


def test_busy_warning_names_the_process_and_what_is_left():
    assert th.busy_warning([], 2, 2) is None
    msg = th.busy_warning([HOG], 4, 4)
    assert "python train_other.py (pid 4242, 187% CPU)" in msg
    assert "keep 1.9 of 4 CPUs busy" in msg and "--threads 2" in msg


def test_preflight_warns_naming_the_busy_process(tmp_path: Path):
    cfg = load(DEMO_CONFIG)
    big = 1 << 40
    kw = dict(disk_free=big, mem_available=big, mem_total=big, gpu=None)
    quiet = check_resources(cfg, tmp_path, busy=[], **kw)
    assert quiet.status == PASS
    busy = check_resources(cfg, tmp_path, busy=[HOG], **kw)
    assert busy.status == WARN and "pid 4242" in busy.message and "--threads" in busy.fix
    assert any(d.startswith("threads: ") for d in busy.details)


def test_system_panel_shows_threads_and_the_busiest_other_process():
    base = dict(cpu_pct=50.0, mem_used=1, mem_total=2, disk_free=1, disk_total=2)
    assert "Thr" not in system_text(SystemView(**base)).plain
    hostile = th.BusyProcess(7, "evil\x1b[31m name", 99.0)
    text = system_text(SystemView(**base, threads=8, busy=(HOG, hostile))).plain
    assert "Thr  8 per process (auto)" in text
    assert "Busy python train_other.py (pid 4242) 187% +1" in text
    text = system_text(SystemView(**base, threads=2, threads_auto=False, busy=(hostile,))).plain
    assert "Thr  2 per process\n" in text and "\x1b" not in text and "evil" in text
