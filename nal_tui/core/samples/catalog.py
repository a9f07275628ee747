"""Which validations of a run have samples on disk, and what each sample's files are.

The layout is the trainer's (``trainer.rundir.layout``: ``samples/step_XXXXXXXX/<id>_gen.wav``
and ``.logmel``, ``samples/gt/<id>.wav``; the unseen set one level down). The disk, not the
event log, says what is there: earlier validations stay viewable after the log's window of
recent events has moved on, and a deleted directory is simply not listed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nal_tui.core.reducer.views import ValidationView
from nal_tui.core.text import clean
from trainer.events.schema import UNSEEN_SET, VAL_SET
from trainer.rundir.layout import (
    GEN_SUFFIX,
    SAMPLE_STEP_RE,
    SAMPLES_DIR,
    gt_dir,
    sample_dir,
)
from trainer.rundir.melpic import SUFFIX as PIC_SUFFIX

MAX_VALIDATIONS = 10_000  # step directories listed at most (newest kept)
MAX_SAMPLES = 64  # per validation and set
_WAV = ".wav"


@dataclass(frozen=True)
class Sample:
    """One utterance of one validation: its files, relative to the run directory."""

    utt: str  # the utterance id, cleaned for the screen
    set: str  # VAL_SET or UNSEEN_SET
    step: int
    gen_wav: str
    gt_wav: str

    @property
    def gen_pic(self) -> str:
        return _pic(self.gen_wav)

    @property
    def gt_pic(self) -> str:
        return _pic(self.gt_wav)


@dataclass(frozen=True)
class SampleSet:
    """The samples one validation step left on disk (every set), validation set first."""

    step: int
    samples: tuple[Sample, ...]

    def find(self, utt: str, set_name: str) -> Sample | None:
        for s in self.samples:
            if s.utt == utt and s.set == set_name:
                return s
        return None


def _pic(wav: str) -> str:
    return wav[: -len(_WAV)] + PIC_SUFFIX if wav.endswith(_WAV) else wav + PIC_SUFFIX


def _rel(run_dir: Path, p: Path) -> str:
    return str(p.relative_to(run_dir))


def _utterances(d: Path) -> list[str]:
    """Utterance ids with a generated sample (WAV or picture) in ``d``."""
    ids: set[str] = set()
    try:
        with os.scandir(d) as it:
            for e in it:
                name = e.name
                for suffix in (GEN_SUFFIX + _WAV, GEN_SUFFIX + PIC_SUFFIX):
                    if name.endswith(suffix) and not name.startswith("."):
                        ids.add(name[: -len(suffix)])
    except OSError:
        return []
    return sorted(ids)[:MAX_SAMPLES]


def _steps(run_dir: Path) -> list[int]:
    try:
        with os.scandir(samples_root(run_dir)) as it:
            steps = [int(m.group(1)) for e in it if (m := SAMPLE_STEP_RE.match(e.name))]
    except OSError:
        return []
    return sorted(steps)[-MAX_VALIDATIONS:]


def samples_root(run_dir: Path) -> Path:
    """The folder of a run's validation samples (every step's, and the ground truth's)."""
    return Path(run_dir) / SAMPLES_DIR


def sample_set(run_dir: Path, step: int) -> SampleSet:
    """The samples of the validation at ``step`` (the validation set's, then the unseen's)."""
    out = []
    for set_name in (VAL_SET, UNSEEN_SET):
        d = sample_dir(run_dir, step, set_name)
        for utt in _utterances(d):
            gen = d / f"{utt}{GEN_SUFFIX}{_WAV}"
            gt = gt_dir(run_dir, set_name) / f"{utt}{_WAV}"
            out.append(
                Sample(clean(utt, 80), set_name, step, _rel(run_dir, gen), _rel(run_dir, gt))
            )
    return SampleSet(step, tuple(out))


def list_validations(run_dir: Path | None, upto: int | None = None) -> list[SampleSet]:
    """Every validation with samples on disk, oldest first; ``upto``: the live branch's last
    step (samples of abandoned steps beyond it are left out)."""
    if run_dir is None:
        return []
    run_dir = Path(run_dir)
    steps = [s for s in _steps(run_dir) if upto is None or s <= upto]
    sets = (sample_set(run_dir, s) for s in steps)
    return [s for s in sets if s.samples]


def metrics_of(views: Iterable[ValidationView], step: int, set_name: str) -> tuple:
    """The metrics the ``val`` event of (``step``, ``set_name``) reported, newest record
    wins: ((name, value), ...), or () when the log's recent window no longer holds it."""
    found: tuple = ()
    for v in views:
        if v.step == step and v.set == set_name:
            found = v.metrics[0][1] if v.metrics else v.losses
    return found
