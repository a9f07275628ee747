"""Lineage on real files, torch-free: live vs abandoned, "latest", branch plans, moves,
interrupted moves and saves, run history and the fresh-start refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lineage_factory import ckpt, steps, tree
from trainer.checkpointing import lineage
from trainer.events.codec import encode
from trainer.rundir.checkpoints import list_abandoned, list_checkpoints, verify_checkpoint
from trainer.rundir.history import fresh_start_refusal, run_history, suggest_run_dir
from trainer.rundir.layout import (
    MOVE_JOURNAL,
    CheckpointError,
    NoValidCheckpoint,
    checkpoint_paths,
)
from trainer.rundir.manifest import Manifest, ManifestFile, ParentRef, read_manifest
from trainer.rundir.resolve import is_run_checkpoint, latest_checkpoint, resolve_checkpoint

# ------------------------------------------------------------------------ manifests


def test_manifest_lineage_fields_round_trip_and_old_manifests_stay_valid(tmp_path: Path) -> None:
    m = Manifest(
        step=12,
        epoch=1,
        created=1.5,
        milestone=False,
        files=(ManifestFile("ckpt_00000012.pt", 3, "ab" * 32),),
        branch="B1",
        parent=ParentRef(10, "cd" * 32, "B0"),
        model_config={"generator": {"upsample_initial_channel": 64}},
    )
    p = tmp_path / "ckpt_00000012.json"
    p.write_text(m.to_json())
    assert json.loads(p.read_text())["parent"] == {"step": 10, "sha256": "cd" * 32, "branch": "B0"}
    assert read_manifest(p) == m
    old = {k: v for k, v in json.loads(p.read_text()).items() if k not in ("branch", "parent")}
    p.write_text(json.dumps(old))
    assert read_manifest(p).branch is None and read_manifest(p).parent is None


def test_garbled_parent_is_a_manifest_error(tmp_path: Path) -> None:
    pt = ckpt(tmp_path, 10)
    d = json.loads(pt.with_suffix(".json").read_text())
    d["parent"] = {"step": "ten"}
    pt.with_suffix(".json").write_text(json.dumps(d))
    (info,) = list_checkpoints(tmp_path)
    assert not info.complete and "parent: field 'step' has type str" in info.reason


# ------------------------------------------------------------ live, abandoned, latest


def test_latest_is_the_newest_verified_live_checkpoint_only(tmp_path: Path) -> None:
    for s in (5, 10):
        ckpt(tmp_path, s)
    aside = tmp_path / "checkpoints" / "abandoned" / "20260101-000000_steps-20-30"
    for s in (20, 25, 30):
        ckpt(tmp_path, s, where=aside)
    assert steps(list_checkpoints(tmp_path)) == [5, 10]
    ab = list_abandoned(tmp_path)
    assert steps(ab) == [20, 25, 30] and all(i.abandoned and i.complete for i in ab)
    assert all(i.branch == "B0" for i in ab)
    info, skipped = latest_checkpoint(tmp_path)
    assert info is not None and info.step == 10 and not info.abandoned and skipped == []
    # A newer live checkpoint that fails the verifier is skipped with its reason.
    ckpt(tmp_path, 15)
    raw = bytearray(checkpoint_paths(tmp_path, 15)[0].read_bytes())
    raw[3] ^= 0xFF
    checkpoint_paths(tmp_path, 15)[0].write_bytes(bytes(raw))
    info, skipped = latest_checkpoint(tmp_path)
    assert info.step == 10 and [(s.step, "sha256 mismatch" in r) for s, r in skipped] == [
        (15, True)
    ]
    # A custom verifier (the trainer's load test, the dashboard's cache) decides.
    info, skipped = latest_checkpoint(tmp_path, lambda i: (i.step < 10, "too new"))
    assert info.step == 5 and steps(s for s, _ in skipped) == [15, 10]


def test_resolve_checkpoint_forms(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    ckpt(run, 10)
    aside = run / "checkpoints" / "abandoned" / "x"
    ckpt(run, 20, where=aside)
    assert resolve_checkpoint(run, "latest").step == 10
    assert resolve_checkpoint(run, str(aside / "ckpt_00000020.pt")).step == 20  # absolute
    assert resolve_checkpoint(run, "checkpoints/abandoned/x/ckpt_00000020.pt").abandoned
    assert resolve_checkpoint(run, "ckpt_00000010.pt").step == 10  # in checkpoints/
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint(run, "run/checkpoints/ckpt_00000010.json").step == 10  # cwd
    with pytest.raises(NoValidCheckpoint, match="does not exist"):
        resolve_checkpoint(run, "ckpt_00000099.pt")
    with pytest.raises(NoValidCheckpoint, match="no best-checkpoint ledger"):
        resolve_checkpoint(run, "best")
    with pytest.raises(NoValidCheckpoint, match="no checkpoints in"):
        resolve_checkpoint(tmp_path / "empty", "latest")
    assert is_run_checkpoint(run, aside / "ckpt_00000020.pt")
    assert not is_run_checkpoint(tmp_path / "other", aside / "ckpt_00000020.pt")


# -------------------------------------------------------------------- branch plans


def test_resume_from_the_newest_continues_the_branch(tmp_path: Path) -> None:
    ckpt(tmp_path, 5)
    ckpt(tmp_path, 10, parent=None)
    plan = lineage.plan_start(tmp_path, list_checkpoints(tmp_path)[-1])
    assert not plan.new_branch and plan.branch == "B0" and plan.abandon == ()
    before = tree(tmp_path)
    start, aside = lineage.apply_plan(tmp_path, plan)
    assert aside is None and start.step == 10 and tree(tmp_path) == before


def test_resume_from_an_older_step_moves_the_later_ones_aside(tmp_path: Path) -> None:
    for s in (10, 20, 25, 30):
        ckpt(tmp_path, s)
    # An incomplete later one (no manifest) moves with them: nothing stays after the parent.
    checkpoint_paths(tmp_path, 35)[0].write_bytes(b"half")
    before = tree(tmp_path)
    ten = list_checkpoints(tmp_path)[0]
    plan = lineage.plan_start(tmp_path, ten)
    assert plan.new_branch and plan.branch != "B0"
    assert plan.parent == ParentRef(10, ten.sha256, "B0")
    assert steps(plan.abandon) == [20, 25, 30, 35]
    start, aside = lineage.apply_plan(tmp_path, plan)
    assert start == ten
    assert aside.parts[:2] == ("checkpoints", "abandoned") and aside.name.endswith("steps-20-35")
    assert steps(list_checkpoints(tmp_path)) == [10]
    assert steps(list_abandoned(tmp_path)) == [20, 25, 30, 35]
    assert tree(tmp_path) == before  # moved, not copied or deleted
    assert not (tmp_path / "checkpoints" / MOVE_JOURNAL).exists()


def test_resume_from_an_abandoned_checkpoint_keeps_one_linear_chain(tmp_path: Path) -> None:
    # B0 trained 10..30; resumed from 10 as B1 (20, 25, 30 aside), which saved 12 and 15.
    for s in (10, 20, 25, 30):
        ckpt(tmp_path, s)
    plan1 = lineage.plan_start(tmp_path, list_checkpoints(tmp_path)[0])
    lineage.apply_plan(tmp_path, plan1)
    for s in (12, 15):
        ckpt(tmp_path, s, branch=plan1.branch, parent=plan1.parent)
    before = tree(tmp_path)
    twenty_five = next(i for i in list_abandoned(tmp_path) if i.step == 25)
    plan2 = lineage.plan_start(tmp_path, twenty_five)
    assert steps(plan2.abandon) == [12, 15]  # B1 is not an ancestor of B0's 25
    assert steps(plan2.restore) == [20, 25]  # 25 and its ancestor 20 come back
    assert plan2.parent == ParentRef(25, twenty_five.sha256, "B0")
    start, aside = lineage.apply_plan(tmp_path, plan2)
    assert not start.abandoned and start.path == checkpoint_paths(tmp_path, 25)[0]
    live = list_checkpoints(tmp_path)
    assert steps(live) == [10, 20, 25] and all(i.branch == "B0" for i in live)
    assert sorted(steps(list_abandoned(tmp_path))) == [12, 15, 30]
    assert tree(tmp_path) == before
    assert latest_checkpoint(tmp_path)[0].step == 25
    assert all(verify_checkpoint(i) == (True, "ok") for i in live)
    # And back again to B1's 15: 20 and 25 leave, 12 and 15 return, 10 stays.
    fifteen = next(i for i in list_abandoned(tmp_path) if i.step == 15)
    plan3 = lineage.plan_start(tmp_path, fifteen)
    assert steps(plan3.abandon) == [20, 25] and steps(plan3.restore) == [12, 15]
    lineage.apply_plan(tmp_path, plan3)
    assert steps(list_checkpoints(tmp_path)) == [10, 12, 15]
    assert tree(tmp_path) == before


def test_new_branch_from_scratch_moves_every_live_checkpoint(tmp_path: Path) -> None:
    for s in (5, 10):
        ckpt(tmp_path, s)
    plan = lineage.plan_start(tmp_path, None)
    assert plan.new_branch and plan.parent is None and steps(plan.abandon) == [5, 10]
    start, aside = lineage.apply_plan(tmp_path, plan)
    assert start is None and list_checkpoints(tmp_path) == []
    assert steps(list_abandoned(tmp_path)) == [5, 10]
    # Two moves in the same second get distinct directories.
    for s in (5, 10):
        ckpt(tmp_path, s)
    _, aside2 = lineage.apply_plan(tmp_path, lineage.plan_start(tmp_path, None))
    assert aside2 != aside and steps(list_abandoned(tmp_path)) == [5, 10, 5, 10]


def test_move_never_overwrites(tmp_path: Path) -> None:
    a = ckpt(tmp_path, 10)
    b = ckpt(tmp_path, 20, where=tmp_path / "checkpoints" / "abandoned" / "x")
    b.rename(b.with_name(a.name))
    with pytest.raises(CheckpointError, match="target exists"):
        lineage.move_files(tmp_path, [(b.with_name(a.name), a)])
    assert a.read_bytes() != b.with_name(a.name).read_bytes()


def test_recover_needs_a_matching_manifest_temp(tmp_path: Path) -> None:
    pt = ckpt(tmp_path, 10)
    mp = pt.with_suffix(".json")
    good = mp.with_name(f".{mp.name}.0a0b0c0d.tmp")
    mp.rename(good)
    bad = mp.with_name(f".{mp.name}.01020304.tmp")
    bad.write_text(good.read_text().replace('"bytes": ', '"bytes": 1'))
    assert lineage.recover_interrupted_saves(tmp_path) == [pt]
    assert verify_checkpoint(list_checkpoints(tmp_path)[0]) == (True, "ok")
    assert bad.exists()  # not ours to judge: the start-up cleanup removes temps
    # A manifest temp whose hash does not match the .pt never makes it "complete".
    mp.rename(good)
    pt.write_bytes(b"other bytes of the same step")
    assert lineage.recover_interrupted_saves(tmp_path) == []
    assert not mp.exists()


# ------------------------------------------------------------------- run history


def _log(run_dir: Path, records: list[dict], torn: bytes = b"") -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "events.jsonl", "wb") as f:
        for r in records:
            f.write(encode({"v": 1, "t": 1.0, **r}))
        f.write(torn)


def _steps(a: int, b: int) -> list[dict]:
    return [{"event": "step", "step": s} for s in range(a, b + 1)]


def test_run_history_follows_the_reader_rule(tmp_path: Path) -> None:
    assert run_history(tmp_path) is None
    _log(tmp_path, [{"event": "run_start", "start_step": 0}])
    assert run_history(tmp_path) is None  # started, nothing done: holds no run
    records = [{"event": "run_start", "start_step": 0}, *_steps(1, 30)]
    records += [{"event": "run_end", "step": 30, "status": "completed"}]
    _log(tmp_path, records)
    h = run_history(tmp_path)
    assert h.last_step == 30 and h.last_status == "completed" and h.latest is None
    # Resumed from 10, stopped at 12: the live branch's last step is 12, not 30.
    records += [{"event": "run_start", "start_step": 10}, *_steps(11, 12)]
    _log(tmp_path, records, torn=b'{"v":1,"event":"step","t":1.0,"st')
    h = run_history(tmp_path)
    assert h.last_step == 12 and h.last_status is None
    # A failed resume's run_end (no run_start) does not lower it.
    records += [{"event": "run_end", "step": 12, "status": "failed"}]
    _log(tmp_path, records)
    assert run_history(tmp_path).last_step == 12
    # --new-branch then killed before its first step: nothing live is left.
    records += [{"event": "run_start", "start_step": 0}]
    _log(tmp_path, records)
    assert run_history(tmp_path) is None


def test_run_history_counts_checkpoints_without_a_log(tmp_path: Path) -> None:
    for s in (5, 10):
        ckpt(tmp_path, s)
    ckpt(tmp_path, 20, where=tmp_path / "checkpoints" / "abandoned" / "x")
    h = run_history(tmp_path)
    assert (h.last_step, h.latest.step, h.n_checkpoints, h.n_abandoned) == (10, 10, 2, 1)
    assert h.branch == "B0"


def test_fresh_start_refusal_names_last_step_and_choices(tmp_path: Path) -> None:
    run = tmp_path / "demo"
    ckpt(run, 30)
    _log(run, [{"event": "run_start", "start_step": 0}, *_steps(1, 31)])
    msg = fresh_start_refusal(run, run_history(run))
    assert "last step 31" in msg and "step 30" in msg
    for choice in ("--resume latest", f"--run-dir {tmp_path / 'demo-2'}", "--new-branch"):
        assert choice in msg


def test_suggest_run_dir(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    assert suggest_run_dir(demo) == tmp_path / "demo-2"
    ckpt(tmp_path / "demo-2", 5)
    (tmp_path / "demo-3").write_text("a file")
    (tmp_path / "demo-4").mkdir()  # an empty directory is free
    assert suggest_run_dir(demo) == tmp_path / "demo-4"
    assert suggest_run_dir(tmp_path / "demo-2") == tmp_path / "demo-4"


@pytest.mark.parametrize(
    "journal",
    [
        "{not json",
        '{"moves": [["checkpoints/ckpt_00000010.pt", "../outside.pt"]]}',
        '{"moves": [["checkpoints/ckpt_00000010.pt", "checkpoints_x/ckpt_00000010.pt"]]}',
        '{"moves": [["/etc/passwd", "checkpoints/abandoned/x/passwd"]]}',
        '{"moves": "all"}',
    ],
)
def test_a_garbled_or_hostile_move_journal_moves_nothing(tmp_path: Path, journal: str) -> None:
    ckpt(tmp_path, 10)
    before = tree(tmp_path)
    (tmp_path / "checkpoints" / MOVE_JOURNAL).write_text(journal)
    with pytest.raises(CheckpointError, match="move journal"):
        lineage.finish_interrupted_move(tmp_path)
    assert tree(tmp_path) == before and steps(list_checkpoints(tmp_path)) == [10]
