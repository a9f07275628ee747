"""What the dashboard's panels are handed, built from factory events and run directories:
the checkpoint table (live branch first, abandoned after, "latest" by trainer.rundir's one
definition, best marked), and the validation panel (every metric, by set)."""

from __future__ import annotations

from nal_tui.core.reducer.present import table_rows
from nal_tui.core.reducer.state import RunState
from nal_tui.core.services import CachedVerifier, CheckpointService
from nal_tui.ui.checkpoints.table import verified_cell
from nal_tui.ui.run.validation import validation_lines
from tests.factory import (
    T0,
    checkpoint_record,
    corrupt,
    record,
    records,
    run_start,
    steps,
    val_record,
    write_checkpoint,
)
from trainer.events import schema as ev
from trainer.events.parse import parse_lines
from trainer.rundir.checkpoints import checkpoint_info
from trainer.rundir.layout import checkpoint_paths, temp_path_for
from trainer.rundir.resolve import latest_checkpoint

ASIDE = "20260101-000000_steps-40-50"


def _table(rd) -> list:
    got: list = []
    CheckpointService(rd, got.append, CachedVerifier()).scan_once()
    return got[-1]


def test_table_lists_the_live_branch_then_the_abandoned_one_and_marks_latest(tmp_path):
    rd = tmp_path / "run"
    for s in (10, 20, 30):
        write_checkpoint(rd, s)
    bad = checkpoint_paths(rd, 30)[0]
    corrupt(bad)  # same size, another hash
    for s in (40, 50):
        write_checkpoint(rd, s, aside=ASIDE)
    rows = _table(rd)
    assert [(r.step, r.abandoned) for r in rows] == [
        (30, False), (20, False), (10, False), (50, True), (40, True)
    ]  # fmt: skip
    assert [r.step for r in rows if r.latest] == [20]
    latest, _ = latest_checkpoint(rd)
    assert latest is not None and latest.step == 20  # the one definition says the same
    assert rows[3].path == f"checkpoints/abandoned/{ASIDE}/ckpt_00000050.pt"
    assert verified_cell(rows[1]).plain == "✔ sha256 ok · latest"
    assert verified_cell(rows[3]).plain == "✔ sha256 ok · abandoned"
    assert verified_cell(rows[0]).plain.startswith("✘ ")


def test_best_checkpoints_are_marked_from_the_ledger_of_checkpoint_events(tmp_path):
    rd = tmp_path / "run"
    for s in (10, 20, 30):
        write_checkpoint(rd, s)
    write_checkpoint(rd, 20, aside=ASIDE)
    st = RunState()
    st.feed([record(run_start()), *records(steps(1, 30), T0 + 1)])
    st.feed([checkpoint_record(10), checkpoint_record(20, best=True)])
    assert st.checkpoints.best_steps == {20}
    st.feed([checkpoint_record(30, best=False, best_steps=[20, 10])])
    rows = table_rows(st, _table(rd))
    assert [(r.step, r.abandoned) for r in rows if r.best] == [(20, False), (10, False)]
    assert "best" in verified_cell(rows[1]).plain
    st.feed([record(run_start(start=15), T0 + 100)])  # rollback: 20 left the live branch
    assert st.checkpoints.best_steps == {10}


def test_validation_panel_shows_every_metric_by_set():
    st = RunState()
    st.feed([record(run_start()), *records(steps(1, 3))])
    mets = {"mel_l1": 0.41, "mstft": 1.25, "stoi": 0.93, "novel_x": 7.0}
    mets = {**mets, "pesq": "nan"}  # the writer's encoding of a non-finite value
    unseen = val_record(100, set="unseen", metrics={**mets, "mel_l1": 0.52})
    st.feed([unseen, val_record(100, set="val", metrics=mets)])
    v = st.val
    assert v is not None and [g for g, _ in v.metrics] == ["val", "unseen"]
    text = validation_lines(v).plain
    lines = text.splitlines()
    assert "val" in lines[1] and "unseen" in lines[1]
    row = next(line for line in lines if line.startswith("mel L1 distance ↓"))
    assert "0.41" in row and "0.52" in row
    assert next(line for line in lines if line.startswith("PESQ (wideband) ↑")).count("NaN") == 2
    assert any(line.startswith("novel_x") for line in lines)  # an unknown metric, generically
    # The metric and the reconstruction loss are told apart, each with its direction.
    assert any(line.startswith("M-STFT distance ↓") for line in lines)
    assert any(line.startswith("recon loss (mrstft) ↓") for line in lines)
    assert "↓ lower is better  ↑ higher is better" in text
    # Known metrics in the documented order, unknown ones after.
    names = [line[:22].strip() for line in lines[2:8]]
    assert names == [
        "mel L1 distance ↓", "M-STFT distance ↓", "PESQ (wideband) ↑", "STOI ↑",
        "recon loss (mrstft) ↓", "novel_x",
    ]  # fmt: skip


def test_validation_panel_is_tolerant_of_old_missing_and_hostile_records():
    st = RunState()
    st.feed([record(run_start())])
    old = ev.Val(step=50, losses={"mel_l1": 0.7}, samples=["s/a.wav"])  # no metrics, no set
    st.feed([record(old)])
    text = validation_lines(st.val).plain
    assert "mel L1 distance" in text and "0.7" in text and "step 50" in text
    assert "s/a.wav" in text  # a sample is named with its folder
    hostile = (
        b'{"v":1,"event":"val","t":1700000001.0,"step":60,"losses":{},"samples":[],'
        b'"set":"\\u001b[31mred","metrics":{"\\u001b]0;x\\u0007pwn":1.5,"inf_one":"inf",'
        b'"gone":null}}'
    )
    (rec,) = parse_lines([hostile])[0]
    st.feed([rec])
    text = validation_lines(st.val).plain
    assert "\x1b" not in text and "\x07" not in text
    assert "pwn" in text and "inf" in text and "NaN" in text
    assert "val @50" in text  # the older set is labelled with its step


def test_a_checkpoint_being_deleted_by_retention_is_not_shown_as_a_failed_save(
    tmp_path, monkeypatch
):
    # Retention renames the manifest to a hidden temp file, then unlinks the .pt, then the
    # temp. Caught half-way, the checkpoint reads as an interrupted save: while its files
    # are changing it is shown as not checked yet, and only once they settle as failed.
    rd = tmp_path / "run"
    for s in (10, 20):
        write_checkpoint(rd, s)
    pt, man = checkpoint_paths(rd, 10)
    man.rename(temp_path_for(man))
    assert not checkpoint_info(pt).complete
    rows = _table(rd)
    assert [(r.step, r.verified) for r in rows] == [(20, True), (10, None)]
    assert not verified_cell(rows[1]).plain.startswith("✘")
    pt.unlink()  # only the temp file is left: still a deletion under way
    assert [(r.step, r.verified) for r in _table(rd)] == [(20, True), (10, None)]
    monkeypatch.setattr("nal_tui.core.services.SETTLE_S", -1.0)  # long after: a real failure
    rows = _table(rd)
    assert rows[1].verified is False and verified_cell(rows[1]).plain.startswith("✘")
