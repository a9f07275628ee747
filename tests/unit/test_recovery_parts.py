"""train.recover's torch-free parts: its config, the recovery event, and how the
dashboard's reducer applies it (a branch at the step gone back to, a marker on the charts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nal_tui.core.reducer.state import RunState
from nal_tui.core.watch.notice import action_for
from tests.conftest import DEMO_CONFIG
from tests.factory import T0, record, records, run_start, steps
from trainer.config.build import from_dict
from trainer.config.schema import ConfigError
from trainer.config.yamlfile import load
from trainer.events import schema as ev
from trainer.events.parse import parse_line

NAN = float("nan")


def _recovery(**kw) -> ev.Recovery:
    vals = dict(step=9, from_step=13, trigger="nonfinite", checkpoint="checkpoints/ckpt_00000009.pt",
                lr_g=1e-4, lr_d=1e-4, recoveries=1, max_recoveries=3, branch="b2")  # fmt: skip
    vals.update(kw)
    return ev.Recovery(**vals)


def test_config_recover_is_off_by_default_and_checked() -> None:
    data = {"train": {"recover": {"on": ["nonfinite"], "max_recoveries": 2, "lr_scale": 0.25}}}
    assert from_dict({}).train.recover is None
    assert load(DEMO_CONFIG).train.recover is None  # the demo shows it, commented out
    r = from_dict(data).train.recover
    assert r is not None and (r.on, r.max_recoveries, r.lr_scale) == (("nonfinite",), 2, 0.25)
    for bad in ({"on": ["nan"]}, {"lr_scale": 2.0}, {"max_recoveries": 0}, {"every": 1}):
        with pytest.raises(ConfigError, match="train.recover"):
            from_dict({"train": {"recover": bad}}, "x.yaml")


def test_recovery_event_round_trips_and_is_checked() -> None:
    rec = record(_recovery())
    assert rec["step"] == 9 and rec["lr_g"] == 1e-4 and rec["moved_aside"] is None
    with pytest.raises(ev.EventError, match="recovery: field 'from_step'"):
        parse_line(
            '{"v":1,"event":"recovery","t":1,"step":9,"from_step":-1,"trigger":"nonfinite",'
            '"checkpoint":"c","lr_g":1,"lr_d":1,"recoveries":1,"max_recoveries":3}'
        )


def test_reducer_applies_a_recovery_as_a_branch_with_a_marker() -> None:
    s = RunState()
    s.feed(records([run_start(target=100), *steps(1, 10), *steps(11, 13, g=NAN)]))
    assert s.step == 13 and s.alerts.recent(1)[0].kind == ev.ALERT_NONFINITE
    alert = ev.Alert(kind=ev.ALERT_RECOVERY, step=9, message="recovery 1/3", level="warning")
    s.feed([record(_recovery(), T0 + 10), record(alert, T0 + 10)])
    s.feed(records(steps(10, 12), t0=T0 + 11))
    assert s.step == 12 and s.progress.max_step == 12
    assert 9 in s.branches.resume_steps  # the marker the charts draw
    kinds = [a.kind for a in s.alerts.rows]
    assert kinds[-2:] == [ev.ALERT_BRANCH, ev.ALERT_RECOVERY]
    assert "steps 10–13" in s.alerts.rows[-2].message
    assert not [a for a in s.alerts.rows if a.kind == ev.ALERT_BACKWARDS]
    g = s.losses["g"]
    assert g.current == 50.0  # the abandoned NaN steps left the view
    assert "the run goes on" in action_for(ev.ALERT_RECOVERY, Path("r"), "")
