"""The best-checkpoint ledger (torch-free): manifests record validations, the ledger is
derived from the live branch on disk, ``best`` resolves through rundir, the tracker's verdicts
and the over-training alert."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from trainer.checkpointing import lineage
from trainer.config.schema import BestConfig
from trainer.rundir.checkpoints import list_checkpoints
from trainer.rundir.layout import NoValidCheckpoint, atomic_write_text, checkpoint_paths
from trainer.rundir.manifest import BestRecord, Manifest, ManifestFile, read_manifest
from trainer.rundir.resolve import best_checkpoint, best_checkpoints, resolve_checkpoint
from trainer.train.ledger import BestTracker


def ckpt(
    run_dir: Path,
    step: int,
    scores: dict[str, float] | None = None,
    best: BestRecord | None = None,
    unseen: dict[str, float] | None = None,
) -> Path:
    """A checkpoint as save_checkpoint writes it (without torch), with a validation record."""
    pt, mp = checkpoint_paths(run_dir, step)
    pt.parent.mkdir(parents=True, exist_ok=True)
    data = f"weights of step {step}".encode() * 50
    pt.write_bytes(data)
    validation = {}
    if scores is not None:
        validation["val"] = scores
    if unseen is not None:
        validation["unseen"] = unseen
    m = Manifest(
        step=step,
        epoch=0,
        created=time.time(),
        milestone=False,
        files=(ManifestFile(pt.name, len(data), hashlib.sha256(data).hexdigest()),),
        branch="B0",
        validation=validation or None,
        best=best,
    )
    atomic_write_text(mp, m.to_json())
    return pt


def note(metric: str = "mel_l1", keep: int = 2) -> BestRecord:
    return BestRecord(metric=metric, keep=keep, score=None, among=False)


def steps(infos) -> list[int]:
    return [i.step for i in infos]


def test_manifest_records_validation_and_the_ledger_note(tmp_path: Path) -> None:
    rec = BestRecord("pesq", 3, 2.5, True, since_best=0, best_step=40)
    pt = ckpt(tmp_path, 40, {"mel_l1": 0.5, "pesq": 2.5}, rec, unseen={"mel_l1": 0.7})
    m = read_manifest(pt.with_suffix(".json"))
    assert m.validation == {"val": {"mel_l1": 0.5, "pesq": 2.5}, "unseen": {"mel_l1": 0.7}}
    assert m.best == rec
    info = list_checkpoints(tmp_path)[0]
    assert info.score("pesq") == 2.5 and info.score("mel_l1", "unseen") == 0.7
    assert info.score("stoi") is None and info.best == rec
    assert {info} == {list_checkpoints(tmp_path)[0]}  # still hashable (sets of checkpoints)
    # Manifests written before the ledger existed have neither: still complete.
    old = json.loads(pt.with_suffix(".json").read_text())
    del old["validation"], old["best"]
    pt.with_suffix(".json").write_text(json.dumps(old))
    info = list_checkpoints(tmp_path)[0]
    assert info.complete and info.validation is None and info.best is None


def test_a_garbled_ledger_note_never_makes_the_weights_unusable(tmp_path: Path) -> None:
    pt = ckpt(tmp_path, 10, {"mel_l1": 0.5})
    d = json.loads(pt.with_suffix(".json").read_text())
    d["validation"] = {"val": {"mel_l1": "x", "mstft": True, "pesq": 2.0}, "junk": 3}
    d["best"] = {"metric": "rm -rf", "keep": 2}
    pt.with_suffix(".json").write_text(json.dumps(d))
    info = list_checkpoints(tmp_path)[0]
    assert info.complete
    assert info.validation == {"val": {"pesq": 2.0}} and info.best is None


def test_the_ledger_ranks_the_live_branch_by_the_metric_direction(tmp_path: Path) -> None:
    for step, mel, pesq in ((10, 0.9, 2.0), (20, 0.5, 3.1), (30, 0.7, 3.5), (40, 0.5, 1.0)):
        ckpt(tmp_path, step, {"mel_l1": mel, "pesq": pesq})
    ckpt(tmp_path, 50)  # not validated: never ranked
    assert steps(best_checkpoints(tmp_path, "mel_l1", 2)) == [20, 40]  # tie: earlier first
    assert steps(best_checkpoints(tmp_path, "pesq", 2)) == [30, 20]  # higher is better
    assert steps(best_checkpoints(tmp_path, "mstft", 2)) == []
    # Moved off the live branch: out of the live ledger, never deleted (lineage's move).
    aside = lineage.keep_aside(
        tmp_path, [checkpoint_paths(tmp_path, 20)[0], checkpoint_paths(tmp_path, 20)[1]], "x"
    )
    assert (tmp_path / aside / "ckpt_00000020.pt").exists()
    assert steps(best_checkpoints(tmp_path, "mel_l1", 2)) == [40, 30]
    # With a verifier, a checkpoint that fails it gives its place to the next one.
    bad = checkpoint_paths(tmp_path, 40)[0]
    bad.write_bytes(b"X" * bad.stat().st_size)
    from trainer.rundir.checkpoints import verify_checkpoint

    assert steps(best_checkpoints(tmp_path, "mel_l1", 2, verify_checkpoint)) == [30, 10]


def test_best_resolves_through_rundir_with_fallback(tmp_path: Path) -> None:
    with pytest.raises(NoValidCheckpoint, match="no best-checkpoint ledger"):
        resolve_checkpoint(tmp_path, "best")
    ckpt(tmp_path, 10, {"mel_l1": 0.9}, note())
    ckpt(tmp_path, 20, {"mel_l1": 0.4}, note())
    ckpt(tmp_path, 30, {"mel_l1": 0.6}, note())
    ckpt(tmp_path, 40, None, note())  # the newest note names the metric
    assert resolve_checkpoint(tmp_path, "best").step == 20
    pt20 = checkpoint_paths(tmp_path, 20)[0]
    pt20.write_bytes(b"\0" * pt20.stat().st_size)  # corrupt: same size, other bytes
    info, skipped = best_checkpoint(tmp_path)
    assert info.step == 30 and [(s.step, "sha256" in r) for s, r in skipped] == [(20, True)]
    assert resolve_checkpoint(tmp_path, "best").step == 30
    # The metric is the newest note's: switching to one that was never recorded is named.
    ckpt(tmp_path, 50, None, note("pesq"))
    with pytest.raises(NoValidCheckpoint, match="validated on pesq"):
        resolve_checkpoint(tmp_path, "best")


def test_best_of_a_run_whose_ledger_is_only_on_an_abandoned_branch(tmp_path: Path) -> None:
    ckpt(tmp_path, 10, {"mel_l1": 0.9}, note())
    pts = list(checkpoint_paths(tmp_path, 10))
    lineage.keep_aside(tmp_path, pts, "branch")
    ckpt(tmp_path, 5)  # a live branch without a ledger
    with pytest.raises(NoValidCheckpoint, match="abandoned branches .* resume one by path"):
        resolve_checkpoint(tmp_path, "best")


def test_tracker_verdicts_streak_and_overtraining_alert(tmp_path: Path) -> None:
    spec = BestConfig(metric="mel_l1", keep=2, patience=2)
    t = BestTracker(spec, tmp_path)

    def validate(step: int, score: float, save: bool) -> object:
        v = t.judge(step, {"mel_l1": score})
        if save:
            ckpt(tmp_path, step, {"mel_l1": score}, t.note(v))
        return v

    v = validate(2, 1.0, True)
    assert (v.enters, v.new_best, v.since_best, v.alert) == (True, True, 0, None)
    v = validate(4, 1.5, True)  # worse, but the ledger is not full yet: enters
    assert (v.enters, v.new_best, v.since_best) == (True, False, 1)
    v = validate(6, 1.2, True)  # better than the worst kept: enters, not a new best
    assert (v.enters, v.new_best, v.since_best) == (True, False, 2)
    assert v.alert is not None and "2 validations in a row" in v.alert
    assert "step 2" in v.alert and "ckpt_00000002.pt" in v.alert and "--resume best" in v.alert
    assert steps(t.ledger()) == [2, 6]
    v = validate(8, 2.0, False)  # worse than every kept score: not saved for the ledger
    assert (v.enters, v.since_best, v.alert) == (False, 3, None)
    v = validate(10, float("nan"), False)  # a non-finite score never enters
    assert (v.score, v.enters, v.since_best) == (None, False, 4)
    assert v.alert is not None  # 4 = 2 x patience: reminded
    # The streak is in the manifest's note: a resume from step 6 carries it on.
    m = read_manifest(checkpoint_paths(tmp_path, 6)[1])
    assert m.best.since_best == 2 and m.best.best_step == 2 and m.best.among
    t2 = BestTracker(spec, tmp_path)
    t2.restore(list_checkpoints(tmp_path)[-1])
    assert t2.since_best == 2
    v = t2.judge(12, {"mel_l1": 0.5})
    assert v.new_best and v.since_best == 0 and v.best.step == 2
    t3 = BestTracker(BestConfig(metric="pesq", keep=1), tmp_path)
    t3.restore(list_checkpoints(tmp_path)[-1])  # another metric's streak does not carry
    assert t3.since_best == 0
