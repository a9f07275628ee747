"""Where notices go: notifiers with one contract, ``send(title, body, level)``.

A notifier raises ``SendError`` when a delivery failed (the sender retries it).
``AppriseNotifier`` wraps one Apprise URL (the ``[notify]`` extra); a URL is secret
(tokens, passwords) and is shown only masked (``mask_url``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from nal_tui.core.vocab import LEVEL_ERROR, LEVEL_WARNING

ENV_URLS = "NAL_NOTIFY_URLS"  # whitespace- or comma-separated Apprise URLs
EXTRA_HINT = "pip install 'naudiolab[notify]'"
MAX_URL_FILE = 64 << 10


class SendError(Exception):
    """A delivery failed (worth a retry)."""


class NotifyConfigError(Exception):
    """Unusable notification settings (exit 2 with this one line)."""


def mask_url(url: str) -> str:
    """``scheme://…#hash``: enough to tell URLs apart, nothing of their secrets."""
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]{0,20})://", url)
    digest = hashlib.sha256(url.encode("utf-8", "replace")).hexdigest()[:6]
    return f"{scheme.group(1) if scheme else '?'}://…#{digest}"


def read_url_file(path: Path) -> list[str]:
    """Apprise URLs from a file: one per line, blank lines and ``#`` comments ignored."""
    try:
        if path.stat().st_size > MAX_URL_FILE:
            raise NotifyConfigError(f"notify file {path} is larger than {MAX_URL_FILE} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else "not UTF-8 text"
        raise NotifyConfigError(f"cannot read notify file {path}: {why}") from None
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def gather_urls(cli: list[str], files: list[Path], env: dict[str, str] | None = None) -> list[str]:
    """The URLs from ``--notify``, ``--notify-file`` and ``$NAL_NOTIFY_URLS``, deduplicated."""
    env = os.environ if env is None else env
    urls = list(cli)
    for f in files:
        urls += read_url_file(f)
    urls += [u for u in re.split(r"[\s,]+", env.get(ENV_URLS, "")) if u]
    return list(dict.fromkeys(urls))


class Notifier:
    """Delivers one notice somewhere; ``name`` is safe to print."""

    name = "notifier"

    def send(self, title: str, body: str, level: str) -> None:
        raise NotImplementedError


class AppriseNotifier(Notifier):
    """One Apprise URL (Slack, Discord, ntfy, email, ``json://`` webhooks, ...)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        try:
            import apprise  # the [notify] extra: only when a URL is given
        except ImportError:
            raise NotifyConfigError(f"--notify needs the apprise package: {EXTRA_HINT}") from None
        # Apprise logs failures with the URL's parts: keep its logger quiet (we report
        # failures ourselves, masked).
        logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)
        self._apprise = apprise
        self.name = mask_url(url)
        self._obj = apprise.Apprise()
        if not self._obj.add(url):
            raise NotifyConfigError(f"notify URL {self.name} is not one Apprise can use")
        for server in self._obj:
            for attr in ("socket_read_timeout", "socket_connect_timeout"):
                if hasattr(server, attr):
                    setattr(server, attr, timeout_s)

    def send(self, title: str, body: str, level: str) -> None:
        t = self._apprise.NotifyType
        kind = {LEVEL_ERROR: t.FAILURE, LEVEL_WARNING: t.WARNING}.get(level, t.INFO)
        if not self._obj.notify(title=title, body=body, notify_type=kind):
            raise SendError(f"{self.name}: delivery failed")
