"""``nal-tui export``: a run's live-branch series, for pandas, spreadsheets or TensorBoard.

The records come through the one parser (``trainer.events.parse``; garbled lines are counted,
never fatal) and the live branch is the dashboard's rule: a ``run_start`` at step S (a resume
from S, or S = 0 for a new branch) drops the records after S. CSV: one row per step, the step
record's fields, then each validation metric as ``<set>.<metric>`` and each validation loss as
``<set>.loss.<name>`` at the step it was measured. TensorBoard: the trainer's own mirror
(``trainer.tools.tbmirror``, the ``[tensorboard]`` extra) replays the live records in a
subprocess, so this process imports neither tensorboard nor numpy.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nal_tui.core.text import clean
from trainer.events import schema as ev
from trainer.events.parse import parse_lines
from trainer.rundir.layout import EVENTS, atomic_write_text

STEP_COLUMNS = (
    "epoch",
    "g",
    "d",
    "stft",
    "adv",
    "fm",
    "lr_g",
    "lr_d",
    "grad_norm_g",
    "grad_norm_d",
    "step_time",
    "samples_per_s",
)
MIRROR_MODULE = "trainer.tools.tbmirror"  # run as `python -m` (see module docstring)


class ExportError(ValueError):
    """An export that cannot be made; the message is one line naming the file."""


@dataclass
class LiveLog:
    records: list[dict[str, Any]]  # step and val records of the live branch, in log order
    garbled: int
    sample: str | None


def live_records(run_dir: Path) -> LiveLog:
    path = run_dir / EVENTS
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        raise ExportError(f"{path}: no event log (is {run_dir} a run directory?)") from None
    except OSError as e:
        raise ExportError(f"{path}: cannot read ({e.strerror or e})") from None
    recs, bad, sample = parse_lines(lines)
    kept: list[dict[str, Any]] = []
    for r in recs:
        kind = r["event"]
        if kind == ev.RunStart.EVENT:
            start = r["start_step"]
            kept = [k for k in kept if k["step"] <= start]
        elif kind in (ev.Step.EVENT, ev.Val.EVENT):
            kept.append(r)
    return LiveLog(kept, bad, sample)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def csv_text(records: list[dict[str, Any]]) -> tuple[str, int]:
    """The CSV text and its number of rows."""
    rows: dict[int, dict[str, Any]] = {}
    val_cols: set[str] = set()
    for r in records:
        row = rows.setdefault(r["step"], {})
        if r["event"] == ev.Step.EVENT:
            row.update({k: r[k] for k in STEP_COLUMNS if _number(r.get(k))})
        else:
            name = clean(r.get("set") or ev.VAL_SET, 40)
            for group, prefix in ((r.get("metrics") or {}, ""), (r.get("losses") or {}, "loss.")):
                for k, v in group.items():
                    if _number(v):
                        col = f"{name}.{prefix}{clean(k, 40)}"
                        row[col] = v
                        val_cols.add(col)
    header = ["step", *STEP_COLUMNS, *sorted(val_cols)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for step in sorted(rows):
        row = rows[step]
        w.writerow([step, *(repr(row[c]) if c in row else "" for c in header[1:])])
    return buf.getvalue(), len(rows)


def write_csv(log: LiveLog, out: Path) -> int:
    text, n = csv_text(log.records)
    try:
        atomic_write_text(out, text)
    except OSError as e:
        raise ExportError(f"{out}: cannot write ({e.strerror or e})") from None
    return n


def write_tensorboard(log: LiveLog, out: Path, timeout: float = 600.0) -> str:
    """Replay the live records into ``out`` with the trainer's mirror; returns its report."""
    with tempfile.TemporaryDirectory(prefix="nal-tui-export-") as d:
        tmp = Path(d) / EVENTS
        tmp.write_text("".join(json.dumps(r) + "\n" for r in log.records))
        proc = subprocess.run(
            [sys.executable, "-m", MIRROR_MODULE, str(tmp), str(out)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        )
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise ExportError(clean(why, 300))
    return clean(proc.stdout.strip(), 300)
