"""Validation in the trainer (in-process, on the demo corpus): the held-out unseen set beside
the validation set, and a metric whose package is missing (skipped with one note, never
estimated; a ledger ranked by it is refused before training)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import demo_config_dict, read_events
from trainer.config.build import from_dict
from trainer.events import schema as ev
from trainer.train import loop
from trainer.train import metrics as M

ALL_METRICS = {
    "val_metrics": ["mel_l1", "mstft", "pesq", "stoi"],
    "composite": {"mel_l1": 1.0, "mstft": 1.0, "pesq": 1.0},
}


def _cfg(corpus: Path, **over):
    sections = {
        # Every metric, as the full configs' defaults ask (the demo asks for mel_l1, mstft).
        "log": {"log_every": 1, "val_every": 2, "val_samples": 1, **ALL_METRICS},
        "checkpoint": {"every": 1000, "keep_last": 3, "milestone_every": 0},
    }
    for k, v in over.items():
        sections.setdefault(k, {}).update(v)
    return from_dict(demo_config_dict(corpus, **sections), "test")


def _unseen_corpus(demo_corpus: Path, where: Path, n: int = 2) -> tuple[Path, list[str]]:
    """Another speaker's corpus: a few demo clips copied into their own directory."""
    (where / "wavs").mkdir(parents=True)
    ids = sorted(p.stem for p in (demo_corpus / "wavs").glob("*.wav"))[:n]
    for uid in ids:
        shutil.copy(demo_corpus / "wavs" / f"{uid}.wav", where / "wavs" / f"SPK9-{uid}.wav")
    (where / "metadata.csv").write_text("".join(f"SPK9-{u}|t|t\n" for u in ids))
    return where / "metadata.csv", [f"SPK9-{u}" for u in ids]


def test_an_unseen_set_is_validated_beside_the_validation_set(
    demo_corpus: Path, tmp_path: Path
) -> None:
    meta, ids = _unseen_corpus(demo_corpus, tmp_path / "unseen")
    cfg = _cfg(demo_corpus, data={"unseen_metadata": str(meta)})
    run = tmp_path / "run"
    assert loop.train(cfg, run, "test.yaml", target_step=4) == ev.EXIT_OK
    val = [r for r in read_events(run) if r["event"] == "val"]
    # Per validation: the unseen set first, then the validation set (the latest per step).
    assert [(v["step"], v["set"], v["utterances"]) for v in val] == [
        (2, "unseen", 2),
        (2, "val", 4),
        (4, "unseen", 2),
        (4, "val", 4),
    ]
    for v in val:
        assert {"mel_l1", "mstft", "pesq", "stoi", "composite"} <= set(v["metrics"])
    unseen = val[0]
    assert unseen["samples"] == [
        f"samples/step_00000002/unseen/{ids[0]}_gen.wav",
        f"samples/gt/unseen/{ids[0]}.wav",
    ]
    assert all((run / p).is_file() for p in unseen["samples"])
    assert unseen["metrics"] != val[1]["metrics"]  # other utterances, other scores
    # The checkpoint records both sets.
    from trainer.rundir.checkpoints import list_checkpoints

    last = list_checkpoints(run)[-1]
    assert last.step == 4 and set(last.validation) == {"val", "unseen"}
    assert last.score("mel_l1", "unseen") == pytest.approx(val[2]["metrics"]["mel_l1"])


def test_a_missing_metric_package_is_skipped_with_one_note(
    demo_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    # As if the [quality] extra were not installed: pesq cannot be found.
    monkeypatch.setitem(M._OPTIONAL, M.PESQ, "pesq_is_not_installed_here")
    monkeypatch.setattr(M, "_noted", set())
    run = tmp_path / "run"
    with caplog.at_level("WARNING", logger="nal-train"):
        assert loop.train(_cfg(demo_corpus), run, "test.yaml", target_step=4) == ev.EXIT_OK
    recs = read_events(run)
    val = [r for r in recs if r["event"] == "val"]
    assert len(val) == 2
    for v in val:
        # No PESQ, and no composite (it weighs PESQ): absent, never a made-up value.
        assert set(v["metrics"]) == {"mel_l1", "mstft", "stoi"}
    notes = [r for r in recs if r["event"] == "alert" and r["kind"] == ev.ALERT_METRIC_UNAVAILABLE]
    assert (
        len(notes) == 1 and "'pesq'" in notes[0]["message"] and "[quality]" in notes[0]["message"]
    )
    assert sum("metric 'pesq' skipped" in r.getMessage() for r in caplog.records) == 1

    # A ledger that ranks by PESQ cannot work without it: refused before any step.
    cfg = _cfg(demo_corpus, checkpoint={"best": {"metric": "composite", "keep": 2}})
    bad = tmp_path / "bad"
    assert loop.train(cfg, bad, "test.yaml", target_step=4) == ev.EXIT_USAGE
    end = read_events(bad)[-1]
    assert end["event"] == "run_end" and end["exit_code"] == ev.EXIT_USAGE
    assert "checkpoint.best.metric is composite, which needs pesq" in end["reason"]
    assert not [r for r in read_events(bad) if r["event"] == "step"]


def test_resume_best_falls_back_past_a_corrupt_best(demo_corpus: Path, tmp_path: Path) -> None:
    from trainer.rundir.resolve import best_checkpoints

    best = {"metric": "mel_l1", "keep": 2, "patience": 0}
    cfg = _cfg(demo_corpus, checkpoint={"best": best}, log={"val_metrics": ["mel_l1"]})
    run = tmp_path / "run"
    assert loop.train(cfg, run, "test.yaml", target_step=4) == ev.EXIT_OK
    first, second = best_checkpoints(run, "mel_l1", 2)  # both validations entered
    with open(first.path, "r+b") as f:  # same size, other bytes: the hash no longer matches
        f.seek(first.bytes // 2)
        f.write(b"\0garbage\0")
    assert loop.train(cfg, run, "test.yaml", resume="best", target_step=5) == ev.EXIT_OK
    recs = read_events(run)
    start = [r for r in recs if r["event"] == "run_start"][-1]
    assert start["start_step"] == second.step
    alerts = [r for r in recs if r["event"] == "alert" and r["kind"] == ev.ALERT_RESUME_FALLBACK]
    assert len(alerts) == 1 and first.path.name in alerts[0]["message"]
    assert "sha256" in alerts[0]["message"]
