"""``nal-train export``: the generator alone, as TorchScript or ONNX, usable without this project.

Weight norm is folded in, batch and frames are dynamic axes. The command checks the exported
file against eager PyTorch on real mels of two lengths (max abs difference printed, above
``PARITY_TOLERANCE`` it fails and removes the file) and writes ``FILE.json`` beside it with
everything a user needs to compute the input mel. Its arguments are
:mod:`trainer.tools.commands` (torch-free); this module runs the command.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.export import Dim

from trainer.audio import LOG_FLOOR, MAG_EPS
from trainer.config.build import to_dict
from trainer.demo_corpus import synthesize_utterance
from trainer.events import schema as ev
from trainer.models.fast_generator import for_inference
from trainer.rundir.layout import CheckpointError, atomic_write_text, temp_path_for
from trainer.tools import inference as inf
from trainer.tools.inference import MelExtractor, fail, load_npy_mel, resolve_run_dir

PARITY_TOLERANCE = 1e-4  # max abs difference in fp32 output samples (audio is in [-1, 1])
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # exporter, its IR builder, parity check
INPUT_NAME, OUTPUT_NAME = "mel", "audio"
# Two lengths run through the one exported file: the frames axis really is dynamic.
PARITY_SECONDS = (1.0, 2.3)


class ExportError(RuntimeError):
    """An export that cannot be made or does not match eager PyTorch."""


def missing_packages(fmt: str) -> list[str]:
    if fmt != "onnx":
        return []
    return [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None]


# --------------------------------------------------------------------------- exporting


def _quiet() -> Any:
    """Silence the tracer's and exporter's chatter (warnings and torch.onnx logging)."""

    @contextlib.contextmanager
    def cm():
        loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            for lg, lv in zip(loggers, levels, strict=True):
                lg.setLevel(lv)

    return cm()


def export_torchscript(generator: Any, example: Any, path: Path) -> None:
    """Trace the generator (no data-dependent control flow, so any batch and length work)."""
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(generator, example, check_trace=False)
    traced.save(str(path))


def export_onnx(generator: Any, example: Any, path: Path, opset: int | None = None) -> int:
    """Export with the dynamo-based exporter, batch and frames dynamic; returns the opset."""
    import onnx  # the [export] extra: only for --format onnx

    kwargs: dict[str, Any] = {"opset_version": opset} if opset else {}
    # A batch of one lets tracing specialise the batch axis (a size-1 axis has no stride to
    # tell channels-last from contiguous): trace with two, batch stays dynamic.
    example = example.expand(max(2, example.shape[0]), -1, -1).contiguous()
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            generator,
            (example,),
            str(path),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"mel": {0: Dim("batch"), 2: Dim("frames")}},
            external_data=False,
            verbose=False,
            **kwargs,
        )
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def load_runner(path: Path, fmt: str, threads: int | None = None) -> Callable[[Any], Any]:
    """A function mel ``[B, n_mels, T]`` (numpy float32) -> audio (numpy) using only the file.

    ONNX Runtime runs with every graph optimisation, ``threads`` intra-op threads (default:
    its own choice) and one inter-op thread (the graph is one chain of convolutions). Its
    threads do not spin between operators: each convolution is milliseconds long, and on a
    machine that is busy with anything else spinning threads cost more than they save.
    """
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in 2.13
            module = torch.jit.load(str(path), map_location="cpu")

        def run_ts(mel: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(mel)).numpy()

        return run_ts
    import onnxruntime as ort  # the [export] extra: only for --format onnx

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run_onnx(mel: np.ndarray) -> np.ndarray:
        return session.run(None, {INPUT_NAME: mel})[0]

    return run_onnx


def parity(generator: Any, runner: Callable[[Any], Any], mels: Sequence[Any]) -> list[float]:
    """Max abs difference between eager PyTorch and ``runner`` for each mel ``[n_mels, T]``."""
    diffs = []
    for mel in mels:
        x = mel[None].float().contiguous()
        with torch.inference_mode():
            want = generator(x).numpy()
        got = np.asarray(runner(x.numpy()))
        if got.shape != want.shape:
            raise ExportError(f"exported output shape {got.shape} != eager {want.shape}")
        diffs.append(float(np.max(np.abs(got.astype(np.float64) - want))))
    return diffs


def parity_mels(cfg: Any, source: Path | None) -> list[Any]:
    """Real mels of two different lengths: from ``source`` (a WAV or .npy) or generated speech."""
    ext = MelExtractor(cfg)
    if source is not None:
        mel = (
            load_npy_mel(source, cfg.audio.n_mels)
            if source.suffix.lower() == ".npy"
            else ext.from_wav(source)
        )
        cut = max(1, (mel.shape[-1] * 2) // 3)
        return [mel, mel[:, :cut].contiguous()] if mel.shape[-1] > 1 else [mel]
    sr = cfg.audio.sample_rate
    wav, _ = synthesize_utterance(np.random.default_rng(2020), sr)
    mels = []
    for seconds in PARITY_SECONDS:
        n = int(seconds * sr)
        clip = np.resize(wav, n)  # repeats the utterance when it is shorter
        mels.append(ext.from_audio(clip))
    return mels


def mel_settings(cfg: Any) -> dict[str, Any]:
    """Every setting of the input mel, so it can be computed without this project."""
    a = cfg.audio
    left = (a.n_fft - a.hop_length) // 2
    return {
        "sample_rate": a.sample_rate,
        "n_fft": a.n_fft,
        "win_length": a.win_length,
        "hop_length": a.hop_length,
        "n_mels": a.n_mels,
        "fmin": a.fmin,
        "fmax": a.fmax if a.fmax is not None else a.sample_rate / 2,
        "window": "hann (periodic, torch.hann_window)",
        "center": False,
        "pad": {"mode": "reflect", "left": left, "right": a.n_fft - a.hop_length - left},
        "magnitude": f"sqrt(re^2 + im^2 + {MAG_EPS:g})",
        "mel_scale": "slaney",
        "mel_norm": "slaney (area-normalised triangles, as librosa norm='slaney')",
        "log": f"natural log of max(mel, {LOG_FLOOR:g})",
        "frames": "len(audio) // hop_length",
    }


def sidecar(
    cfg: Any,
    loaded: Any,
    out: Path,
    fmt: str,
    opset: int | None,
    diffs: list[float],
    frames: list[int],
) -> dict[str, Any]:
    a = cfg.audio
    return {
        "file": out.name,
        "format": fmt,
        "opset": opset,
        "sample_rate": a.sample_rate,
        "hop_length": a.hop_length,
        "n_mels": a.n_mels,
        "mel": mel_settings(cfg),
        "input": {"name": INPUT_NAME, "shape": ["batch", a.n_mels, "frames"], "dtype": "float32"},
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", 1, f"frames * {a.hop_length}"],
            "dtype": "float32",
            "range": [-1.0, 1.0],
        },
        "source": {
            "checkpoint": str(loaded.checkpoint.path.resolve()),
            "sha256": loaded.sha256,
            "step": loaded.step,
        },
        "generator": to_dict(cfg)["generator"],
        "parity": {
            "max_abs_diff": max(diffs),
            "tolerance": PARITY_TOLERANCE,
            "frames": frames,
            "reference": "eager PyTorch, fp32, CPU",
        },
        "exported_with": {"torch": torch.__version__},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------- the command


def run(args: argparse.Namespace) -> int:
    fmt: str = args.format
    missing = missing_packages(fmt)
    if missing:
        return fail(
            f"--format {fmt} needs {', '.join(missing)} (not installed): "
            f"pip install 'naudiolab[export]'"
        )
    if args.opset is not None and fmt != "onnx":
        return fail("--opset applies to --format onnx only")
    try:
        run_dir = resolve_run_dir(args.run_dir, args.checkpoint)
    except ValueError as e:
        return fail(str(e))
    out: Path = args.out
    if out.is_dir():
        return fail(f"--out {out} is a directory; give a file name")
    if args.input is not None and not args.input.is_file():
        return fail(f"--input {args.input}: no such file")

    with torch.no_grad():  # not set_grad_enabled: run() is also called in-process
        return _export(args, fmt, run_dir, out)


def _export(args: argparse.Namespace, fmt: str, run_dir: Path, out: Path) -> int:
    try:
        loaded = inf.load_generator(run_dir, args.checkpoint, "cpu")
        mels = parity_mels(loaded.cfg, args.input)
    except inf.InferenceError as e:
        return fail(str(e))
    except CheckpointError as e:
        return fail(str(e), ev.EXIT_NO_CHECKPOINT)
    g = loaded.generator
    fast = for_inference(g)  # what is exported; parity is checked against the trained module
    print(f"checkpoint {loaded.checkpoint.path} (step {loaded.step}, sha256 {loaded.sha256[:12]})")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    tmp = tmp.with_name(tmp.name + out.suffix)  # exporters look at the suffix
    t0 = time.perf_counter()
    try:
        opset = None
        if fmt == "torchscript":
            export_torchscript(fast, mels[0][None], tmp)
        else:
            opset = export_onnx(fast, mels[0][None], tmp, args.opset)
        runner = load_runner(tmp, fmt)
        diffs = parity(g, runner, mels)
    except Exception as e:  # noqa: BLE001 - an exporter failure is reported, not a traceback
        tmp.unlink(missing_ok=True)
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        return fail(f"export to {fmt} failed: {type(e).__name__}: {first}", ev.EXIT_FAILED)
    frames = [int(m.shape[-1]) for m in mels]
    for n, d in zip(frames, diffs, strict=True):
        print(f"parity vs eager PyTorch, {n} frames: max abs difference {d:.3g}")
    worst = max(diffs)
    if not worst <= PARITY_TOLERANCE:
        tmp.unlink(missing_ok=True)
        return fail(
            f"parity check failed: max abs difference {worst:.3g} > {PARITY_TOLERANCE:g}; "
            f"{out} not written",
            ev.EXIT_FAILED,
        )
    os.replace(tmp, out)
    meta = sidecar(loaded.cfg, loaded, out, fmt, opset, diffs, frames)
    side = out.with_name(out.name + ".json")
    atomic_write_text(side, json.dumps(meta, indent=1) + "\n")
    size = out.stat().st_size
    print(
        f"wrote {out} ({fmt}{f', opset {opset}' if opset else ''}, {size / 1e6:.1f} MB) "
        f"and {side} in {time.perf_counter() - t0:.1f} s"
    )
    return ev.EXIT_OK
