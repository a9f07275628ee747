"""``log.tensorboard: true``: the trainer mirrors its event log into <run>/tensorboard/ with
the tensorboard package's own writer; read back with tensorboard's own reader, the mirror
holds the JSONL's values. A mirror that fails is an alert, never a stopped run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import demo_config_dict, read_events
from trainer.config.build import from_dict
from trainer.events import schema as ev
from trainer.tools import tbmirror
from trainer.train import loop

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)


def _cfg(corpus: Path, **log):
    sections = {
        "log": {
            "log_every": 1,
            "val_every": 2,
            "val_samples": 1,
            "val_metrics": ["mel_l1", "mstft"],
            "tensorboard": True,
            **log,
        },
        "checkpoint": {"every": 1000, "keep_last": 3, "milestone_every": 0, "best": None},
    }
    return from_dict(demo_config_dict(corpus, **sections), "test")


def _read(run: Path) -> EventAccumulator:
    acc = EventAccumulator(
        str(run / "tensorboard"), size_guidance={"scalars": 0, "audio": 0, "images": 0}
    )
    acc.Reload()
    return acc


@pytest.mark.slow
def test_the_mirror_holds_the_jsonl_values(demo_corpus: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert loop.train(_cfg(demo_corpus), run, "test.yaml", target_step=4) == ev.EXIT_OK
    acc = _read(run)
    records = read_events(run)
    steps = [r for r in records if r["event"] == "step"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    tags = acc.Tags()["scalars"]
    for field, tag in tbmirror.STEP_SCALARS.items():
        want = [(r["step"], r[field]) for r in steps if r.get(field) is not None]
        if not want:
            continue
        got = [(s.step, s.value) for s in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in want], tag
        assert np.array_equal(np.float32([v for _, v in got]), np.float32([v for _, v in want])), (
            tag
        )
    vals = [r for r in records if r["event"] == "val"]
    assert [v["step"] for v in vals] == [2, 4]
    for name in ("mel_l1", "mstft"):
        tag = tbmirror.val_tag("val", "", name)
        assert tag in tags
        got = [(s.step, np.float32(s.value)) for s in acc.Scalars(tag)]
        assert got == [(v["step"], np.float32(v["metrics"][name])) for v in vals]
    # Validation audio and its spectrogram, at each validation.
    audio = [t for t in acc.Tags()["audio"] if t.startswith("val/audio/")]
    images = [t for t in acc.Tags()["images"] if t.startswith("val/spectrogram/")]
    assert audio and images
    gen = next(t for t in audio if t.endswith("_gen"))
    assert [a.step for a in acc.Audio(gen)] == [2, 4]
    assert acc.Audio(gen)[0].encoded_audio_string[:4] == b"RIFF"
    assert acc.Images(images[0])[0].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [r for r in records if r["event"] == "alert" and r["kind"] == ev.ALERT_MIRROR]


def test_a_mirror_that_cannot_write_is_an_alert_and_training_goes_on(
    demo_corpus: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "tensorboard").write_text("a file where the mirror's directory should be")
    cfg = _cfg(demo_corpus, val_every=1000)
    assert loop.train(cfg, run, "test.yaml", target_step=3) == ev.EXIT_OK
    records = read_events(run)
    alerts = [r for r in records if r["event"] == "alert" and r["kind"] == ev.ALERT_MIRROR]
    assert len(alerts) == 1 and "training goes on" in alerts[0]["message"]
    assert [r["step"] for r in records if r["event"] == "step"] == [1, 2, 3]
    assert (run / "tensorboard").read_text().startswith("a file")  # left as it was
