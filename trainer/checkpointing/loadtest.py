"""The full load test: what makes a file a checkpoint this trainer can resume or start from.

Hash (against the manifest), ``torch.load(weights_only=True)``, the training state's format
and keys, and the model config and tensor shapes against the config in use. Every refusal is
one line naming why; nothing is half-loaded.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trainer.checkpointing import lineage
from trainer.checkpointing.format import (
    K_DISCRIMINATORS,
    K_GENERATOR,
    WEIGHT_PARTS,
    format_problem,
    missing_keys,
    saved_config,
    saved_step,
)
from trainer.config.build import to_dict
from trainer.models import build_models
from trainer.rundir.checkpoints import CheckpointInfo, checkpoint_info, verify_checkpoint
from trainer.rundir.layout import CheckpointError, ManifestError
from trainer.rundir.manifest import read_manifest

if TYPE_CHECKING:
    from trainer.config.schema import Config


_GLOBAL_RE = re.compile(r"GLOBAL ([A-Za-z_][\w.]{0,80})")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _first_line(e: BaseException, limit: int = 160) -> str:
    text = str(e).strip().splitlines()
    line = _CONTROL_RE.sub("?", text[0] if text else type(e).__name__)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _load_error(e: BaseException) -> str:
    """One line saying why torch.load(weights_only=True) refused a file (no torch advice)."""
    text = str(e)
    m = _GLOBAL_RE.search(text)
    if m is not None:
        return (
            f"it holds pickled Python objects or code ({m.group(1)}) that the safe loader "
            f"(weights_only=True) refuses; a training checkpoint holds only tensors and "
            f"plain values"
        )
    if isinstance(e, pickle.UnpicklingError) or "weights only load failed" in text.lower():
        # torch's message is advice around one line of substance, after this marker.
        after = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler" in text else ""
        detail = next((ln.strip() for ln in after.splitlines() if ln.strip()), "unreadable")
        return f"not a readable torch checkpoint (the safe loader stopped at: {lineage.clean_text(detail, 120)})"
    return f"not a readable torch checkpoint ({type(e).__name__}: {_first_line(e)})"


def safe_load(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """torch.load with weights_only=True; CheckpointError with a one-line reason otherwise."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - every failure becomes one line naming the file
        raise CheckpointError(_load_error(e)) from None


def probe_orphan(pt: Path) -> str:
    """What a manifest-less .pt holds, by a weights_only load (nothing is unpickled unsafely)."""
    try:
        state = torch.load(pt, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - described, never raised
        return f"it does not load: {_load_error(e)}"
    step = saved_step(state) if isinstance(state, dict) else None
    if isinstance(step, int) and not isinstance(step, bool):
        return f"it loads (a training state of step {step}) but cannot be verified without it"
    return "it loads but holds no training state"


def model_shapes(cfg: Config) -> dict[str, dict[str, tuple[int, ...]]]:
    """Parameter and buffer shapes of the config's models, built on the meta device (no memory)."""
    with torch.device("meta"):
        g, d = build_models(cfg)
    return {
        K_GENERATOR: {k: tuple(v.shape) for k, v in g.state_dict().items()},
        K_DISCRIMINATORS: {k: tuple(v.shape) for k, v in d.state_dict().items()},
    }


def _shape_problem(part: str, sd: Any, expected: dict[str, tuple[int, ...]]) -> str | None:
    if not isinstance(sd, dict):
        return f"its {part} is a {type(sd).__name__}, not a state dict"
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected]
    wrong = [
        (k, tuple(sd[k].shape) if isinstance(sd[k], torch.Tensor) else None, shape)
        for k, shape in expected.items()
        if k in sd and (not isinstance(sd[k], torch.Tensor) or tuple(sd[k].shape) != shape)
    ]
    if not (missing or extra or wrong):
        return None
    parts = []
    if wrong:
        k, got, want = wrong[0]
        got_s = list(got) if got is not None else "not a tensor"
        parts.append(
            f"{len(wrong)} tensor(s) of another shape (e.g. {k}: {got_s} in the checkpoint, "
            f"{list(want)} for this config)"
        )
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {lineage.clean_text(extra[0])})")
    return f"its {part} does not fit this config's model: " + ", ".join(parts)


def check_state(
    state: Any,
    step: int,
    model_cfg: dict[str, Any] | None = None,
    shapes: dict[str, dict[str, tuple[int, ...]]] | None = None,
) -> str | None:
    """Why a loaded training state cannot be resumed (format, keys, step, config, shapes)."""
    problem = format_problem(state)
    if problem:
        return problem
    missing = missing_keys(state)
    if missing:
        return f"it lacks the key(s) {', '.join(missing)}"
    if saved_step(state) != step:
        return f"it holds step {lineage.short_value(saved_step(state))} but is named step {step}"
    saved_cfg = saved_config(state)
    if model_cfg is not None and saved_cfg is not None:
        problem = config_mismatch(lineage.model_config(saved_cfg), model_cfg)
        if problem:
            return problem
    if shapes is not None:
        for part in WEIGHT_PARTS:
            problem = _shape_problem(part, state[part], shapes[part])
            if problem:
                return problem
    return None


def config_mismatch(saved: dict[str, Any], current: dict[str, Any], limit: int = 4) -> str | None:
    """'saved with a different model configuration: key: a in the checkpoint, b now; ...'."""
    diffs = lineage.config_differences(saved, current)
    if not diffs:
        return None
    more = f"; and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return "saved with a different model configuration: " + "; ".join(diffs[:limit]) + more


class LoadTest:
    """The full load test, usable as a ``rundir`` verifier: hash, weights_only load, format,
    keys, and the model config and shapes against ``cfg`` (skipped when ``cfg`` is None).

    The state of the last checkpoint that passed is kept in ``passed`` so the caller never
    loads it twice.

    ``parts`` (for ``nal-train train --init-from``, see ``format.init_parts``): only these
    keys are needed, e.g. the generator's; the optimizer, schedule and step keys are not,
    and model-config keys that differ without changing a shape are noted in ``notes``
    instead of refused.
    """

    def __init__(self, cfg: Config | None, parts: tuple[str, ...] | None = None) -> None:
        self.cfg = cfg
        self.model_cfg = lineage.model_config(to_dict(cfg)) if cfg else None
        self.parts = parts
        self.notes: list[str] = []
        self._shapes: dict[str, dict[str, tuple[int, ...]]] | None = None
        self.passed: tuple[CheckpointInfo, dict[str, Any]] | None = None

    def shapes(self) -> dict[str, dict[str, tuple[int, ...]]] | None:
        if self._shapes is None and self.cfg is not None:
            self._shapes = model_shapes(self.cfg)
        return self._shapes

    def __call__(self, info: CheckpointInfo) -> tuple[bool, str]:
        self.passed = None
        ok, reason = verify_checkpoint(info)
        if not ok:
            return ok, reason
        if self.parts is not None:
            return self._init_test(info)
        if self.model_cfg is not None:
            # Cheap first: the manifest's copy of the model config, nothing unpickled.
            try:
                saved = read_manifest(info.manifest_path).model_config
            except ManifestError as e:
                return False, str(e)
            problem = config_mismatch(saved, self.model_cfg) if saved is not None else None
            if problem:
                return False, problem
        try:
            state = safe_load(info.path)
        except CheckpointError as e:
            return False, str(e)
        problem = check_state(state, info.step, self.model_cfg, self.shapes())
        if problem:
            return False, problem
        self.passed = (info, state)
        return True, "ok"

    def _init_test(self, info: CheckpointInfo) -> tuple[bool, str]:
        """Weights to start another run from: format, the wanted parts, their shapes."""
        assert self.parts is not None
        try:
            state = safe_load(info.path)
        except CheckpointError as e:
            return False, str(e)
        problem = format_problem(state)
        if problem:
            return False, problem
        shapes = self.shapes()
        for part in self.parts:
            if part not in state:
                return False, f"it holds no {part} weights"
            if shapes is not None and part in shapes:  # optimizer states: no shapes here
                problem = _shape_problem(part, state[part], shapes[part])
                if problem:
                    return False, problem
        saved = saved_config(state)
        self.notes = []
        if self.model_cfg is not None and saved is not None:
            diffs = lineage.config_differences(lineage.model_config(saved), self.model_cfg)
            # Only the sections of the parts taken matter (no discriminator: its keys don't).
            skip = () if K_DISCRIMINATORS in self.parts else ("discriminator.",)
            self.notes = [d for d in diffs if not d.startswith(skip)]
        self.passed = (info, state)
        return True, "ok"


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Verify ``path`` against its manifest, then torch.load it with weights_only=True."""
    info = checkpoint_info(path)
    ok, reason = verify_checkpoint(info)
    if not ok:
        raise CheckpointError(f"checkpoint {info.path} is not usable: {reason}")
    try:
        state = safe_load(info.path, map_location=map_location)
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {info.path} cannot be loaded: {e}") from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {info.path} holds a {type(state).__name__}, expected a dict"
        )
    return state
