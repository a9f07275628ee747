"""Several runs loaded for comparison: each run's state through the dashboard's own loader
(so branches and resumes follow the same rule), the configs' differing keys, each run's
best validation score and its step."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nal_tui.core.compare.limits import MAX_RUNS, MIN_RUNS
from nal_tui.core.control.rundir import events_file
from nal_tui.core.feed.follow import LogFollower
from nal_tui.core.feed.loader import load_history
from nal_tui.core.reducer.quality import SeriesStats
from nal_tui.core.reducer.state import RunState
from nal_tui.core.text import clean
from nal_tui.core.vocab import LOSS_KEYS, SERIES_KEYS
from trainer.events.schema import VAL_SET
from trainer.rundir.layout import CONFIG_FILE

MISSING = "—"  # a key one config has and another lacks
# What a compared series is: a validation metric, a loss, or an optimiser figure (learning
# rate, gradient norm); the last two are the dashboard's series (``RunState.track``).
KIND_VAL, KIND_LOSS, KIND_OPT = "val", "loss", "opt"


class CompareError(ValueError):
    """Runs that cannot be compared; the message names the run and why."""


@dataclass
class RunInfo:
    run_dir: Path
    label: str  # the directory's name, made unique among the runs compared
    state: RunState
    config: dict[str, Any]
    config_problem: str = ""  # why the config could not be read ("" when it was)


def check_dirs(dirs: list[Path]) -> list[Path]:
    """2-6 distinct run directories that hold an event log; CompareError otherwise."""
    if not MIN_RUNS <= len(dirs) <= MAX_RUNS:
        raise CompareError(
            f"compare takes {MIN_RUNS} to {MAX_RUNS} run directories, got {len(dirs)}"
        )
    seen: set[Path] = set()
    for d in dirs:
        if not events_file(d).is_file():
            raise CompareError(
                f"{clean(str(d), 200)}: no {events_file(d).name} (not a run directory?)"
            )
        real = d.resolve()
        if real in seen:
            raise CompareError(f"{clean(str(d), 200)}: named twice")
        seen.add(real)
    return dirs


def load_state(run_dir: Path) -> RunState:
    """The run's whole log into a state, as the dashboard loads it (index, then JSONL)."""
    state = RunState()
    follower = LogFollower(events_file(run_dir), lambda recs, stats: None)
    try:
        load_history(follower, state)
    except OSError as e:
        state.note_garbled(1, f"cannot read {events_file(run_dir)}: {e.strerror or e}")
    return state


def read_config(run_dir: Path) -> tuple[dict[str, Any], str]:
    # yaml only once configs are compared: the dashboard, which offers compare, starts without it
    import yaml

    p = run_dir / CONFIG_FILE
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, f"no {CONFIG_FILE}"
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        return {}, clean(f"{CONFIG_FILE} unreadable: {str(e).splitlines()[0]}", 120)
    if not isinstance(data, dict):
        return {}, f"{CONFIG_FILE} is not a mapping"
    return data, ""


def labels(dirs: list[Path]) -> list[str]:
    """Each run's name: its directory, with its parent where two share a name."""
    names = [d.name for d in dirs]
    out = []
    for d, n in zip(dirs, names, strict=True):
        out.append(clean(n if names.count(n) == 1 else f"{d.parent.name}{os.sep}{n}", 40))
    return out


def load_runs(dirs: list[Path]) -> list[RunInfo]:
    dirs = check_dirs([Path(d) for d in dirs])
    out = []
    for d, label in zip(dirs, labels(dirs), strict=True):
        cfg, why = read_config(d)
        out.append(RunInfo(d, label, load_state(d), cfg, why))
    return out


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def config_diff(configs: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(dotted key, value per run) for every key whose values differ, in key order."""
    flats = [_flat(c) for c in configs]
    keys = sorted(set().union(*flats)) if flats else []
    rows = []
    for k in keys:
        vals = [clean(str(f[k]), 40) if k in f else MISSING for f in flats]
        if len(set(vals)) > 1:
            rows.append((clean(k, 60), vals))
    return rows


def compare_series(runs: Sequence[RunInfo]) -> list[tuple[str, str]]:
    """(kind, name) of each series compare offers: every validation metric any run
    reported, then the dashboard's series (``SERIES_KEYS``: losses, learning rates G/D,
    gradient norms G/D)."""
    mets: list[str] = []
    for r in runs:
        mets += [m for m in r.state.validation.history.metrics() if m not in mets]
    return [(KIND_VAL, m) for m in mets] + [
        (KIND_LOSS if k in LOSS_KEYS else KIND_OPT, k) for k in SERIES_KEYS
    ]


def series_points(state: RunState, kind: str, name: str) -> tuple[Sequence[int], Sequence[float]]:
    """A run's points of a compared series: a metric's validations, or the middle of each
    min/max bucket of a dashboard series (``RunState.track``), at the bucket's first step."""
    if kind == KIND_VAL:
        return state.validation.history.points(VAL_SET, name)
    track = state.track(name)
    steps: list[int] = []
    vals: list[float] = []
    if track is None:
        return steps, vals
    for seg in track.series.segments:
        steps += seg.x0
        vals += [(a + b) / 2 for a, b in zip(seg.lo, seg.hi, strict=True)]
    return steps, vals


def best_of(state: RunState, metric: str, set_name: str = VAL_SET) -> SeriesStats:
    """A run's best validation score of ``metric`` and its step (stats of that series)."""
    return state.validation.history.stats(set_name, metric)


def elapsed(state: RunState, steps: Sequence[int]) -> list[float]:
    """Seconds from the run's start (its first event) to when each of ``steps`` was logged
    on the live branch (the state's step clock); [] before any step."""
    ts = state.clock.times(steps)
    if ts is None:
        return []
    t0 = state.first_t if state.first_t is not None else ts[0]
    return [max(0.0, t - t0) for t in ts]
