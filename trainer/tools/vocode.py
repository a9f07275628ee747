"""``nal-train vocode``: turn WAVs (copy synthesis) or ``.npy`` mels into audio with a trained run.

Its arguments are :mod:`trainer.tools.commands` (torch-free); this module runs the command.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainer.audio import write_wav
from trainer.events import schema as ev
from trainer.rundir.layout import CheckpointError
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


def onnx_engine(
    generator: torch.nn.Module, mel: torch.Tensor, threads: int | None
) -> tuple[OnnxGenerator, float]:
    """``generator`` exported to ONNX (a temp file, gone once the session holds it) and run
    by ONNX Runtime; and its max abs difference from eager fp32 on ``mel`` ``[n_mels, T]``."""
    with tempfile.TemporaryDirectory(prefix="nal-vocode-") as tmp:
        path = Path(tmp) / "generator.onnx"
        ex.export_onnx(generator, mel[None].float(), path)
        runner = ex.load_runner(path, "onnx", threads)
    (diff,) = ex.parity(generator, runner, [mel])
    return OnnxGenerator(runner), diff


def run(args: argparse.Namespace) -> int:
    if args.batch < 1:
        return fail("--batch must be >= 1")
    if args.threads is not None and args.threads < 1:
        return fail("--threads must be >= 1")
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
        t_exp = time.perf_counter()
        try:
            generator, diff = onnx_engine(loaded.generator, items[0].mel, threads)
        except Exception as e:  # noqa: BLE001 - an exporter failure is reported, not a traceback
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            return fail(
                f"--engine onnx: export failed: {type(e).__name__}: {first}", ev.EXIT_FAILED
            )
        print(
            f"engine onnx: exported in {time.perf_counter() - t_exp:.1f} s; max abs difference "
            f"from eager fp32 on {items[0].source.name}: {diff:.3g}"
        )
        if not diff <= ex.PARITY_TOLERANCE:
            return fail(
                f"--engine onnx: max abs difference {diff:.3g} from eager fp32 exceeds "
                f"{ex.PARITY_TOLERANCE:g}; use --engine eager",
                ev.EXIT_FAILED,
            )
    sr, hop = cfg.audio.sample_rate, cfg.audio.hop_length
    t0 = time.perf_counter()
    results = inf.vocode(generator, items, sr, hop, batch_size=args.batch)
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
