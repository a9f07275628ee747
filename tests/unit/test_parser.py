"""The one event parser (trainer.events): validation by type and range, the bulk path."""

from __future__ import annotations

import json

import pytest

from tests.factory import record, run_start, step_event
from trainer.events import schema as ev
from trainer.events.codec import encode
from trainer.events.parse import parse_line, parse_lines


def _line(rec: dict) -> bytes:
    return json.dumps(rec).encode()


def _step(**kw) -> dict:
    rec = step_event(5).to_record(1.0)
    rec.update(kw)
    return rec


@pytest.mark.parametrize(
    "rec, needle",
    [
        (_step(step=-5), "'step' must be an integer"),
        (_step(step=0), "'step' must be an integer"),
        (_step(step=10**13), "'step' must be an integer"),
        (_step(step=True), "'step' must be an integer"),
        (_step(step=5.5), "'step' must be an integer"),
        (_step(g="abc"), "'g' must be a number"),
        (_step(d=[1]), "'d' must be a number"),
        (_step(t="yesterday"), "no numeric 't'"),
        (_step(t=-1.0), "'t' must be a unix time"),
        ({**run_start().to_record(1.0), "target_step": -1}, "'target_step' must be an integer"),
        ({**run_start().to_record(1.0), "world_size": 0}, "'world_size' must be an integer"),
        ({**run_start().to_record(1.0), "run_name": 7}, "'run_name' must be a string"),
    ],
)
def test_wrong_type_or_range_is_garbled(rec, needle):
    with pytest.raises(ev.EventError, match=needle):
        parse_line(_line(rec))
    recs, bad, sample = parse_lines([_line(rec)], 7)
    assert recs == [] and bad == 1 and "line 7" in sample and needle.split()[0] in sample


def test_nonfinite_encodings_and_unknown_fields_and_events_pass():
    assert parse_line(_line(_step(g="nan", d="-inf", extra={"x": 1})))["g"] == "nan"
    assert parse_line(b'{"v":1,"event":"future_thing","t":5,"anything":[1]}')


def test_bulk_path_accepts_exactly_what_parse_line_accepts():
    lines = [
        _line(_step()),
        b"",
        b"not json",
        _line(_step(step=-1)),
        encode(record(run_start())),
        b"\xff\xfe binary",
        b'{"v":1,"event":"step","t":1}',
        b"[1,2]",
    ]
    recs, bad, sample = parse_lines(lines)
    singles = []
    for line in lines:
        try:
            singles.append(parse_line(line))
        except ev.EventError:
            pass
    assert recs == singles and len(recs) == 2
    assert bad == 5  # the blank line is not counted
    assert sample.startswith("events.jsonl line 8")


def test_sample_of_a_hostile_line_is_capped():
    recs, bad, sample = parse_lines([b"x" * 100_000])
    assert bad == 1 and len(sample) < 300
