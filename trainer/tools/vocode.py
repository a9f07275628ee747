"""``nal-train vocode``: turn WAVs (copy synthesis) or ``.npy`` mels into audio with a trained run.

Its arguments are :mod:`trainer.tools.commands` (torch-free); this module runs the command.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainer.audio import write_wav
from trainer.config.build import to_dict
from trainer.config.locate import user_cache_dir
from trainer.events import schema as ev
from trainer.models.fast_generator import for_inference
from trainer.rundir.layout import CheckpointError, temp_path_for
from trainer.tools import export as ex
from trainer.tools import inference as inf
from trainer.tools.inference import fail, resolve_run_dir

WAV_SUFFIXES = (".wav",)
MEL_SUFFIXES = (".npy",)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given, directories as their WAV and .npy files (sorted, not recursive)."""
    files: list[Path] = []
    known = WAV_SUFFIXES + MEL_SUFFIXES
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in known)
            if not found:
                raise ValueError(f"{p}: directory holds no .wav or .npy files")
            files += found
        elif p.is_file():
            if p.suffix.lower() not in known:
                raise ValueError(f"{p}: not a .wav or .npy file")
            files.append(p)
        else:
            raise ValueError(f"{p}: no such file or directory")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems and stems[f.stem].resolve() != f.resolve():
            raise ValueError(f"{f} and {stems[f.stem]} would both be written as {f.stem}.wav")
        stems[f.stem] = f
    return list(dict.fromkeys(files))


class OnnxGenerator(torch.nn.Module):
    """The generator exported to ONNX, run by ONNX Runtime, behind the module interface
    ``inference.vocode`` takes (no parameters: fp32 on the CPU)."""

    def __init__(self, runner: Callable[[np.ndarray], np.ndarray]) -> None:
        super().__init__()
        self.runner = runner

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.runner(mel.contiguous().numpy())))


# Part of the cache key: bump when the exported graph changes for the same weights.
ONNX_GRAPH_VERSION = 3  # 2: the channels-last InferenceGenerator; 3: in-place ops, shared lrelu
PARITY_FRAMES = 256  # the start of the first input checks a cached or new export


def onnx_cache_path(loaded: inf.LoadedGenerator) -> Path | None:
    """Where the ONNX export of this checkpoint's generator is kept between runs (None when the
    checkpoint has no recorded hash to key it by)."""
    if not loaded.sha256:
        return None
    key = {
        "checkpoint": loaded.sha256,
        "generator": to_dict(loaded.cfg)["generator"],
        "n_mels": loaded.cfg.audio.n_mels,
        "torch": torch.__version__,
        "graph": ONNX_GRAPH_VERSION,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return user_cache_dir() / "onnx" / f"generator-{digest}.onnx"


def _export_to(generator: torch.nn.Module, mel: torch.Tensor, path: Path) -> None:
    """Export atomically: a half-written file never carries the cache's name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    tmp = tmp.with_name(tmp.name + ".onnx")  # the exporter looks at the suffix
    try:
        ex.export_onnx(for_inference(generator), mel[None, :, :64].float(), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def onnx_engine(
    loaded: inf.LoadedGenerator, mel: torch.Tensor, threads: int | None
) -> tuple[OnnxGenerator, float, str]:
    """The generator exported to ONNX and run by ONNX Runtime; its max abs difference from
    eager fp32 on the start of ``mel`` ``[n_mels, T]``; and where the export came from.

    The export is kept in the user cache (:func:`onnx_cache_path`) and reused while the
    checkpoint, config and torch are the same; a cached file that does not load or does not
    match eager is made again. Without a usable cache it goes to a temp file.
    """
    probe = mel[:, :PARITY_FRAMES].contiguous()
    path = onnx_cache_path(loaded)
    if path is not None and path.is_file():
        try:
            runner = ex.load_runner(path, "onnx", threads)
            (diff,) = ex.parity(loaded.generator, runner, [probe])
            if diff <= ex.PARITY_TOLERANCE:
                return OnnxGenerator(runner), diff, f"cached {path}"
        except Exception:  # noqa: BLE001 - a damaged cache entry is simply made again
            pass
        path.unlink(missing_ok=True)
    if path is not None:
        try:
            t0 = time.perf_counter()
            _export_to(loaded.generator, mel, path)
            runner = ex.load_runner(path, "onnx", threads)
            (diff,) = ex.parity(loaded.generator, runner, [probe])
            return (
                OnnxGenerator(runner),
                diff,
                f"exported in {time.perf_counter() - t0:.1f} s to {path}",
            )
        except OSError:  # the cache is not writable: a temp file serves this run
            pass
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nal-vocode-") as tmp:
        tmp_path = Path(tmp) / "generator.onnx"
        _export_to(loaded.generator, mel, tmp_path)
        runner = ex.load_runner(tmp_path, "onnx", threads)
    (diff,) = ex.parity(loaded.generator, runner, [probe])
    return OnnxGenerator(runner), diff, f"exported in {time.perf_counter() - t0:.1f} s (not cached)"


def run(args: argparse.Namespace) -> int:
    if args.batch < 1:
        return fail("--batch must be >= 1")
    if args.threads is not None and args.threads < 1:
        return fail("--threads must be >= 1")
    if args.chunk < 0:
        return fail("--chunk must be >= 0 (0: vocode each file whole)")
    onnx = getattr(args, "engine", "eager") == "onnx"
    if onnx:
        missing = ex.missing_packages("onnx")
        if missing:
            return fail(
                f"--engine onnx needs {', '.join(missing)} (not installed): "
                "pip install 'naudiolab[export]'"
            )
        if args.precision != "fp32" or args.device == "cuda":
            return fail("--engine onnx runs fp32 on the CPU (drop --precision/--device cuda)")
    try:
        run_dir = resolve_run_dir(args.run_dir, args.checkpoint)
        files = expand_inputs(args.inputs)
    except ValueError as e:
        return fail(str(e))
    out_dir: Path = args.out
    for f in files:
        if (out_dir / f"{f.stem}.wav").resolve() == f.resolve():
            return fail(f"{f}: the output would overwrite this input; choose another --out")

    t_load = time.perf_counter()
    try:
        device = inf.resolve_device("cpu" if onnx else args.device)
        threads = inf.set_threads(args.threads)
        loaded = inf.load_generator(run_dir, args.checkpoint, device)
        inf.cast_generator(loaded.generator, args.precision, device)
    except inf.InferenceError as e:
        return fail(str(e))
    except CheckpointError as e:
        return fail(str(e), ev.EXIT_NO_CHECKPOINT)
    cfg = loaded.cfg
    extractor = inf.MelExtractor(cfg, device)
    items: list[inf.MelInput] = []
    try:
        for f in files:
            if f.suffix.lower() in MEL_SUFFIXES:
                mel = inf.load_npy_mel(f, cfg.audio.n_mels)
            else:
                mel = extractor.from_wav(f)
            items.append(inf.MelInput(f.stem, f, mel))
    except inf.InferenceError as e:
        return fail(str(e))
    load_s = time.perf_counter() - t_load
    print(
        f"checkpoint {loaded.checkpoint.path} (step {loaded.step}, sha256 {loaded.sha256[:12]}); "
        f"{cfg.audio.sample_rate} Hz, device {device}, {args.precision}"
        + (f", {threads} threads" if device.type == "cpu" else "")
        + f"; loaded in {load_s:.2f} s"
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return fail(f"--out {out_dir}: cannot create ({e.strerror or e})", ev.EXIT_FAILED)
    generator: torch.nn.Module = loaded.generator
    if onnx:
        try:
            generator, diff, origin = onnx_engine(loaded, items[0].mel, threads)
        except Exception as e:  # noqa: BLE001 - an exporter failure is reported, not a traceback
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            return fail(
                f"--engine onnx: export failed: {type(e).__name__}: {first}", ev.EXIT_FAILED
            )
        print(
            f"engine onnx: {origin}; max abs difference from eager fp32 on "
            f"{items[0].source.name}: {diff:.3g}"
        )
        if not diff <= ex.PARITY_TOLERANCE:
            return fail(
                f"--engine onnx: max abs difference {diff:.3g} from eager fp32 exceeds "
                f"{ex.PARITY_TOLERANCE:g}; use --engine eager",
                ev.EXIT_FAILED,
            )
    elif device.type == "cpu":
        generator = for_inference(loaded.generator)  # same function, the CPU's fast layout
    sr, hop = cfg.audio.sample_rate, cfg.audio.hop_length
    t0 = time.perf_counter()
    context = inf.context_frames(cfg.generator)
    results = inf.vocode(
        generator, items, sr, hop, batch_size=args.batch, chunk=args.chunk, context=context
    )
    compute = sum(r.seconds for r in results)
    width = max(len(str(r.item.source)) for r in results)
    mode = _umask_mode()
    for r in results:
        target = out_dir / f"{r.item.name}.wav"
        try:
            write_wav(target, r.audio, sr)
            os.chmod(target, mode)  # write_wav's temp file is 0600; outputs follow the umask
        except OSError as e:
            return fail(f"{target}: cannot write ({e.strerror or e})", ev.EXIT_FAILED)
        print(
            f"{str(r.item.source):<{width}}  -> {target}  {r.duration:7.2f} s  "
            f"RTF {r.rtf:.4f} ({1 / r.rtf if r.rtf else float('inf'):.1f}x real time)"
        )
    wall = time.perf_counter() - t0
    audio_s = sum(r.duration for r in results)
    print(
        f"total: {len(results)} file(s), {audio_s:.2f} s of audio in {compute:.2f} s "
        f"(RTF {compute / audio_s:.4f}, {audio_s / compute:.1f}x real time; "
        f"{wall:.2f} s with writing), batch {args.batch}, engine {'onnx' if onnx else 'eager'}"
    )
    return ev.EXIT_OK
