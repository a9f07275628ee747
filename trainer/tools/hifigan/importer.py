"""``nal-train import --format hifigan``: the reference trainer's ``g_``/``do_`` files and its
config.json become a run directory of ours (resolved config.yaml, one verified checkpoint).

Every check happens before anything is written; the run directory is built in a hidden
temporary directory beside it and renamed into place at the end, so a refusal or a crash
leaves no half-made run. Files are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer.checkpointing import lineage
from trainer.checkpointing.format import K_DISCRIMINATORS, K_GENERATOR, Position, build_state
from trainer.checkpointing.loadtest import LoadTest, model_shapes, safe_load
from trainer.checkpointing.store import save_checkpoint
from trainer.config.build import from_dict, to_dict
from trainer.config.schema import Config, ConfigError
from trainer.config.yamlfile import dump
from trainer.events import schema as ev
from trainer.rundir.checkpoints import checkpoint_info
from trainer.rundir.layout import CONFIG_FILE, CheckpointError, atomic_write_text, sha256_file
from trainer.tools.hifigan import reference as ref
from trainer.tools.hifigan.reference import InteropError
from trainer.train import distributed as dist_mod
from trainer.train.startup import build_nets, resolve_precision, seed_everything

log = logging.getLogger("nal-train")

Shapes = dict[str, tuple[int, ...]]


@dataclass
class Imported:
    """What an import wrote."""

    run_dir: Path
    checkpoint: Path
    step: int
    generator_only: bool
    warnings: list[str] = field(default_factory=list)


def _shape(v: Any) -> list[int] | str:
    return list(v.shape) if isinstance(v, torch.Tensor) else f"a {type(v).__name__}"


def check_state_dict(sd: Any, expected: Shapes, src: str, what: str) -> None:
    """``sd`` has exactly the reference keys ``expected`` with their shapes (one line if not)."""
    if not isinstance(sd, dict):
        raise InteropError(f"{src}: its '{what}' is a {type(sd).__name__}, not a state dict")
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected]
    more = len(missing) + len(extra)
    for k, want in expected.items():
        if k in sd and (not isinstance(sd[k], torch.Tensor) or tuple(sd[k].shape) != want):
            raise InteropError(
                f"{src}: '{what}' key {lineage.clean_text(k)} has shape {_shape(sd[k])} in the "
                f"file, {list(want)} for the config"
                + (f" (and {more} key(s) missing or extra)" if more else "")
            )
    if missing:
        raise InteropError(
            f"{src}: '{what}' lacks key {missing[0]} (shape {list(expected[missing[0]])} for the "
            f"config; {len(missing)} missing, {len(extra)} extra)"
        )
    if extra:
        k = extra[0]
        raise InteropError(
            f"{src}: '{what}' has key {lineage.clean_text(k)} (shape {_shape(sd[k])}) that the "
            f"config's model lacks ({len(extra)} extra): another architecture?"
        )


def _load(path: Path, role: str) -> Any:
    if not path.is_file():
        raise InteropError(f"{path}: no such file ({role})")
    try:
        return safe_load(path)  # torch.load(weights_only=True)
    except CheckpointError as e:
        raise InteropError(f"{path}: {e}") from None


def _expect_keys(state: Any, path: Path, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(state, dict):
        raise InteropError(
            f"{path}: holds a {type(state).__name__}, not the reference's {what} dict"
        )
    if "format" in state and K_GENERATOR in state and K_DISCRIMINATORS in state:
        raise InteropError(
            f"{path}: is a nal-train checkpoint, not a reference file: use it directly "
            f"(--init-from, --resume)"
        )
    missing = [k for k in keys if k not in state]
    if missing:
        seen = ", ".join(lineage.clean_text(str(k), 40) for k in list(state)[:4])
        raise InteropError(
            f"{path}: lacks the key '{missing[0]}' of the reference's {what} "
            f"(it holds: {seen or 'nothing'})"
        )
    return state


def _int_field(state: dict[str, Any], key: str, path: Path) -> int:
    v = state[key]
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        v = v.item()
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise InteropError(f"{path}: '{key}' is {lineage.short_value(v)}, not a count")
    return v


def _optimizer_state(
    osd: Any, names: list[str], shapes: Shapes, path: Path, what: str
) -> dict[str, Any]:
    """The reference optimizer's state dict re-indexed for our parameter order.

    ``names``: the reference's parameter order, as our names; the saved state's index i
    belongs to ``names[i]``.
    """
    if not isinstance(osd, dict) or not isinstance(osd.get("param_groups"), list):
        raise InteropError(f"{path}: its '{what}' is not an optimizer state dict")
    groups, state = osd["param_groups"], osd.get("state", {})
    if len(groups) != 1 or not isinstance(groups[0], dict):
        raise InteropError(f"{path}: its '{what}' has {len(groups)} parameter groups, not 1")
    ids = groups[0].get("params")
    if not isinstance(ids, list) or len(ids) != len(names):
        n = len(ids) if isinstance(ids, list) else "no"
        raise InteropError(
            f"{path}: its '{what}' holds {n} parameters, the config's model {len(names)}"
        )
    ours = {n: j for j, n in enumerate(shapes)}  # our parameter order
    new_state: dict[int, Any] = {}
    for i, pid in enumerate(ids):
        name = names[i]
        entry = state.get(pid)
        if entry is None:
            continue  # never stepped
        for moment in ("exp_avg", "exp_avg_sq"):
            t = entry.get(moment) if isinstance(entry, dict) else None
            if t is None or tuple(getattr(t, "shape", ())) != shapes[name]:
                raise InteropError(
                    f"{path}: '{what}' {moment} of parameter {i} ({ref.reference_name(name)}) "
                    f"has shape {_shape(t)} in the file, {list(shapes[name])} for the config"
                )
        new_state[ours[name]] = entry
    group = dict(groups[0], params=list(range(len(names))))
    return {"state": new_state, "param_groups": [group]}


def _sources(paths: list[tuple[str, Path]]) -> list[dict[str, Any]]:
    out = []
    for role, p in paths:
        size, sha = sha256_file(p)
        out.append({"role": role, "path": str(p.resolve()), "bytes": size, "sha256": sha})
    return out


def _target_dir(run_dir: Path) -> None:
    if run_dir.is_symlink() or (run_dir.exists() and not run_dir.is_dir()):
        raise InteropError(f"--run-dir {run_dir}: exists and is not a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise InteropError(
            f"--run-dir {run_dir}: already holds files; import into a new run directory"
        )


def import_hifigan(
    config_path: Path, g_path: Path, do_path: Path | None, run_dir: Path
) -> Imported:
    """Check everything, then write ``run_dir`` (renamed into place at the end)."""
    _target_dir(run_dir)
    data = ref.read_config(config_path)
    sections, warnings = ref.translate_config(data, str(config_path))
    name = run_dir.name if run_dir.name not in ("", ".", "..") else "hifigan"
    sections["name"] = name
    try:
        cfg = from_dict(sections, src=f"{config_path} (translated)")
    except ConfigError as e:
        raise InteropError(str(e)) from None
    do_state = None
    if do_path is not None:
        do_state = _expect_keys(_load(do_path, "DO_FILE"), do_path, ref.DO_KEYS, "do_ file")
        widths = ref.discriminator_widths(do_state[ref.REF_MPD], do_state[ref.REF_MSD])
        if widths != {k: ref.REFERENCE_DISCRIMINATOR[k] for k in widths}:
            warnings.append(
                f"{do_path}: discriminator widths {widths} differ from the reference's "
                f"(a fork's?); the run uses the file's"
            )
            sections["discriminator"].update(widths)
            try:
                cfg = from_dict(sections, src=f"{config_path} (translated)")
            except ConfigError as e:
                raise InteropError(str(e)) from None
    shapes = model_shapes(cfg)
    g_names = ref.reference_names(list(shapes[K_GENERATOR]))
    g_expected = {r: shapes[K_GENERATOR][o] for r, o in g_names.items()}
    g_state = _expect_keys(_load(g_path, "G_FILE"), g_path, (ref.REF_GENERATOR,), "g_ file")
    check_state_dict(g_state[ref.REF_GENERATOR], g_expected, str(g_path), ref.REF_GENERATOR)
    d_shapes = shapes[K_DISCRIMINATORS]
    if do_state is not None:
        for part in (ref.REF_MPD, ref.REF_MSD):
            ours = {k[len(part) + 1 :]: s for k, s in d_shapes.items() if k.startswith(part + ".")}
            expected = {r: ours[o] for r, o in ref.reference_names(list(ours)).items()}
            check_state_dict(do_state[part], expected, str(do_path), part)
    seed_everything(cfg.train.seed)
    device = torch.device("cpu")
    precision = resolve_precision(cfg, device)
    nets, _ = build_nets(cfg, device, precision, dist_mod.DistInfo())
    g_sd = {g_names[k]: v for k, v in g_state[ref.REF_GENERATOR].items()}
    nets.g_raw.load_state_dict(g_sd)
    pos = Position()
    if do_state is not None:
        d_sd = {}
        for part in (ref.REF_MPD, ref.REF_MSD):
            sub = {k[len(part) + 1 :] for k in d_shapes if k.startswith(part + ".")}
            names = ref.reference_names(sorted(sub))
            d_sd.update({f"{part}.{names[k]}": v for k, v in do_state[part].items()})
        nets.d_raw.load_state_dict(d_sd)
        steps = _int_field(do_state, ref.REF_STEPS, do_path)  # type: ignore[arg-type]
        epoch = _int_field(do_state, ref.REF_EPOCH, do_path)  # type: ignore[arg-type]
        _load_optimizers(nets, do_state, do_path, shapes)  # type: ignore[arg-type]
        for sched, opt in ((nets.sched_g, nets.opt_g), (nets.sched_d, nets.opt_d)):
            # The reference's scheduler steps once per finished epoch: ``epoch`` of them,
            # from ``initial_lr`` down to the saved ``lr``, which carries on unchanged.
            sd = sched.state_dict()
            sd.update(
                base_lrs=[g.get("initial_lr", g["lr"]) for g in opt.param_groups],
                last_epoch=epoch,
                _last_lr=[g["lr"] for g in opt.param_groups],
                _step_count=epoch + 1,
            )
            sched.load_state_dict(sd)
        # The reference saves mid-epoch without the batch position: the epoch restarts.
        pos = Position(step=steps, epoch=epoch, batch_in_epoch=0)
    default_target = cfg.train.max_steps
    target = default_target if pos.step < default_target else pos.step + default_target
    if target != cfg.train.max_steps:
        sections.setdefault("train", {})["max_steps"] = target
        cfg = from_dict(sections, src=f"{config_path} (translated)")
    roles = [("config", config_path), ("generator", g_path)]
    if do_path is not None:
        roles.append(("discriminators", do_path))
    note = {
        "format": ref.FORMAT_NAME,
        "generator_only": do_state is None,
        "sources": _sources(roles),
        "steps": pos.step if do_state is not None else None,
        "epoch": pos.epoch if do_state is not None else None,
        "unused_config_keys": [k for k in data if k not in _used_keys()],
    }
    state = build_state(
        nets,
        precision.scaler,
        pos,
        config=to_dict(cfg),
        world_size=1,
        target_step=cfg.train.max_steps,
    )
    return _write(run_dir, cfg, state, pos, note, warnings)


def _used_keys() -> set[str]:
    return set(ref.ARCH_KEYS) | set(ref.TRAINING_KEYS) | set(ref.BETA_KEYS)


def _load_optimizers(nets: Any, do_state: dict[str, Any], path: Path, shapes: Any) -> None:
    g_params = dict(nets.g_raw.named_parameters())
    d_params = dict(nets.d_raw.named_parameters())
    g_shapes = {n: tuple(p.shape) for n, p in g_params.items()}
    d_shapes = {n: tuple(p.shape) for n, p in d_params.items()}
    # The reference's optim_d runs over itertools.chain(msd.parameters(), mpd.parameters()).
    d_order = [n for n in d_params if n.startswith(ref.REF_MSD + ".")] + [
        n for n in d_params if n.startswith(ref.REF_MPD + ".")
    ]
    pairs = (
        (nets.opt_g, ref.REF_OPTIM_G, list(g_params), g_shapes),
        (nets.opt_d, ref.REF_OPTIM_D, d_order, d_shapes),
    )
    for opt, key, order, pshapes in pairs:
        osd = _optimizer_state(do_state[key], order, pshapes, path, key)
        ours = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
        try:
            opt.load_state_dict(osd)
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise InteropError(
                f"{path}: its '{key}' does not load ({lineage.clean_text(str(e), 120)})"
            ) from None
        for group in opt.param_groups:
            # The moments, rates and step counts are the reference's; how the update runs
            # (fused, foreach, ...) stays what this trainer would choose.
            for flag in ("fused", "foreach", "capturable", "differentiable", "maximize"):
                if flag in ours:
                    group[flag] = ours[flag]


def _write(
    run_dir: Path,
    cfg: Config,
    state: dict[str, Any],
    pos: Position,
    note: dict[str, Any],
    warnings: list[str],
) -> Imported:
    parent = run_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{run_dir.name}.import-{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    try:
        atomic_write_text(tmp / CONFIG_FILE, dump(cfg))
        model_cfg = lineage.model_config(to_dict(cfg))
        info = save_checkpoint(
            tmp,
            pos.step,
            pos.epoch,
            state,
            milestone=True,  # the imported weights are kept forever, whatever retention says
            config_sha256=lineage.config_digest(model_cfg),
            branch=lineage.new_branch_id(),
            parent=None,
            model_config=model_cfg,
            imported=note,
        )
        ok, reason = LoadTest(cfg)(checkpoint_info(info.path))
        if not ok:  # pragma: no cover - what was just built must pass the trainer's own test
            raise InteropError(f"the imported checkpoint fails the load test: {reason}")
        if run_dir.is_dir():
            run_dir.rmdir()  # checked empty above
        os.rename(tmp, run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pt = run_dir / info.path.relative_to(tmp)
    return Imported(run_dir, pt, pos.step, note["generator_only"], warnings)


def run(args: argparse.Namespace) -> int:
    """The command: one line per warning, then what was written; one line and exit 2 on a
    refusal (nothing written)."""
    try:
        with torch.no_grad():
            result = import_hifigan(args.config, args.g_file, args.do_file, args.run_dir)
    except (InteropError, CheckpointError) as e:
        print(f"nal-train import: {e}; nothing written", file=sys.stderr)
        return ev.EXIT_USAGE
    for w in result.warnings:
        print(f"nal-train import: warning: {w}", file=sys.stderr)
    what = (
        "generator only (fine-tune with --init-from CKPT --init-from-generator-only)"
        if result.generator_only
        else f"generator, discriminators and optimizer states at step {result.step}"
    )
    print(f"imported {what}: {result.checkpoint} (verified), config {result.run_dir / CONFIG_FILE}")
    return ev.EXIT_OK
