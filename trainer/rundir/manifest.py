"""Checkpoint manifests: the JSON record that makes a checkpoint complete, and its parser.

A manifest lists the checkpoint's files with their sizes and sha256, plus notes that the
torch-free side reads (lineage, the model config, validation scores, the ledger's note).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer.events.schema import METRIC_HIGHER_IS_BETTER
from trainer.rundir.layout import MANIFEST_FORMAT, ManifestError


@dataclass(frozen=True)
class ManifestFile:
    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ParentRef:
    """The checkpoint a branch was started from (step, its .pt sha256, its branch)."""

    step: int
    sha256: str | None
    branch: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "sha256": self.sha256, "branch": self.branch}


@dataclass(frozen=True)
class BestRecord:
    """The best-checkpoint ledger's note in a manifest (``checkpoint.best`` at save time).

    ``among``: the checkpoint entered the best ``keep`` when it was saved (it may drop out
    later; the ledger itself is always derived from the manifests on disk, see
    :func:`best_checkpoints`). ``since_best``: validations in a row worse than the best so
    far, for the overtraining alert to carry on across a resume from this checkpoint.
    """

    metric: str
    keep: int
    score: float | None
    among: bool
    since_best: int = 0
    best_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != math.inf


def _parse_validation(raw: Any) -> dict[str, dict[str, float]] | None:
    """``{set: {metric: value}}`` with finite numbers only; anything else is dropped.

    Lenient on purpose: these records are notes about a checkpoint, never a reason to
    refuse weights whose hash is fine.
    """
    if not isinstance(raw, dict):
        return None
    out: dict[str, dict[str, float]] = {}
    for name, metrics in list(raw.items())[:8]:
        if isinstance(name, str) and isinstance(metrics, dict):
            vals = {
                k: float(v)
                for k, v in list(metrics.items())[:32]
                if isinstance(k, str) and _finite_number(v)
            }
            if vals:
                out[name[:40]] = vals
    return out or None


def _parse_best(raw: Any) -> BestRecord | None:
    if not isinstance(raw, dict):
        return None
    metric, keep, score = raw.get("metric"), raw.get("keep"), raw.get("score")
    since, best_step = raw.get("since_best", 0), raw.get("best_step")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if metric not in METRIC_HIGHER_IS_BETTER or not is_int(keep) or keep < 1:
        return None
    return BestRecord(
        metric=metric,
        keep=keep,
        score=float(score) if _finite_number(score) else None,
        among=raw.get("among") is True,
        since_best=since if is_int(since) and since >= 0 else 0,
        best_step=best_step if is_int(best_step) else None,
    )


@dataclass(frozen=True)
class Manifest:
    step: int
    epoch: int
    created: float
    milestone: bool
    files: tuple[ManifestFile, ...]
    config_sha256: str | None = None
    format: int = MANIFEST_FORMAT
    # Lineage (optional; manifests written before branches existed lack both): the id of
    # the branch that wrote this checkpoint, and the checkpoint that branch started from
    # (None for a branch trained from step 0).
    branch: str | None = None
    parent: ParentRef | None = None
    # The model-defining part of the config (see model_config), so a checkpoint saved by a
    # different model configuration is named key by key without unpickling anything.
    model_config: dict[str, Any] | None = None
    # Validation at this step ({set: {metric: value}}; None: not validated at this step) and
    # the best-checkpoint ledger's note (None: no ledger configured). Optional, additive.
    validation: dict[str, dict[str, float]] | None = None
    best: BestRecord | None = None
    # Where an imported checkpoint came from (``nal-train import``): the format, the source
    # files with their sha256, the source's step, whether it held discriminators. Optional.
    imported: dict[str, Any] | None = None

    @property
    def generator_only(self) -> bool:
        """Imported without discriminators: they and the optimizer states are untrained."""
        return self.imported is not None and self.imported.get("generator_only") is True

    def to_json(self) -> str:
        d: dict[str, Any] = {
            "format": self.format,
            "step": self.step,
            "epoch": self.epoch,
            "created": self.created,
            "milestone": self.milestone,
            "files": [asdict(f) for f in self.files],
        }
        if self.config_sha256 is not None:
            d["config_sha256"] = self.config_sha256
        if self.branch is not None:
            d["branch"] = self.branch
            d["parent"] = self.parent.to_dict() if self.parent is not None else None
        if self.model_config is not None:
            d["model_config"] = self.model_config
        if self.validation:
            d["validation"] = self.validation
        if self.best is not None:
            d["best"] = self.best.to_dict()
        if self.imported is not None:
            d["imported"] = self.imported
        return json.dumps(d, indent=1, allow_nan=False) + "\n"


def _typed(d: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise ManifestError(f"{where}: missing field {key!r}")
    v = d[key]
    # bool is an int subclass; a manifest with "step": true is garbled, not step 1.
    if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ManifestError(f"{where}: field {key!r} has type bool")
    if not isinstance(v, types):
        raise ManifestError(f"{where}: field {key!r} has type {type(v).__name__}")
    return v


def parse_manifest(text: str | bytes, where: str = "manifest") -> Manifest:
    """Parse manifest JSON; raises ManifestError naming ``where`` and the bad field."""
    try:
        d = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ManifestError(f"{where}: not a JSON object")
    fmt = _typed(d, "format", int, where)
    if fmt != MANIFEST_FORMAT:
        raise ManifestError(f"{where}: format {fmt}, this version reads {MANIFEST_FORMAT}")
    raw_files = _typed(d, "files", list, where)
    if not raw_files:
        raise ManifestError(f"{where}: field 'files' is empty")
    files = []
    for i, rf in enumerate(raw_files):
        fw = f"{where}: files[{i}]"
        if not isinstance(rf, dict):
            raise ManifestError(f"{fw} is not an object")
        name = _typed(rf, "name", str, fw)
        # Names are plain file names inside checkpoints/; anything else could point outside.
        if not name or name != os.path.basename(name) or name in (".", ".."):
            raise ManifestError(f"{fw}: name {name!r} is not a plain file name")
        files.append(
            ManifestFile(name, _typed(rf, "bytes", int, fw), _typed(rf, "sha256", str, fw))
        )
    cfg = d.get("config_sha256")
    if cfg is not None and not isinstance(cfg, str):
        raise ManifestError(f"{where}: field 'config_sha256' has type {type(cfg).__name__}")
    branch = d.get("branch")
    if branch is not None and not isinstance(branch, str):
        raise ManifestError(f"{where}: field 'branch' has type {type(branch).__name__}")
    parent = None
    rp = d.get("parent")
    if rp is not None:
        pw = f"{where}: parent"
        if not isinstance(rp, dict):
            raise ManifestError(f"{pw} is not an object")
        p_sha, p_branch = rp.get("sha256"), rp.get("branch")
        if p_sha is not None and not isinstance(p_sha, str):
            raise ManifestError(f"{pw}: field 'sha256' has type {type(p_sha).__name__}")
        if p_branch is not None and not isinstance(p_branch, str):
            raise ManifestError(f"{pw}: field 'branch' has type {type(p_branch).__name__}")
        parent = ParentRef(_typed(rp, "step", int, pw), p_sha, p_branch)
    model_cfg = d.get("model_config")
    if model_cfg is not None and not isinstance(model_cfg, dict):
        raise ManifestError(f"{where}: field 'model_config' has type {type(model_cfg).__name__}")
    return Manifest(
        step=_typed(d, "step", int, where),
        epoch=_typed(d, "epoch", int, where),
        created=float(_typed(d, "created", (int, float), where)),
        milestone=_typed(d, "milestone", bool, where),
        files=tuple(files),
        config_sha256=cfg,
        format=fmt,
        branch=branch,
        parent=parent,
        model_config=model_cfg,
        validation=_parse_validation(d.get("validation")),
        best=_parse_best(d.get("best")),
        imported=d["imported"] if isinstance(d.get("imported"), dict) else None,
    )


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest file; ManifestError names the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ManifestError(f"{path}: cannot read manifest ({e.strerror or e})") from None
    return parse_manifest(data, where=str(path))
