"""The dashboard's rates multiply out: steps/s x batch gives the samples/s shown beside it,
also on a slow machine (a demo run at batch 4 showed 0.08 steps/s beside 0.33 samples/s)."""

from __future__ import annotations

import pytest

from nal_tui.ui.widgets.fmt import fmt_rate


def _num(text: str) -> float:
    return float(text.split()[0].replace(",", ""))


@pytest.mark.parametrize("steps_s", [0.0825, 0.1425, 0.0437, 0.945, 0.00213, 1.19, 37.5])
def test_shown_steps_times_batch_is_the_shown_samples(steps_s: float) -> None:
    batch = 4
    shown_steps = _num(fmt_rate(steps_s, "steps/s"))
    shown_samples = _num(fmt_rate(steps_s * batch, "samples/s"))
    assert shown_steps * batch == pytest.approx(shown_samples, rel=0.01, abs=0.006)


def test_plain_rates_keep_their_form() -> None:
    assert fmt_rate(1.0, "steps/s") == "1.00 steps/s"
    assert fmt_rate(40.0, "samples/s") == "40.00 samples/s"
    assert fmt_rate(1234.0, "samples/s") == "1,234 samples/s"
    assert fmt_rate(0.0, "steps/s") == "0.00 steps/s"
    assert fmt_rate(None, "steps/s") == "-- steps/s"
    assert fmt_rate(0.0825, "steps/s") == "0.0825 steps/s"
