"""RNG states for exact resume: Python, numpy, torch CPU (and CUDA when in use), captured
as plain values and tensors so the checkpoint stays ``weights_only``-loadable."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from trainer.rundir.layout import CheckpointError


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU (and CUDA when in use) RNG states, weights_only-loadable."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {
            "version": py_version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    # Only when CUDA is in use: querying it otherwise would create a CUDA context.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _rng_part(d: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise CheckpointError(f"rng state: missing {key!r}")
    if not isinstance(d[key], kind):
        raise CheckpointError(f"rng state: {key!r} has type {type(d[key]).__name__}")
    return d[key]


def restore_rng_state(d: dict[str, Any]) -> list[str]:
    """Restore what :func:`capture_rng_state` captured; returns notes on what was not."""
    notes: list[str] = []
    py = _rng_part(d, "python", dict)
    py_state = _rng_part(py, "state", torch.Tensor)
    random.setstate(
        (
            int(_rng_part(py, "version", int)),
            tuple(int(x) for x in py_state.tolist()),
            py.get("gauss_next"),
        )
    )
    npd = _rng_part(d, "numpy", dict)
    np.random.set_state(
        {
            "bit_generator": _rng_part(npd, "bit_generator", str),
            "state": {
                "key": _rng_part(npd, "key", torch.Tensor).numpy().astype(np.uint32),
                "pos": int(_rng_part(npd, "pos", int)),
            },
            "has_gauss": int(_rng_part(npd, "has_gauss", int)),
            "gauss": float(_rng_part(npd, "gauss", (int, float))),
        }
    )
    torch.set_rng_state(_rng_part(d, "torch", torch.Tensor).to("cpu", torch.uint8))
    cuda = d.get("cuda")
    if cuda:
        if not torch.cuda.is_available():
            notes.append(f"CUDA RNG state for {len(cuda)} device(s) not restored: no CUDA here")
        else:
            n = min(len(cuda), torch.cuda.device_count())
            for i in range(n):
                torch.cuda.set_rng_state(cuda[i].to("cpu", torch.uint8), i)
            if n < len(cuda):
                notes.append(f"CUDA RNG state restored for {n} of {len(cuda)} device(s)")
    return notes
