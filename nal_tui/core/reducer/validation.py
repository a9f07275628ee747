"""Validation records as the validation panel shows them, newest of each set side by side."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from nal_tui.core.feed.blocks import as_float
from nal_tui.core.reducer.quality import QualityHistory
from nal_tui.core.reducer.views import ValidationView
from nal_tui.core.text import clean
from trainer.events import schema as ev

# What each validation figure is, as the panel names it: a metric (trainer.events METRIC_*)
# or, for any other key of a val event's losses, the reconstruction loss the config trains
# with (loss.recon: mrstft, mel, pwg), so "mstft" the metric and "mrstft" the loss differ.
METRIC_LABELS = {
    ev.METRIC_MEL_L1: "mel L1 distance",
    ev.METRIC_MSTFT: "M-STFT distance",
    ev.METRIC_PESQ: "PESQ (wideband)",
    ev.METRIC_STOI: "STOI",
    ev.METRIC_COMPOSITE: "composite score",
}
LOWER, HIGHER = "↓", "↑"  # which way is better
KEEP_EVENTS = 64  # recent validation events kept
MAX_METRICS = 32  # per validation set; a hostile record cannot grow the panel without end


def value_label(key: str, is_loss: bool = False) -> tuple[str, str]:
    """(label, LOWER or HIGHER) of a validation figure: a known metric's name, "recon loss
    (<name>)" for a loss that is not a metric, else the key itself (an unknown metric)."""
    if key in METRIC_LABELS:
        better_up = ev.METRIC_HIGHER_IS_BETTER.get(key, False)
        return METRIC_LABELS[key], HIGHER if better_up else LOWER
    if is_loss:
        return f"recon loss ({key})", LOWER
    return key, ""


def validation_view(rec: dict[str, Any]) -> ValidationView:
    """A ``val`` record as the validation panel shows it (strings cleaned, sizes capped).

    Every numeric metric is kept, known or not (non-finite ones as NaN/inf, null as NaN).
    """
    losses = tuple(
        (clean(k, 40), as_float(v)) for k, v in list(rec["losses"].items())[:MAX_METRICS]
    )
    metrics = rec.get("metrics") or {}
    group = clean(rec.get("set") or "val", 20) or "val"
    mets = tuple((clean(k, 40), as_float(v)) for k, v in list(metrics.items())[:MAX_METRICS])
    samples = tuple(clean(s, 200) for s in rec["samples"][:64])
    return ValidationView(
        rec["step"],
        float(rec.get("duration", 0.0)),
        losses,
        ((group, mets),) if mets else (),
        samples,
        group,
    )


def merge_sets(views: Sequence[ValidationView]) -> ValidationView | None:
    """The newest validation of each set, side by side ("val" first, then by name)."""
    if not views:
        return None
    newest: dict[str, ValidationView] = {}
    for v in views:
        newest[v.set] = v
    step = max(v.step for v in newest.values())
    order = sorted(newest, key=lambda k: (k != "val", k))
    main = newest.get("val") or views[-1]
    groups = []
    for name in order:
        v = newest[name]
        label = name if v.step == step else f"{name} @{v.step:,}"
        groups.append((label, v.metrics[0][1] if v.metrics else v.losses))
    return ValidationView(
        step,
        sum(v.duration for v in newest.values() if v.step == step),
        main.losses,
        tuple(groups) if any(v.metrics for v in newest.values()) else (),
        main.samples,
        main.set,
    )


class ValidationLog:
    """The recent validations (views), in log order."""

    def __init__(self) -> None:
        self.views: deque[ValidationView] = deque(maxlen=KEEP_EVENTS)
        self.history = QualityHistory()
        """Every metric of every validation, as series (the validation chart)."""

    def add(self, rec: dict[str, Any]) -> None:
        self.views.append(validation_view(rec))
        self.history.add(rec)

    def truncate(self, after: int) -> None:
        """Forget the validations after step ``after`` (an abandoned branch)."""
        kept = [v for v in self.views if v.step <= after]
        self.history.truncate(after)
        self.views.clear()
        self.views.extend(kept)

    def latest(self) -> ValidationView | None:
        """The newest validation of each set (val, unseen, ...) side by side."""
        return merge_sets(list(self.views)[-16:]) if self.views else None
