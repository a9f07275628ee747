"""``nal-train export --format hifigan``: a checkpoint of ours as the reference trainer's files.

``DIR/g_XXXXXXXX`` = ``{"generator": state_dict}`` with weight norm kept (what its
``inference.py`` and the TTS toolkits that take its checkpoints load), ``DIR/config.json``
beside it (an existing different one is never overwritten) and, with
``--with-discriminators``, ``DIR/do_XXXXXXXX`` (mpd, msd, optim_g, optim_d, steps, epoch) so
the run can continue in the reference trainer. Importing the files back gives the same
tensors bit for bit.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

import torch

from trainer.checkpointing.format import (
    K_DISCRIMINATORS,
    K_EPOCH,
    K_GENERATOR,
    K_OPT_D,
    K_OPT_G,
    format_problem,
    saved_step,
    weights,
)
from trainer.checkpointing.loadtest import safe_load
from trainer.config.build import to_dict
from trainer.events import schema as ev
from trainer.models import build_models
from trainer.rundir.layout import CheckpointError, atomic_write_bytes, atomic_write_text
from trainer.tools import inference as inf
from trainer.tools.hifigan import reference as ref
from trainer.tools.hifigan.reference import InteropError

# What a plain torch.optim.AdamW (the reference's) has for the flags ours sets for speed.
_PLAIN_ADAMW_FLAGS = {"fused": None, "foreach": None, "capturable": False, "differentiable": False}


def _reference_weights(sd: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Our state dict (or its ``prefix``ed part) under the reference's names."""
    names = ref.reference_names([k[len(prefix) :] for k in sd if k.startswith(prefix)])
    return {r: sd[prefix + o] for r, o in names.items()}


def _reference_optimizer(osd: dict[str, Any], order: list[int]) -> dict[str, Any]:
    """Our optimizer state re-indexed for the reference's parameter order (``order[i]``:
    our index of the reference's parameter i), with a plain AdamW's flags."""
    state = osd["state"]
    group = dict(osd["param_groups"][0], **_PLAIN_ADAMW_FLAGS)
    group["params"] = list(range(len(order)))
    return {
        "state": {i: state[j] for i, j in enumerate(order) if j in state},
        "param_groups": [group],
    }


def _param_orders(cfg: Any) -> tuple[list[int], list[int]]:
    """For optim_g and optim_d: our parameter index of each of the reference's parameters.

    The generator's order is the same; the reference's optim_d runs over
    ``chain(msd.parameters(), mpd.parameters())``, ours over mpd's, then msd's.
    """
    with torch.device("meta"):  # names and order only, no memory
        g, d = build_models(cfg)
    names = [n for n, _ in d.named_parameters()]
    index = {n: j for j, n in enumerate(names)}
    ref_order = [n for p in (ref.REF_MSD, ref.REF_MPD) for n in names if n.startswith(p + ".")]
    return list(range(sum(1 for _ in g.parameters()))), [index[n] for n in ref_order]


def _config_json(out_dir: Path, cfg_json: dict[str, Any]) -> bool:
    """True when config.json must be written; InteropError when a different one exists."""
    path = out_dir / ref.CONFIG_JSON
    if not path.exists():
        return True
    existing = ref.read_config(path)
    if existing == json.loads(json.dumps(cfg_json)):
        return False
    keys = sorted(existing.keys() | cfg_json.keys())
    # A value that differs says more than a key one side lacks: name it first.
    both = [k for k in keys if k in existing and k in cfg_json and existing[k] != cfg_json[k]]
    diff = (both or [k for k in keys if existing.get(k) != cfg_json.get(k)] or ["?"])[0]
    raise InteropError(
        f"{path} exists and differs (key '{diff}': {ref._show(existing.get(diff, '(absent)'))} "
        f"there, {ref._show(cfg_json.get(diff, '(absent)'))} for this run); choose another --out "
        f"directory"
    )


def _bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def export_hifigan(
    run_dir: Path, which: str, out: Path, with_discriminators: bool
) -> tuple[list[Path], list[str]]:
    """Write the reference's files for checkpoint ``which``; returns them and the warnings."""
    if not out.name.startswith(ref.G_PREFIX) or len(out.name) <= len(ref.G_PREFIX):
        raise InteropError(
            f"--out {out}: name the generator file g_XXXXXXXX (the reference trainer looks for "
            f"g_* and do_* beside config.json), e.g. {out / 'g_00500000'}"
        )
    cfg = inf.load_run_config(run_dir)
    info = inf.resolve_checkpoint(run_dir, which)  # hashed against its manifest
    state = safe_load(info.path)  # weights_only=True
    problem = format_problem(state)
    if problem:
        raise InteropError(f"{info.path}: {problem}")
    cfg_dict = to_dict(cfg)
    cfg_json, warnings = ref.reference_config(cfg_dict)
    do_out = out.with_name(ref.DO_PREFIX + out.name[len(ref.G_PREFIX) :])
    if with_discriminators:
        problem = ref.discriminator_problem(cfg_dict)
        if problem:
            warnings.append(problem)
    out_dir = out.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    write_config = _config_json(out_dir, cfg_json)
    files = [(out, {ref.REF_GENERATOR: _reference_weights(weights(state, K_GENERATOR))})]
    if with_discriminators:
        d = weights(state, K_DISCRIMINATORS)
        g_order, d_order = _param_orders(cfg)
        opt_g, opt_d = state[K_OPT_G], state[K_OPT_D]
        do = {
            ref.REF_MPD: _reference_weights(d, ref.REF_MPD + "."),
            ref.REF_MSD: _reference_weights(d, ref.REF_MSD + "."),
            ref.REF_OPTIM_G: _reference_optimizer(opt_g, g_order),
            ref.REF_OPTIM_D: _reference_optimizer(opt_d, d_order),
            ref.REF_STEPS: int(saved_step(state)),
            ref.REF_EPOCH: int(state[K_EPOCH]),
        }
        files.append((do_out, do))
    written = []
    for path, obj in files:
        atomic_write_bytes(path, _bytes(obj))
        written.append(path)
    if write_config:
        atomic_write_text(out_dir / ref.CONFIG_JSON, json.dumps(cfg_json, indent=4) + "\n")
        written.append(out_dir / ref.CONFIG_JSON)
    return written, warnings


def run(args: argparse.Namespace) -> int:
    if args.opset is not None or args.input is not None:
        return inf.fail("--opset and --input apply to --format onnx/torchscript, not hifigan")
    try:
        run_dir = inf.resolve_run_dir(args.run_dir, args.checkpoint)
        written, warnings = export_hifigan(
            run_dir, args.checkpoint, args.out, args.with_discriminators
        )
    except (ValueError, InteropError) as e:
        return inf.fail(f"{e}; nothing written")
    except CheckpointError as e:
        return inf.fail(str(e), ev.EXIT_NO_CHECKPOINT)
    for w in warnings:
        print(f"nal-train export: warning: {w}", file=sys.stderr)
    for p in written:
        print(f"wrote {p}")
    return ev.EXIT_OK
