"""nal-tui compare's core: which directories it takes, the configs' differing keys, the run
labels, each run loaded by the dashboard's own loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from nal_tui.core.compare.runs import (
    KIND_LOSS,
    KIND_OPT,
    KIND_VAL,
    CompareError,
    check_dirs,
    compare_series,
    config_diff,
    labels,
    load_runs,
    series_points,
)
from tests.factory import T0, record, step_event, val_record, write_run
from trainer.events.codec import encode
from trainer.events.schema import LOSS_KEYS, OPT_KEYS


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


def test_compare_offers_the_dashboards_series_lr_and_gradient_norms_included(tmp_path: Path):
    """The losses, learning rates (G, D) and gradient norms (G, D) as the dashboard defines
    them (SERIES_KEYS, RunState.track), after the validation metrics."""
    a = write_run(tmp_path / "a", 300)
    with open(a / "events.jsonl", "ab") as f:
        f.write(encode(val_record(300, set="val", metrics={"mel_l1": 0.5})))
        for s in range(301, 401):
            f.write(encode(record(step_event(s, lr_g=1e-4, grad_norm_g=3.0 + s % 2), T0 + s)))
    runs = load_runs([a, write_run(tmp_path / "b", 200)])
    names = compare_series(runs)
    assert names[0] == (KIND_VAL, "mel_l1")
    assert names[1:] == [(KIND_LOSS, k) for k in LOSS_KEYS] + [(KIND_OPT, k) for k in OPT_KEYS]
    st = runs[0].state
    steps, vals = series_points(st, KIND_OPT, "lr_g")
    assert len(steps) == len(st.track("lr_g").series) == 400 and steps[-1] == 400
    assert set(vals[300:]) == {1e-4} and set(vals[:300]) == {2e-4}
    steps, vals = series_points(st, KIND_OPT, "grad_norm_g")  # logged from step 301 only
    assert steps[0] == 301 and sorted(set(vals)) == [3.0, 4.0]
    assert series_points(runs[1].state, KIND_OPT, "grad_norm_d") == ([], [])
    assert [list(c) for c in series_points(st, KIND_VAL, "mel_l1")] == [[300], [0.5]]
