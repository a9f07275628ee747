"""What one notification says: a ``Notice`` built from the run's ``RunState``.

Everything in it comes from the reducer (already cleaned of control characters) or from
the watcher's own words; ``payload`` is the JSON object a hook receives on stdin
(docs/events.md, "nal-tui watch").
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nal_tui.core.reducer.state import RunState
from nal_tui.core.text import clean
from nal_tui.core.vocab import (
    LEVEL_INFO,
    LEVELS,
    STATUS_COMPLETED,
    STATUS_CRASHED,
    STATUS_STOPPED,
)
from trainer.events import schema as ev

# Notices of the run's life that are not reducer alerts (the watcher's own kinds).
KIND_RUN_START = "run_start"
KIND_RUN_END = "run_end"
KIND_NEW_BEST = "new_best"
KIND_SUMMARY = "summary"  # the action of an "and N more" whose run is no longer failing
LIFECYCLE_KINDS = (KIND_RUN_START, KIND_RUN_END, KIND_NEW_BEST)

PAYLOAD_VERSION = 1


def level_rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 1


def _arg(path: Path) -> str:
    return shlex.quote(clean(str(path), 200))


def action_for(kind: str, run_dir: Path, status: str) -> str:
    """What a person should do next, as a command line (may be empty)."""
    rd = _arg(run_dir)
    if kind in (ev.ALERT_NONFINITE, ev.ALERT_CRASHED, ev.ALERT_RUN_FAILED) or (
        kind == KIND_RUN_END and status not in (STATUS_COMPLETED, STATUS_STOPPED)
    ):
        return f"look at {rd}/train.log, then: nal-tui resume --run-dir {rd}"
    if kind == ev.ALERT_STALLED:
        return f"nal-tui status --run-dir {rd} (stop it: nal-tui stop --run-dir {rd})"
    if kind in (ev.ALERT_D_COLLAPSE, ev.ALERT_IMBALANCE):
        return (
            f"check the losses (nal-tui --run-dir {rd}); to go back: "
            f"nal-tui resume --run-dir {rd} --checkpoint PATH"
        )
    if kind == ev.ALERT_OVERTRAINING or kind == KIND_NEW_BEST:
        return f"nal-train vocode --run-dir {rd} --checkpoint best CLIPS --out OUT"
    if kind == KIND_RUN_END and status == STATUS_STOPPED:
        return f"nal-tui resume --run-dir {rd}"
    if kind == ev.ALERT_RECOVERY:
        return f"nothing: the run goes on (watch it: nal-tui --run-dir {rd})"
    return f"nal-tui --run-dir {rd}"


@dataclass(frozen=True)
class Notice:
    """One thing to tell: ``key`` identifies it across restarts (never sent twice)."""

    key: str
    run_dir: Path
    kind: str
    level: str
    step: int | None
    message: str
    t: float
    source: str = "watch"
    end_status: str | None = None
    exit_code: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def step_span(first: int | None, last: int) -> str:
    """``step 9`` or ``steps 9–11``."""
    if first is None or first >= last:
        return f"step {last:,}"
    return f"steps {first:,}–{last:,}"


def run_since(state: RunState, t: float | None) -> tuple[str, str | None]:
    """What became of the run after time ``t`` (the latest alert a summary counts), and
    the kind whose advice now applies: None while it is still failing (running on, or
    crashed), so the alert's own advice (resume) stands."""
    st, rec = state.status, state.recovery
    ended = st in (STATUS_COMPLETED, STATUS_STOPPED)
    if rec is not None and (t is None or rec[ev.K_TIME] >= t):
        words = f"the run recovered at step {rec['step']:,}"
        if st == STATUS_CRASHED:
            return f"{words}, then crashed", None
        if ended:
            return f"{words} and {st}", KIND_SUMMARY
        return f"{words} and is {st}", ev.ALERT_RECOVERY
    if ended:
        return f"the run has since {st}", KIND_SUMMARY
    if st == STATUS_CRASHED:
        return "the run has since crashed", None
    return "", None


def settle(n: Notice, state: RunState) -> Notice:
    """A summary ("N more") as it stands when it is sent, maybe long after its alerts:
    what became of the run since (recovered, ended); a run that is no longer failing
    makes it information, with advice that fits (no resume for a recovered run)."""
    summary = n.extra.get("summary")
    if not isinstance(summary, dict):
        return n
    t = summary.get("latest_t")
    words, action_kind = run_since(state, t if isinstance(t, (int, float)) else None)
    if not words:
        return n
    extra = {**n.extra, "summary": {**summary, "outcome": words, "action_kind": action_kind}}
    level = LEVEL_INFO if action_kind is not None else n.level
    return replace(n, level=level, message=f"{n.message}; {words}", extra=extra)


def best_of(state: RunState) -> tuple[str, float, int] | None:
    """(metric, score, step) of the live branch's best checkpoint, from its events."""
    best = state.checkpoints.best_steps
    found = None
    for rec in state.checkpoints.events:
        if rec.get("step") in best and isinstance(rec.get("score"), (int, float)):
            found = (clean(rec.get("metric") or "score", 20), float(rec["score"]), rec["step"])
            if rec.get("best_steps") and rec["best_steps"][0] == rec["step"]:
                break
    return found


def describe(n: Notice, state: RunState, suppressed: int = 0) -> tuple[str, str, dict]:
    """(title, body, payload) for ``n``: what a person needs on a phone."""
    run = state.run_name or clean(n.run_dir.name, 80)
    step = "" if n.step is None else f"step {n.step:,}"
    if step and state.target_step:
        step += f"/{state.target_step:,}"
    what = {KIND_RUN_START: "run started", KIND_RUN_END: "run ended",
            KIND_NEW_BEST: "new best checkpoint"}.get(n.kind, n.kind.replace("_", " "))  # fmt: skip
    summary = n.extra.get("summary") if isinstance(n.extra.get("summary"), dict) else None
    if summary:  # "N more" after a dedup window: the count and the steps it spans
        what = f"{suppressed or summary['count']} more {what} alerts"
        if n.step is not None:
            what += f" at {step_span(summary.get('first_step'), n.step)}"
    title = f"[nal {n.level}] {run}: {what}" + (f" at {step}" if step and not summary else "")
    losses = {k: tr.current for k, tr in state.losses.items() if tr.current is not None}
    best = best_of(state)
    action_kind = (summary or {}).get("action_kind") or n.kind
    action = action_for(action_kind, n.run_dir, n.end_status or state.status)
    if summary and state.step is not None:  # sent later: where the run is now
        step = f"now at step {state.step:,}" + (
            f"/{state.target_step:,}" if state.target_step else ""
        )
    lines = [f"run {run} ({clean(str(n.run_dir), 200)}), {step or 'no steps yet'}",
             f"status: {state.status}", n.message]  # fmt: skip
    if suppressed and not summary:
        lines.append(f"and {suppressed} more {n.kind} alert(s) in this window")
    if losses:
        lines.append("last losses: " + ", ".join(f"{k} {v:.4g}" for k, v in losses.items()))
    if best:
        lines.append(f"best: {best[0]} {best[1]:.4g} at step {best[2]:,}")
    if action:
        lines.append(f"what to do: {action}")
    payload = {
        "version": PAYLOAD_VERSION,
        "run": run,
        "run_dir": str(n.run_dir),
        "kind": n.kind,
        "level": n.level,
        "step": n.step,
        "target_step": state.target_step,
        "message": n.message,
        "time": n.t,
        "source": n.source,
        "status": state.status,
        "losses": losses,
        "best": None if best is None else {"metric": best[0], "score": best[1], "step": best[2]},
        "action": action,
        "suppressed": suppressed,
        **({"end_status": n.end_status, "exit_code": n.exit_code} if n.end_status else {}),
        **n.extra,
    }
    return title, "\n".join(lines), payload
