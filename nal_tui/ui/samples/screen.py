"""The samples view: one validation sample's spectrogram, generated above ground truth.

Modes: generated / truth, the difference (generated minus truth, dB), and A/B (the same
utterance at two validation steps, or from two runs in ``compare``). ``←``/``→`` walk the
validations on disk, ``↑``/``↓`` the utterances; ``p`` plays, ``c`` copies the WAV path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from nal_tui.core.reducer.views import ValidationView
from nal_tui.core.samples.catalog import Sample, SampleSet, metrics_of, samples_root
from nal_tui.core.samples.colormap import NAMES as CMAPS
from nal_tui.core.samples.pictures import PictureCache
from nal_tui.core.samples.player import Playback, find_player
from nal_tui.core.samples.raster import DIFF_RANGE_DB, db_grid, difference
from nal_tui.core.text import clean
from nal_tui.ui.samples.spectro import Spectrogram, scale_bar
from nal_tui.ui.widgets.fmt import fmt_value

MODES = ("gen", "diff", "ab")
KEYS_WIDE = ("←/→ step  ↑/↓ utterance  d diff  a A/B  b set B  p play  t truth  c copy  "
             "m colours  Esc back")  # fmt: skip
KEYS_NARROW = "←→ step ↑↓ utt d diff a A/B b set B p play t truth c copy Esc"


@dataclass(frozen=True)
class Source:
    """Where a run's validations come from: its directory, its label, its validations."""

    run_dir: Path
    label: str
    sets: tuple[SampleSet, ...]
    views: tuple[ValidationView, ...] = ()


class SamplesScreen(Screen[None]):
    """``sources``: one run (the dashboard) or several (``compare``: A/B across runs)."""

    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("v", "close", "Back", show=False),
        Binding("q", "close", "Back", show=False),
        Binding("left", "walk(-1)", "Older", key_display="←"),
        Binding("right", "walk(1)", "Newer", key_display="→"),
        Binding("up", "utt(-1)", "Prev utt", key_display="↑", show=False),
        Binding("down", "utt(1)", "Next utt", key_display="↓", show=False),
        Binding("d", "mode('diff')", "Diff"),
        Binding("a", "mode('ab')", "A/B"),
        Binding("b", "set_b", "Set B"),
        Binding("p", "play", "Play"),
        Binding("t", "play_truth", "Play truth"),
        Binding("c", "copy", "Copy path"),
        Binding("m", "cmap", "Colours", show=False),
    ]

    def __init__(self, sources: Sequence[Source], step: int | None = None) -> None:
        super().__init__()
        self.sources = list(sources)
        self.run = 0  # which source A shows
        # A's position: the validation (index into its source's sets) and the utterance.
        sets = self.sources[0].sets if self.sources else ()
        steps = [s.step for s in sets]
        self.index = steps.index(step) if step in steps else len(sets) - 1
        self.utt = 0
        self.mode = "gen"
        # B of the A/B view: (source index, validation index); default the other run in a
        # comparison, else the first validation on disk.
        self.b = (1, len(self.sources[1].sets) - 1) if len(self.sources) > 1 else (0, 0)
        self.cmap = CMAPS[0]
        self.pictures = PictureCache()
        self.player, self.no_player = find_player()
        self.playback = Playback(self.player, self._played) if self.player else None
        self.message = ""
        self._scale_args: tuple[str, float | None, float | None] | None = None

    # ---- layout

    def compose(self) -> ComposeResult:
        yield Static(id="samples-head")
        yield Spectrogram(id="spec-top")
        yield Static(id="samples-mid")
        yield Spectrogram(id="spec-bottom")
        yield Static(id="samples-scale")
        yield Static(id="samples-info")
        yield Static(id="samples-keys")

    def on_mount(self) -> None:
        self.draw()

    def on_unmount(self) -> None:
        if self.playback is not None:
            self.playback.stop()

    # ---- what is selected

    @property
    def sets(self) -> tuple[SampleSet, ...]:
        return self.sources[self.run].sets if self.sources else ()

    def current(self) -> Sample | None:
        if not self.sets:
            return None
        s = self.sets[max(0, min(self.index, len(self.sets) - 1))].samples
        return s[self.utt % len(s)] if s else None

    def other(self) -> Sample | None:
        """B: the same utterance (and set) at the B validation."""
        a = self.current()
        src, i = self.b
        if a is None or not 0 <= src < len(self.sources):
            return None
        sets = self.sources[src].sets
        return sets[i].find(a.utt, a.set) if 0 <= i < len(sets) else None

    def _pic(self, src: int, rel: str):
        return self.pictures.get(self.sources[src].run_dir / rel, rel)

    # ---- drawing

    def draw(self) -> None:
        head = self.query_one("#samples-head", Static)
        top = self.query_one("#spec-top", Spectrogram)
        bottom = self.query_one("#spec-bottom", Spectrogram)
        a = self.current()
        if a is None:
            for w in (top, bottom):
                w.show(lambda c, r: "", self.cmap)
            head.update(Text(self._none_on_disk(), style="bold"))
            self._keys()
            return
        src = self.sources[self.run]
        n = len(src.sets[self.index].samples)
        label = f" · {src.label}" if len(self.sources) > 1 else ""
        head.update(Text.assemble(
            ("samples", "bold"), label,
            f" · step {a.step:,} ({self.index + 1}/{len(self.sets)})",
            f" · {a.utt} ({a.set} {self.utt % n + 1}/{n})",
            (" · ▲ A" if self.mode == "ab" else " · ▲ generated", "bold"),
        ))  # fmt: skip
        gen, truth = self._pic(self.run, a.gen_pic), self._pic(self.run, a.gt_pic)
        mid = self.query_one("#samples-mid", Static)
        if self.mode == "ab":
            b = self.other()
            bsrc = self.sources[self.b[0]] if self.b[0] < len(self.sources) else src
            bgen = self._pic(self.b[0], b.gen_pic) if b is not None else "not at the B step"
            lo, hi = _shared(gen, bgen)
            top.show(_grid_of(gen), self.cmap, lo, hi)
            bottom.show(_grid_of(bgen), self.cmap, lo, hi)
            where = f"{bsrc.label} · " if len(self.sources) > 1 else ""
            mid.update(Text(f"▼ B: {where}step {b.step:,}" if b else "▼ B: no such sample", "bold"))
            self._scale(self.cmap, lo, hi)
        elif self.mode == "diff":
            lo, hi = _shared(gen, truth)
            top.show(_grid_of(gen), self.cmap, lo, hi)
            bottom.show(_diff_of(gen, truth), "diverging")
            mid.update(Text("▼ generated − truth (dB; red louder, blue quieter)", style="bold"))
            self._scale("diverging", -DIFF_RANGE_DB, DIFF_RANGE_DB)
        else:
            lo, hi = _shared(gen, truth)
            top.show(_grid_of(gen), self.cmap, lo, hi)
            bottom.show(_grid_of(truth), self.cmap, lo, hi)
            mid.update(Text("▼ ground truth", style="bold"))
            self._scale(self.cmap, lo, hi)
        self._info(a)
        self._keys()

    def _none_on_disk(self) -> str:
        """Why there is nothing to show: no validation yet, or the log names samples (in its
        recent window) that are not on disk (samples/ moved, deleted, or not copied along)."""
        src = self.sources[self.run] if self.sources else None
        logged = sorted({v.step for v in src.views if v.samples}) if src else []
        info = self.query_one("#samples-info", Static)
        if not logged:
            info.update(Text("They appear after the first validation (log.val_every, "
                             "log.val_samples).", style="dim"))  # fmt: skip
            return "samples · no validation samples on disk yet"
        where = clean(str(samples_root(src.run_dir)), 200)
        info.update(Text(f"The log names the samples of {len(logged)} validation(s) "
                         f"(steps {logged[0]:,} to {logged[-1]:,}); {where} holds none of "
                         "them: moved, deleted, or not copied with the run?", style="yellow"))  # fmt: skip
        return f"samples · step {logged[-1]:,}'s samples are not on disk"

    def _scale(self, cmap: str, lo: float | None, hi: float | None) -> None:
        self._scale_args = (cmap, lo, hi)
        w = max(20, min(self.size.width - 2, 60))
        bar = scale_bar(cmap, lo if lo is not None else -80, hi if hi is not None else 0, w)
        self.query_one("#samples-scale", Static).update(bar)

    def _info(self, a: Sample) -> None:
        src = self.sources[self.run]
        mets = metrics_of(src.views, a.step, a.set)
        t = Text()
        if self.message:  # first: a long metrics line may wrap and push the last line out
            t.append(self.message + "\n", style="yellow")
        t.append(f"{a.set} set metrics: ", style="bold")
        t.append("  ".join(f"{k} {fmt_value(v)}" for k, v in mets) or "(not in the log's window)")
        b = self.other() if self.mode == "ab" else None
        rows = [("gen  ", a.gen_wav), ("true ", a.gt_wav)]
        if self.mode == "ab":
            bsrc = self.sources[self.b[0]] if len(self.sources) > 1 and b else None
            bpath = (f"{bsrc.label}: " if bsrc else "") + b.gen_wav if b else "-"
            rows = [("A    ", a.gen_wav), ("B    ", bpath)]
        for name, path in rows:
            t.append("\n" + name, style="bold")
            t.append(clean(path, 200), style="cyan")
        self.query_one("#samples-info", Static).update(t)

    def _keys(self) -> None:
        keys = KEYS_WIDE if self.size.width >= len(KEYS_WIDE) else KEYS_NARROW
        self.query_one("#samples-keys", Static).update(Text(keys, style="dim"))

    def on_resize(self) -> None:
        # The spectrograms redraw at their new size themselves; the texts that depend on
        # the width are redone here.
        if self.is_mounted and self._scale_args is not None:
            self._scale(*self._scale_args)
            self._keys()

    # ---- keys

    def action_close(self) -> None:
        self.dismiss(None)

    def action_walk(self, delta: int) -> None:
        if self.sets:
            self.index = max(0, min(len(self.sets) - 1, self.index + delta))
            self.draw()

    def action_utt(self, delta: int) -> None:
        self.utt += delta
        self.draw()

    def action_mode(self, mode: str) -> None:
        self.mode = "gen" if self.mode == mode else mode
        self.draw()

    def action_set_b(self) -> None:
        self.b = (self.run, self.index)
        self.message = f"B is now step {self.sets[self.index].step:,}" if self.sets else ""
        self.draw()

    def action_cmap(self) -> None:
        self.cmap = CMAPS[(CMAPS.index(self.cmap) + 1) % len(CMAPS)]
        self.draw()

    def _paths(self, truth: bool = False) -> list[Path]:
        a = self.current()
        if a is None:
            return []
        # Absolute: a copied path must name the file from another directory or host too.
        src = self.sources[self.run].run_dir.absolute()
        if truth:
            return [src / a.gt_wav]
        out = [src / a.gen_wav]
        b = self.other() if self.mode == "ab" else None
        if b is not None:
            out.append(self.sources[self.b[0]].run_dir.absolute() / b.gen_wav)
        return out

    def action_play(self, truth: bool = False) -> None:
        paths = self._paths(truth)
        if not paths:
            return
        if self.playback is None:
            self._say(f"{self.no_player}; c copies the path")
            return
        self.playback.play([str(p) for p in paths])
        self._say(f"playing {', '.join(clean(p.name, 80) for p in paths)} with {self.player.name}")

    def action_play_truth(self) -> None:
        self.action_play(truth=True)

    def action_copy(self) -> None:
        paths = self._paths()
        if paths:
            text = " ".join(str(p) for p in paths)
            self.app.copy_to_clipboard(text)
            self._say(f"copied {clean(text, 200)} (OSC 52)")

    def _say(self, msg: str) -> None:
        self.message = msg
        self.draw()

    def _played(self, msg: str) -> None:
        # From the playback thread.
        self.app.call_from_thread(self._say, msg)


def _shared(a, b) -> tuple[float | None, float | None]:
    """One dB scale for two pictures (so the same colour means the same level in both)."""
    pics = [p for p in (a, b) if not isinstance(p, str)]
    if not pics:
        return None, None
    hi = max(p.db_max for p in pics)
    return hi - 80.0, hi


def _grid_of(pic):
    if isinstance(pic, str):
        return lambda c, r: pic
    return lambda c, r: db_grid(pic, c, r)


def _diff_of(gen, truth):
    if isinstance(gen, str) or isinstance(truth, str):
        why = gen if isinstance(gen, str) else truth
        return lambda c, r: why
    return lambda c, r: difference(db_grid(gen, c, r), db_grid(truth, c, r))
