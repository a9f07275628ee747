"""``nal-tui serve`` in a real browser: headless Chromium (Debian's ``chromium``) loads the
page, the served dashboard draws the run's step, a screenshot is taken; requests without
the token get 403; a non-loopback address needs --public."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.factory import wait_for, write_run
from tests.servehelp import CHROMIUM, browse
from tests.watchhelp import nal_tui_cmd

pytest.importorskip("textual_serve", reason="needs the [serve] extra (textual-serve)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str, cookie: str | None = None) -> int:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except urllib.error.URLError:  # not listening yet
        return 0


def test_non_local_address_needs_public() -> None:
    r = subprocess.run(nal_tui_cmd() + ["serve", "--host", "0.0.0.0"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "--public" in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"
)
def test_browser_shows_the_run_and_the_token_is_required(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", 1234, target=5000, t0=time.time() - 200)
    port, out = _free_port(), tmp_path / "serve.out"
    p = subprocess.Popen(nal_tui_cmd() + ["serve", "--run-dir", str(run), "--port", str(port)],
                         stdout=open(out, "wb"), stderr=subprocess.STDOUT)  # fmt: skip
    try:
        assert wait_for(lambda: "token=" in out.read_text(), 60), out.read_text()
        token = re.search(r"\?token=(\S+)", out.read_text()).group(1)
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: _status(f"{base}/?token={token}") == 200, 60)
        assert _status(f"{base}/") == 403
        assert _status(f"{base}/?token=wrong") == 403
        assert _status(f"{base}/static/js/textual.js") == 403
        assert _status(f"{base}/ws") == 403
        assert _status(f"{base}/static/js/textual.js", f"nal_serve_token={token}") == 200
        shot = tmp_path / "dashboard.png"
        text = browse(f"{base}/?token={token}", b"step 1,234/5,000", shot, tmp_path / "profile")
        assert b"step 1,234/5,000" in text and b"RUNNING" in text
        assert shot.stat().st_size > 20_000  # the dashboard drawn, not the intro page
        # The served dashboard is read-only (no --allow-control).
        kids = psutil.Process(p.pid).children(recursive=True)
        assert any("--read-only" in k.cmdline() for k in kids if k.is_running()) or (
            "--read-only" in out.read_text()
        )
    finally:
        try:
            served = psutil.Process(p.pid).children(recursive=True)
        except psutil.Error:
            served = []
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        _, alive = psutil.wait_procs(served, timeout=30)
        for k in alive:  # a dashboard the server left behind: ours, started by this test
            k.kill()
