"""bench/torture.py --short: SIGKILL the real trainer at 6 file-event moments of checkpoint
saves, retention and sample writes; every resume continues from the newest verified
checkpoint of the live branch and no checkpoint is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")
def test_torture_short(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "torture.py"), "--short", "--json"]
        + ["--work", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
    )
    assert out.stdout.strip(), out.stderr[-3000:]
    res = json.loads(out.stdout)
    s = res["summary"]
    assert s["kills"] == 6 and s["missed_moments"] == 0, out.stderr[-3000:]
    assert [k["stage"] for k in res["kills"]] == [
        "ckpt.pt_temp_created",
        "ckpt.manifest_temp_written",
        "ckpt.pt_renamed",
        "ckpt.manifest_renamed",
        "retention.pt_deleted",
        "sample.renamed",
    ]
    assert s["resumes_judged"] == 7  # six kills' resumes and the final one
    assert s["resumes_from_newest_verified"] == s["resumes_judged"], res["kills"]
    assert s["checkpoints_lost"] == 0, s["lost"]
    assert s["final_exit"] == 0 and s["live_view_contiguous"]
    assert out.returncode == 0
