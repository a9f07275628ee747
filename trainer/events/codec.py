"""One record to one JSON line and back; non-finite floats as the strings "nan", "inf", "-inf".

JSON has no NaN or Infinity: the writer encodes them as strings (inside objects and lists too)
and readers map them back with :func:`float_field`.
"""

from __future__ import annotations

import json as _json
import math
from collections.abc import Mapping
from typing import Any

from trainer.events.schema import K_EVENT, K_TIME, EventError

try:  # orjson parses ~4x faster; the stdlib fallback keeps the module dependency-free.
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _orjson = None


def nonfinite_as_strings(x: Any) -> Any:
    """JSON has no NaN/Infinity; write non-finite floats as strings the reader maps back
    (inside objects and lists too: a validation loss can be NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: nonfinite_as_strings(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [nonfinite_as_strings(v) for v in x]
    return x


NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode(record: Mapping[str, Any]) -> bytes:
    """One record as a JSON line (with the trailing newline)."""
    rec = {k: nonfinite_as_strings(v) for k, v in record.items()}
    if _orjson is not None:
        return _orjson.dumps(rec) + b"\n"
    return (_json.dumps(rec, separators=(",", ":"), allow_nan=False) + "\n").encode()


def loads(line: bytes | str) -> dict[str, Any]:
    """Parse one line into a record dict; raises EventError naming what is wrong."""
    try:
        rec = _orjson.loads(line) if _orjson is not None else _json.loads(line)
    except ValueError as e:
        raise EventError(f"not valid JSON: {e}") from None
    if not isinstance(rec, dict):
        raise EventError("not a JSON object")
    name = rec.get(K_EVENT)
    if not isinstance(name, str):
        raise EventError("no 'event' field")
    if not isinstance(rec.get(K_TIME), (int, float)):
        raise EventError(f"{name}: no numeric 't' field")
    return rec


def float_field(rec: Mapping[str, Any], key: str) -> float:
    """A loss-like field as float; the writer's 'nan'/'inf' strings map back to floats."""
    v = rec.get(key)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v in NONFINITE:
        return NONFINITE[v]
    return math.nan
