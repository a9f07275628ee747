"""trainer.train.console: a live progress line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import io
import logging

from tests.factory import DEMO_CONFIG, record, run_end, run_start, step_event
from trainer.config.yamlfile import load
from trainer.train import console


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_one_redrawn_line_with_step_losses_rate_and_eta(monkeypatch):
    monkeypatch.setattr(console, "REDRAW_S", 0.0)
    out = Tty()
    con = console.Console(out, tty=True)
    con(record(run_start(target=100)))
    for s in range(1, 6):
        con(record(step_event(s, g=42.5)))
    text = out.getvalue()
    assert text.count("\r\x1b[2K") == 5 and "\n" not in text
    last = text.rsplit("\r\x1b[2K", 1)[1]
    assert "step 5/100" in last and "G 42.5" in last and "steps/s" in last and "ETA" in last
    con(record(run_end(5)))
    assert out.getvalue().endswith("\r\x1b[2K")


def test_not_a_terminal_logs_plain_lines(caplog):
    out = io.StringIO()
    con = console.Console(out, tty=False, every_s=0.0)
    con(record(run_start(target=10)))
    with caplog.at_level(logging.INFO, logger="nal-train"):
        con(record(step_event(3)))
    assert out.getvalue() == ""
    assert any("step 3/10" in r.getMessage() for r in caplog.records)
    assert "\x1b" not in caplog.text


def test_attach_observes_only_rank_zero():
    assert console.attach(rank=1) is None


def test_demo_config_fills_the_dashboard_within_minutes():
    """Validation samples and checkpoints every 50 steps (at several steps/s on 2 cores)."""
    cfg = load(DEMO_CONFIG)
    assert cfg.log.val_every <= 50 and cfg.checkpoint.every <= 50


def test_narrow_terminal_drops_whole_parts_and_a_log_message_keeps_the_line(monkeypatch):
    monkeypatch.setattr(console, "REDRAW_S", 0.0)
    out = Tty()
    con = console.Console(out, tty=True)
    con(record(run_start(target=100)))
    con(record(step_event(5, g=42.5)))
    full = con.fit(200)
    assert full.index("G 42.5") < full.index("steps/s") < full.index("ETA")
    narrow = con.fit(40)
    assert narrow.startswith("step 5/100") and "ETA" in narrow and len(narrow) <= 40
    assert "recon" not in narrow and not narrow.endswith((" ", "…"))
    # A log message prints above the line, which comes back at once under it.
    log = logging.getLogger("nal-train")
    handler = console._ClearingHandler(logging.StreamHandler(out), con)
    log.addHandler(handler)
    try:
        log.warning("validation done")
    finally:
        log.removeHandler(handler)
    tail = out.getvalue().rsplit("validation done\n", 1)[1]
    assert tail.startswith("\r\x1b[2K") and "step 5/100" in tail
