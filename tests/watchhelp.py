"""Helpers for the watcher tests: a real HTTP server on 127.0.0.1 that records Apprise
``json://`` posts (answering a scripted list of status codes first), and the watcher as a
real ``nal-tui watch`` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class PostSink:
    """Records every POST body (parsed JSON) with its arrival time; ``codes`` are answered
    first, in order (e.g. [500, 500, 500]), then 200."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.codes = list(codes or [])
        self.posts: list[dict[str, Any]] = []
        self.attempts = 0
        self.cond = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink.cond:
                    sink.attempts += 1
                    code = sink.codes.pop(0) if sink.codes else 200
                    if code == 200:
                        rec = json.loads(body)
                        rec["_t"] = time.time()
                        sink.posts.append(rec)
                    sink.cond.notify_all()
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"json://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def titles(self) -> list[str]:
        with self.cond:
            return [p.get("title", "") for p in self.posts]

    def wait(self, pred, timeout: float = 120.0) -> bool:
        """Wait until ``pred(posts)`` holds (generous ceiling; returns at once when it does)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.posts):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def nal_tui_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("nal-tui")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nal_tui.cli"]


def start_watch(args: list[str], out: Path, **env: str) -> subprocess.Popen:
    """``nal-tui watch ARGS`` with stdout and stderr into ``out``."""
    return subprocess.Popen(
        nal_tui_cmd() + ["watch", *args],
        stdout=open(out, "ab"),  # noqa: SIM115 - the child holds it
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        cwd=ROOT,
    )


def stop_watch(p: subprocess.Popen) -> int:
    """SIGTERM (a clean stop) and wait; killed if it does not exit."""
    p.terminate()
    try:
        return p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()
