"""Strings from files on their way to a terminal: no control characters, bounded length.

A log line, a manifest, a config path or a PID file can carry escape sequences (which
would move the cursor, retitle the terminal or worse) or megabytes of text. Everything
the dashboard or the CLI shows from a file goes through ``clean``. Durations are written
by ``fmt_duration`` (its one definition is trainer.events.units; the UI's route to it).
"""

from __future__ import annotations

import re

from trainer.events.units import fmt_duration as fmt_duration

MAX_TEXT = 300  # characters of one field (a message, a path, a name)

# ESC sequences (CSI, OSC and two-byte ones), then any other C0/C1 control character;
# newlines and tabs become spaces (a field is shown on one line).
_ESC = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-_]?)")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_WS = re.compile(r"[\t\n]")


def clean(value: object, limit: int = MAX_TEXT, *, multiline: bool = False) -> str:
    """``value`` as printable text: escape sequences and control characters removed,
    capped at ``limit`` characters (an ellipsis marks the cut)."""
    s = value if isinstance(value, str) else str(value)
    if len(s) > 8 * limit:  # never run the regexes over megabytes
        s = s[: 8 * limit]
    s = _ESC.sub("", s)
    s = _CTRL.sub("", s if multiline else _WS.sub(" ", s))
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s


def clean_lines(text: str, max_lines: int = 20, limit: int = MAX_TEXT) -> str:
    """A block of lines (e.g. the end of train.log), each cleaned, at most ``max_lines``."""
    lines = text.splitlines()[-max_lines:]
    return "\n".join(clean(line, limit) for line in lines)
