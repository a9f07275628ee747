"""``nal-tui serve``: the dashboard in a browser through textual-serve (the ``[serve]`` extra).

Each browser connection runs its own ``nal-tui`` process on the run (read-only unless
``--allow-control``). Every request must carry the token printed at start: in the URL
(``/?token=…``) the first time, then in a same-site cookie the page's own requests carry
(its script, the websocket); anything else gets 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import shlex
import sys
from pathlib import Path

EXTRA_HINT = "pip install 'naudiolab[serve]'"
COOKIE = "nal_serve_token"
LOOPBACK = "127.0.0.1"


class ServeError(Exception):
    """Unusable serve settings (one line, exit 2)."""


def is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def app_command(run_dir: Path | None, logs_dir: Path, allow_control: bool, polling: bool) -> str:
    """The dashboard's command line, run for each browser connection."""
    cmd = [sys.executable, "-m", "nal_tui.cli", "--logs-dir", str(logs_dir)]
    if run_dir is not None:
        cmd += ["--run-dir", str(run_dir)]
    if not allow_control:
        cmd.append("--read-only")
    if polling:
        cmd.append("--polling")
    return shlex.join(cmd)


def token_ok(given: str | None, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def make_server(command: str, host: str, port: int, token: str, title: str):
    """A textual-serve ``Server`` whose every route asks for ``token``."""
    try:
        from aiohttp import web  # the [serve] extra: only for this command
        from textual_serve.server import Server  # the [serve] extra: only for this command
    except ImportError:
        raise ServeError(f"nal-tui serve needs textual-serve: {EXTRA_HINT}") from None

    @web.middleware
    async def guard(request: web.Request, handler):
        given = request.query.get("token") or request.cookies.get(COOKIE)
        if not token_ok(given, token):
            return web.Response(
                status=403, text="nal-tui serve: open the URL with the token printed at start\n"
            )
        resp = await handler(request)
        if request.query.get("token") and isinstance(resp, web.Response):
            resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return resp

    class TokenServer(Server):
        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(guard)
            return app

    return TokenServer(command, host=host, port=port, title=title)


def new_token() -> str:
    return secrets.token_urlsafe(24)
