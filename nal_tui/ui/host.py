"""What the app's controllers may ask of the app: small protocols over Textual's own API.

Controllers (feeds, control, notices) are plain objects; each is handed the app as one of
these, plus explicit callables for the app's own steps (redraw, open a run).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker


class Toaster(Protocol):
    """Notifications and the bell."""

    def notify(self, message: str, *, title: str = ..., severity: Any = ...,
               timeout: float | None = ..., markup: bool = ...) -> None: ...  # fmt: skip

    def clear_notifications(self) -> None: ...

    def bell(self) -> None: ...


class WorkHost(Protocol):
    """Background work: workers, messages from threads, calls back onto the UI thread."""

    def run_worker(self, work: Any, name: str | None = ..., group: str = ...,
                   description: str = ..., exit_on_error: bool = ..., start: bool = ...,
                   exclusive: bool = ..., thread: bool = ...) -> Worker[Any]: ...  # fmt: skip

    def post_message(self, message: Message) -> bool: ...

    def call_from_thread(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...


class ScreenHost(WorkHost, Protocol):
    """Background work and dialogs."""

    def push_screen(self, screen: Screen[Any], callback: Any = ...) -> Any: ...


def in_thread(host: WorkHost, group: str, fn: Callable[..., Any], *args: Any) -> Worker[Any]:
    """``fn(*args)`` in a thread worker, as ``@work(thread=True, exclusive=True, group=...,
    exit_on_error=False)`` runs a method: starting another in ``group`` cancels the one
    in flight, and an error is reported (``Worker.StateChanged``), not fatal."""
    return host.run_worker(
        partial(fn, *args), name=fn.__name__, group=group, exit_on_error=False,
        exclusive=True, thread=True,
    )  # fmt: skip
