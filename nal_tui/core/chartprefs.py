"""The chart settings a user chose for a run (log scale, smoothing weight), remembered.

One small JSON file in the per-user state directory (``NAL_STATE_DIR``, else platformdirs'
``user_state_dir("naudiolab")``), keyed by the resolved run directory; never in the run
directory itself (it may be read-only or shared). Written atomically; a file that cannot
be read is ignored with a one-line message (the defaults apply), never a crash.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from nal_tui.core.reducer.chartview import SMOOTH_WEIGHTS
from nal_tui.core.text import clean
from trainer.rundir.layout import atomic_write_text

STATE_DIR_ENV = "NAL_STATE_DIR"
PREFS_FILE = "chart_prefs.json"
PREFS_VERSION = 1
MAX_RUNS = 500  # the oldest remembered runs are forgotten past this
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class ChartPrefs:
    log: bool = False
    weight: float = 0.0  # smoothing off until the user turns it on


def state_dir() -> Path:
    """Where nal-tui keeps per-user state (``NAL_STATE_DIR`` overrides it)."""
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return Path(env)
    # platformdirs comes with textual (a core dependency); read only when prefs are.
    from platformdirs import user_state_path

    return user_state_path("naudiolab")


def prefs_path() -> Path:
    return state_dir() / PREFS_FILE


def _key(run_dir: Path) -> str:
    return str(Path(run_dir).resolve())


def _read(path: Path) -> dict:
    """The runs table of the file; {} when there is none. Raises ValueError when it is
    unreadable (the caller says so once and carries on with defaults)."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(str(e)) from None
    if not isinstance(data, dict) or data.get("version") != PREFS_VERSION:
        raise ValueError(f"not a version {PREFS_VERSION} chart settings file")
    runs = data.get("runs")
    if not isinstance(runs, dict):
        raise ValueError("'runs' is not a table")
    return runs


def _prefs(entry: object) -> ChartPrefs:
    if not isinstance(entry, dict):
        return ChartPrefs()
    log, w = entry.get("log"), entry.get("weight")
    return ChartPrefs(
        log=log if isinstance(log, bool) else False,
        weight=float(w) if isinstance(w, (int, float)) and w in SMOOTH_WEIGHTS else 0.0,
    )


def load_prefs(run_dir: Path | None) -> tuple[ChartPrefs, str | None]:
    """The settings remembered for ``run_dir`` (defaults when none) and a one-line message
    when the file could not be read."""
    if run_dir is None:
        return ChartPrefs(), None
    path = prefs_path()
    try:
        runs = _read(path)
    except ValueError as e:
        return ChartPrefs(), f"chart settings {clean(str(path), 200)} ignored: {clean(str(e), 200)}"
    return _prefs(runs.get(_key(run_dir))), None


def save_prefs(run_dir: Path | None, prefs: ChartPrefs) -> str | None:
    """Remember ``prefs`` for ``run_dir`` (atomically); a one-line message when it cannot
    be written. An unreadable file is replaced (its other runs are lost, not the run's)."""
    if run_dir is None:
        return None
    path = prefs_path()
    try:
        runs = _read(path)
    except ValueError:
        runs = {}
    key = _key(run_dir)
    runs.pop(key, None)
    runs[key] = {"log": prefs.log, "weight": prefs.weight}
    while len(runs) > MAX_RUNS:
        runs.pop(next(iter(runs)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"version": PREFS_VERSION, "runs": runs}, indent=1))
    except OSError as e:
        return f"chart settings not saved to {clean(str(path), 200)}: {e.strerror or e}"
    return None
