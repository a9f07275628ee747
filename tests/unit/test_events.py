"""The event-log schema and writer: one flushed JSON line per record, never glued lines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from trainer.events import schema as ev
from trainer.events.codec import encode, float_field, loads
from trainer.events.parse import line_error, parse_line, validate
from trainer.events.writer import EventWriter


def _step(step: int, g: float = 1.0) -> ev.Step:
    return ev.Step(
        step=step,
        epoch=0,
        g=g,
        d=0.5,
        stft=0.4,
        adv=0.3,
        fm=0.2,
        recon="mrstft",
        lr_g=2e-4,
        lr_d=2e-4,
        step_time=0.1,
        samples_per_s=40.0,
    )


def test_every_record_has_version_event_time(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    with EventWriter(p) as w:
        w.write(_step(1), t=100.0)
        w.write(ev.RunEnd(step=1, status="completed", reason="done", exit_code=0), t=101.0)
    lines = p.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    recs = [loads(x) for x in lines[:2]]
    assert recs[0] == {
        "v": 1,
        "event": "step",
        "t": 100.0,
        "step": 1,
        "epoch": 0,
        "g": 1.0,
        "d": 0.5,
        "stft": 0.4,
        "adv": 0.3,
        "fm": 0.2,
        "recon": "mrstft",
        "lr_g": 2e-4,
        "lr_d": 2e-4,
        "step_time": 0.1,
        "samples_per_s": 40.0,
        "grad_norm_g": None,
        "grad_norm_d": None,
    }
    for r in recs:
        validate(r)


def test_each_line_is_flushed_immediately(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    w = EventWriter(p)
    w.write(_step(1))
    assert p.read_bytes().count(b"\n") == 1  # visible to a reader before close
    w.close()


def test_torn_last_line_gets_a_newline_before_the_next_record(tmp_path: Path) -> None:
    p = tmp_path / "events.jsonl"
    p.write_bytes(encode(_step(1).to_record()) + b'{"v":1,"event":"st')  # killed mid-line
    with EventWriter(p) as w:
        w.write(_step(2))
    lines = p.read_bytes().split(b"\n")
    assert len(lines) == 4
    assert loads(lines[0])["step"] == 1
    with pytest.raises(ev.EventError):
        loads(lines[1])
    assert loads(lines[2])["step"] == 2


def test_nonfinite_values_round_trip_as_strings(tmp_path: Path) -> None:
    rec = _step(3, g=math.nan).to_record()
    rec["d"] = math.inf
    line = encode(rec)
    json.loads(line)  # strict JSON: no bare NaN
    back = loads(line)
    assert math.isnan(float_field(back, "g"))
    assert float_field(back, "d") == math.inf
    assert float_field(back, "stft") == pytest.approx(0.4)


@pytest.mark.parametrize(
    "line, needle",
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"v": 1, "t": 1}', "no 'event' field"),
        (b'{"v": 1, "event": "step"}', "no numeric 't' field"),
    ],
)
def test_garbled_lines_raise_event_error(line: bytes, needle: str) -> None:
    with pytest.raises(ev.EventError, match=needle):
        loads(line)


def test_validate_names_missing_fields() -> None:
    rec = _step(1).to_record()
    del rec["g"], rec["lr_d"]
    with pytest.raises(ev.EventError, match="step: missing field"):
        validate(rec)
    rec = _step(1).to_record()
    rec["v"] = 99
    with pytest.raises(ev.EventError, match="schema version 99"):
        validate(rec)


def test_nonfinite_values_inside_objects_round_trip(tmp_path: Path) -> None:
    """A NaN validation loss used to be written as null (or to raise with stdlib json),
    and the parser then threw the whole val record away as garbled."""
    val = ev.Val(step=5, losses={"mel_l1": math.nan, "stft": math.inf}, samples=["a.wav"])
    line = encode(val.to_record(1.0))
    assert b"null" not in line
    rec = parse_line(line)
    assert rec["losses"] == {"mel_l1": "nan", "stft": "inf"}
    assert math.isnan(float_field(rec["losses"], "mel_l1"))
    # Logs written before the fix carry null there: read as NaN, not garbled.
    old = line.replace(b'"nan"', b"null")
    assert line_error(old) is None
