"""The one parser of ``events.jsonl``: JSON, then validation by type and range.

Readers (the dashboard's follower, its backlog loader, ``nal-tui status``, the index
writer) all parse through ``parse_line`` / ``parse_lines``. A record that fails is
garbled: counted and shown, never handed on. Stdlib (plus orjson when present).
"""

from __future__ import annotations

import json as _json
from collections.abc import Mapping
from typing import Any

from trainer.events.codec import NONFINITE, _orjson, loads
from trainer.events.schema import (
    EVENTS_FILE,
    K_EVENT,
    K_TIME,
    K_VERSION,
    LOSS_KEYS,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    EventError,
)


def validate(rec: Mapping[str, Any]) -> None:
    """Check a parsed record against the schema of its event type, by type and range.

    Unknown event types pass when ``v``, ``event`` and ``t`` are sound; unknown fields are
    ignored. Raises EventError naming the event and the field.
    """
    if rec.get(K_VERSION) != SCHEMA_VERSION:
        raise EventError(f"schema version {rec.get(K_VERSION)!r}, expected {SCHEMA_VERSION}")
    name = rec[K_EVENT]
    t = rec.get(K_TIME)
    if t.__class__ not in _NUM or not 0.0 <= t <= MAX_TIME:
        raise EventError(f"{name}: 't' must be a unix time, got {_short(t)}")
    missing = REQUIRED_FIELDS.get(name, frozenset()) - rec.keys()
    if missing:
        raise EventError(f"{name}: missing field(s) {', '.join(sorted(missing))}")
    for key, check in _CHECKS.get(name, ()):
        v = rec.get(key, _ABSENT)
        if v is not _ABSENT and not check(v):
            raise EventError(f"{name}: field {key!r} {_RULE_TEXT[check]}, got {_short(v)}")


# ------------------------------------------------------------------ the rules

MAX_STEP = 10**12  # far beyond any real run; a larger step is a garbled record
MAX_WORLD = 1 << 20
MAX_TIME = 1e11  # unix seconds (year ~5000)
MAX_COUNT = 1 << 62
_NUM = (float, int)
_ABSENT = object()


def _short(v: Any, limit: int = 40) -> str:
    """A value for an error message: repr, capped (a hostile log can hold anything)."""
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 1] + "…"


def _int_in(lo: int, hi: int) -> Any:
    def check(v: Any) -> bool:
        return v.__class__ is int and lo <= v <= hi

    _RULE_TEXT[check] = f"must be an integer in [{lo}, {hi}]"
    return check


def _opt(inner: Any) -> Any:
    def check(v: Any) -> bool:
        return v is None or inner(v)

    _RULE_TEXT[check] = f"{_RULE_TEXT[inner]} or null"
    return check


def _is_loss(v: Any) -> bool:
    return v.__class__ in _NUM or (v.__class__ is str and v in NONFINITE)


def _is_nonneg(v: Any) -> bool:
    return v.__class__ in _NUM and v >= 0 and v == v


def _is_str(v: Any) -> bool:
    return v.__class__ is str


def _is_bool(v: Any) -> bool:
    return v.__class__ is bool


def _is_str_list(v: Any) -> bool:
    return v.__class__ is list and all(x.__class__ is str for x in v)


def _is_str_dict(v: Any) -> bool:
    return v.__class__ is dict


def _is_int_list(v: Any) -> bool:
    return v.__class__ is list and all(x.__class__ is int and 0 <= x <= MAX_STEP for x in v)


def _is_loss_dict(v: Any) -> bool:
    # null: a non-finite value nested in an object, as writers before the fix encoded it.
    return v.__class__ is dict and all(x is None or _is_loss(x) for x in v.values())


_RULE_TEXT: dict[Any, str] = {
    _is_loss: "must be a number (or 'nan', 'inf', '-inf')",
    _is_nonneg: "must be a number >= 0",
    _is_str: "must be a string",
    _is_bool: "must be true or false",
    _is_str_list: "must be a list of strings",
    _is_str_dict: "must be an object",
    _is_int_list: "must be a list of steps",
    _is_loss_dict: "must be an object of numbers (or 'nan', 'inf', '-inf', null)",
}
_STEP_ANY = _int_in(0, MAX_STEP)
_STEP_POS = _int_in(1, MAX_STEP)
_COUNT = _int_in(0, MAX_COUNT)
_CHECKS: dict[str, tuple[tuple[str, Any], ...]] = {
    "run_start": (
        ("run_id", _is_str),
        ("pid", _int_in(0, 1 << 31)),
        ("config_path", _is_str),
        ("start_step", _STEP_ANY),
        ("target_step", _STEP_ANY),
        ("world_size", _int_in(1, MAX_WORLD)),
        ("device", _is_str),
        ("versions", _is_str_dict),
        ("resumed_from", _opt(_is_str)),
        ("run_name", _is_str),
        ("backend", _opt(_is_str)),
        ("rank_devices", _is_str_list),
        ("batch_size", _COUNT),
        ("segment_size", _COUNT),
        ("sample_rate", _COUNT),
        ("recon_loss", _is_str),
        ("log_every", _COUNT),
        ("val_every", _COUNT),
        ("checkpoint_every", _COUNT),
        ("milestone_every", _COUNT),
        ("precision", _is_str),
        ("branch", _is_str),
        ("parent_step", _opt(_STEP_ANY)),
        ("moved_aside", _opt(_is_str)),
        ("lr_g", _opt(_is_loss)),
        ("lr_d", _opt(_is_loss)),
    ),
    "recovery": (
        ("step", _STEP_ANY),
        ("from_step", _STEP_ANY),
        ("trigger", _is_str),
        ("checkpoint", _is_str),
        ("lr_g", _is_loss),
        ("lr_d", _is_loss),
        ("recoveries", _COUNT),
        ("max_recoveries", _COUNT),
        ("branch", _is_str),
        ("moved_aside", _opt(_is_str)),
    ),
    "step": (
        ("step", _STEP_POS),
        ("epoch", _COUNT),
        *((k, _is_loss) for k in LOSS_KEYS),
        ("recon", _is_str),
        ("lr_g", _is_loss),
        ("lr_d", _is_loss),
        ("step_time", _is_loss),
        ("samples_per_s", _is_loss),
        ("grad_norm_g", _opt(_is_loss)),
        ("grad_norm_d", _opt(_is_loss)),
    ),
    "val": (
        ("step", _STEP_ANY),
        ("losses", _is_loss_dict),
        ("samples", _is_str_list),
        ("duration", _is_nonneg),
        ("metrics", _is_loss_dict),
        ("set", _is_str),
        ("utterances", _COUNT),
        ("pictures", _is_str_list),
    ),
    "checkpoint": (
        ("step", _STEP_ANY),
        ("path", _is_str),
        ("bytes", _COUNT),
        ("sha256", _is_str),
        ("milestone", _is_bool),
        ("duration", _is_nonneg),
        ("best", _is_bool),
        ("metric", _opt(_is_str)),
        ("score", _opt(_is_loss)),
        ("best_steps", _is_int_list),
    ),
    "milestone": (("step", _STEP_ANY), ("name", _is_str), ("message", _is_str)),
    "alert": (
        ("kind", _is_str),
        ("step", _opt(_STEP_ANY)),
        ("message", _is_str),
        ("level", _is_str),
    ),
    "run_end": (
        ("step", _STEP_ANY),
        ("status", _is_str),
        ("reason", _is_str),
        ("exit_code", _int_in(-(1 << 16), 1 << 16)),
    ),
}


def parse_line(line: bytes | str) -> dict[str, Any]:
    """One line into a validated record; raises EventError naming what is wrong."""
    rec = loads(line)
    validate(rec)
    return rec


def line_error(line: bytes | str) -> str | None:
    """Why ``line`` is not a record (the message ``parse_line`` would raise), or None."""
    try:
        parse_line(line)
    except EventError as e:
        return str(e)
    return None


def parse_lines(
    lines: list[bytes], first_line: int = 1, name: str = EVENTS_FILE
) -> tuple[list[dict[str, Any]], int, str | None]:
    """The bulk path: complete lines -> (records, garbled count, last garbled sample).

    Accepts exactly what ``parse_line`` accepts; blank lines are skipped. The sample reads
    ``"<name> line N: why: text"`` (text capped at 120 bytes, undecodable bytes replaced).
    """
    fast = _orjson.loads if _orjson is not None else _json.loads
    out: list[dict[str, Any]] = []
    append = out.append
    bad = 0
    sample = None
    for i, line in enumerate(lines):
        try:
            rec = fast(line)
            if rec.__class__ is dict and rec.get(K_EVENT).__class__ is str:
                validate(rec)
                append(rec)
                continue
        except (ValueError, EventError, KeyError, TypeError):
            pass
        if not line.strip():
            continue  # blank lines are harmless
        bad += 1
        sample = f"{name} line {first_line + i}: {line_error(line) or 'not a record'}: " + (
            line[:120].decode("utf-8", "replace") if isinstance(line, bytes) else line[:120]
        )
    return out, bad, sample
