"""nal-tui compare's core: which directories it takes, the configs' differing keys, the run
labels, each run loaded by the dashboard's own loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from nal_tui.core.compare.runs import CompareError, check_dirs, config_diff, labels, load_runs
from tests.factory import val_record, write_run
from trainer.events.codec import encode


def test_config_diff_lists_only_the_keys_that_differ() -> None:
    a = {"optim": {"lr_g": 2e-4, "lr_d": 2e-4}, "train": {"batch_size": 16}, "name": "a"}
    b = {"optim": {"lr_g": 1e-4, "lr_d": 2e-4}, "train": {"batch_size": 16}}
    assert config_diff([a, b]) == [("name", ["a", "—"]), ("optim.lr_g", ["0.0002", "0.0001"])]
    assert config_diff([a, a]) == []


def test_labels_are_the_directory_names_with_parents_where_they_clash() -> None:
    assert labels([Path("x/a"), Path("y/b")]) == ["a", "b"]
    assert labels([Path("x/run"), Path("y/run")]) == ["x/run", "y/run"]


def test_bad_directories_are_refused_naming_the_one(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", 5)
    with pytest.raises(CompareError, match="2 to 6 run directories, got 1"):
        check_dirs([a])
    with pytest.raises(CompareError, match=r"nowhere: no events.jsonl"):
        check_dirs([a, tmp_path / "nowhere"])
    with pytest.raises(CompareError, match="named twice"):
        check_dirs([a, tmp_path / "." / "a"])


def test_runs_load_with_their_branch_rule_and_best_scores(tmp_path: Path) -> None:
    runs = []
    for name, best in (("a", 0.5), ("b", 0.3)):
        rd = write_run(tmp_path / name, 300)
        with open(rd / "events.jsonl", "ab") as f:
            for step, m in ((100, 0.9), (200, best), (300, 0.8)):
                f.write(encode(val_record(step, set="val", metrics={"mel_l1": m})))
        runs.append(rd)
    (runs[1] / "config.yaml").write_text("{broken: [")
    got = load_runs(runs)
    assert [r.label for r in got] == ["a", "b"]
    assert [r.state.step for r in got] == [300, 300]
    st = got[1].state.validation.history.stats("val", "mel_l1")
    assert (st.best, st.best_step) == (0.3, 200)
    assert got[0].config_problem == "" and "config.yaml unreadable" in got[1].config_problem
