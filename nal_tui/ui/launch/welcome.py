"""The welcome screen's text: no run to show yet, and what a start from here would do."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from nal_tui.core.text import clean


def welcome_text(
    problem: str, config: Path, checks: Text | str, run_dir: Path | None = None
) -> Text:
    """No run to show: why, what a start would do (config, run dir, preflight), the keys."""
    t = Text()
    p = clean(problem)
    # Capitalise a sentence, never a path ("logs/x does not exist").
    first = p.split(" ", 1)[0]
    t.append(f"{p if '/' in first else p[:1].upper() + p[1:]}.", style="bold")
    # The keys first, so they stay in view on a small terminal above a long preflight.
    t.append("\nPress ")
    t.append(" s ", style="bold reverse")
    t.append(" to start training with this config (you confirm first), ")
    t.append(" o ", style="bold reverse")
    t.append(" to open another run, ")
    t.append(" ? ", style="bold reverse")
    t.append(" for every key.\n")
    t.append("\nConfig  ", style="bold")
    t.append(f"{clean(config)}\n")
    if run_dir is not None:
        t.append("Run dir ", style="bold")
        made = "empty: a start puts the run here" if run_dir.is_dir() else "a start creates it"
        t.append(f"{clean(run_dir)} ({made})\n")
    t.append("\nPreflight\n", style="bold")
    t.append_text(checks if isinstance(checks, Text) else Text(str(checks), style="dim"))
    return t
