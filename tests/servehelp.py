"""Headless Chromium driven through the DevTools protocol (aiohttp's websocket client, from
the [serve] extra): open a page, collect the websocket frames it receives, take a
screenshot. Used by the ``nal-tui serve`` browser test."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
_ESC = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b.")


def chromium_args(profile: Path) -> list[str]:
    return [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--window-size=1400,900", f"--user-data-dir={profile}",
            "--remote-debugging-port=0", "about:blank"]  # fmt: skip


def _devtools_port(proc: subprocess.Popen, profile: Path, timeout: float) -> int:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text().split()[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port")


async def _visit(port: int, url: str, want: bytes, shot: Path, timeout: float) -> bytes:
    import aiohttp  # the [serve] extra's dependency: only for this helper

    ids = itertools.count(1)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
            page = next(t for t in await r.json() if t["type"] == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:

            async def call(method: str, **params) -> dict:
                i = next(ids)
                await ws.send_str(json.dumps({"id": i, "method": method, "params": params}))
                while True:
                    msg = json.loads((await ws.receive()).data)
                    if msg.get("id") == i:
                        return msg.get("result", {})
                    seen(msg)

            text = bytearray()

            def seen(msg: dict) -> None:
                if msg.get("method") == "Network.webSocketFrameReceived":
                    r = msg["params"]["response"]
                    data = r["payloadData"]
                    text.extend(base64.b64decode(data) if r.get("opcode") == 2 else data.encode())

            await call("Network.enable")
            await call("Page.enable")
            await call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout
            while want not in _ESC.sub(b"", bytes(text)) and time.monotonic() < deadline:
                try:
                    seen(json.loads((await ws.receive(timeout=1.0)).data))
                except asyncio.TimeoutError:
                    pass
            await asyncio.sleep(1.0)  # the frames just received drawn
            png = await call("Page.captureScreenshot", format="png")
            shot.write_bytes(base64.b64decode(png["data"]))
            return _ESC.sub(b"", bytes(text))


def browse(url: str, want: bytes, shot: Path, profile: Path, timeout: float = 120.0) -> bytes:
    """Open ``url`` in headless Chromium until the page's websocket has brought ``want``
    (escape sequences removed) or ``timeout``; screenshot to ``shot``; returns that text."""
    proc = subprocess.Popen(chromium_args(profile), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        port = _devtools_port(proc, profile, 60)
        return asyncio.run(_visit(port, url, want, shot, timeout))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
