"""Inference with a trained generator: load it from a run directory and turn mels into audio.

Only hash-verified checkpoints are loaded, with ``weights_only=True``, against the run's own
resolved ``config.yaml``. The generator is prepared for inference once: eval mode, weight
norm folded into plain weights, no gradients. Used by ``nal-train vocode`` and ``export``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.audio import LOG_FLOOR, MelSpectrogram, read_wav
from trainer.checkpointing.format import saved_step
from trainer.checkpointing.format import weights as generator_weights
from trainer.checkpointing.loadtest import safe_load
from trainer.config.schema import Config, ConfigError, GeneratorConfig
from trainer.config.yamlfile import load
from trainer.events import schema as ev
from trainer.models.generator import Generator
from trainer.rundir.checkpoints import CheckpointInfo, verify_checkpoint
from trainer.rundir.layout import CONFIG_FILE, CheckpointError
from trainer.rundir.resolve import resolve_checkpoint as resolve_in_run
from trainer.rundir.resolve import run_dir_of

SILENCE = math.log(LOG_FLOOR)  # the log-mel of silence: what batched mels are padded with


class InferenceError(ValueError):
    """An input or a run that cannot be used; the message names the file."""


# --------------------------------------------------------------------------- the model


def resolve_checkpoint(run_dir: str | os.PathLike[str], which: str = "latest") -> CheckpointInfo:
    """The hash-verified checkpoint ``which`` names: ``latest``, ``best`` or a path.

    The one definition is :func:`trainer.rundir.resolve_checkpoint` (the live branch's
    newest, the best-checkpoint ledger's best, or a path: absolute, relative to the working
    directory, to the run dir or to its checkpoints/). Raises NoValidCheckpoint naming what
    is wrong.
    """
    if which not in ("latest", "best"):
        which = str(Path(which).expanduser())
    return resolve_in_run(run_dir, which, verify_checkpoint, action="load")


def fail(message: str, code: int = ev.EXIT_USAGE) -> int:
    print(f"nal-train: {message}", file=sys.stderr)
    return code


def resolve_run_dir(run_dir: Path | None, checkpoint: str) -> Path:
    """``--run-dir``, or the run that holds ``--checkpoint PATH``; ValueError when neither."""
    if run_dir is not None:
        return run_dir
    if checkpoint not in ("latest", "best"):
        found = run_dir_of(checkpoint)
        if found is not None:
            return found
    raise ValueError("--run-dir is required (or --checkpoint PATH inside a run's checkpoints/)")


def load_run_config(run_dir: str | os.PathLike[str]) -> Config:
    """The run's resolved config (``<run>/config.yaml``), as the trainer wrote it."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise InferenceError(f"{path}: not found; is {run_dir} a run directory?")
    try:
        return load(path)
    except ConfigError as e:
        raise InferenceError(str(e)) from None


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InferenceError("--device cuda: no CUDA device is available (use auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise InferenceError(f"--device {name!r}: expected auto, cpu or cuda")
    return torch.device(name)


def set_threads(threads: int | None) -> int:
    """Intra-op threads for CPU inference (default: torch's, one per physical core)."""
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cast_generator(generator: Generator, precision: str, device: torch.device) -> Generator:
    """The generator in ``precision`` (fp32 default; bf16 on CPU or GPU; fp16 on CUDA only)."""
    if precision not in PRECISIONS:
        raise InferenceError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise InferenceError("--precision fp16 needs CUDA (use bf16 or fp32 on the CPU)")
    return generator.to(PRECISIONS[precision])


def prepare_for_inference(generator: Generator) -> Generator:
    """Eval mode, weight norm folded into plain weights, parameters frozen (in place)."""
    generator.eval()
    generator.remove_weight_norm()
    generator.requires_grad_(False)
    return generator


@dataclass
class LoadedGenerator:
    """A generator ready for inference and where it came from."""

    generator: Generator
    cfg: Config
    checkpoint: CheckpointInfo
    step: int

    @property
    def sha256(self) -> str:
        return self.checkpoint.sha256 or ""


def load_generator(
    run_dir: str | os.PathLike[str],
    which: str = "latest",
    device: torch.device | str = "cpu",
) -> LoadedGenerator:
    """Resolve, verify and load the generator of ``which`` (weights_only), ready for inference."""
    cfg = load_run_config(run_dir)
    info = resolve_checkpoint(run_dir, which)  # hashed against its manifest
    try:
        state = safe_load(info.path, map_location="cpu")  # weights_only=True
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {info.path} cannot be loaded: {e}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {info.path} holds a {type(state).__name__}")
    weights = generator_weights(state)
    if not isinstance(weights, dict):
        raise CheckpointError(f"checkpoint {info.path} holds no generator weights")
    g = Generator(cfg.generator, cfg.audio.n_mels)
    try:
        g.load_state_dict(weights)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:400]
        raise CheckpointError(
            f"checkpoint {info.path} does not fit the generator of {Path(run_dir) / CONFIG_FILE}: {detail}"
        ) from None
    g = prepare_for_inference(g).to(device)
    return LoadedGenerator(g, cfg, info, int(saved_step(state) or info.step))


# --------------------------------------------------------------------------- inputs


@dataclass
class MelInput:
    """One utterance to vocode: its mel ``[n_mels, frames]`` on the CPU, and its source."""

    name: str
    source: Path
    mel: torch.Tensor

    @property
    def frames(self) -> int:
        return int(self.mel.shape[-1])


def load_npy_mel(path: str | os.PathLike[str], n_mels: int) -> torch.Tensor:
    """A precomputed mel ``[n_mels, frames]`` or ``[1, n_mels, frames]``, checked against the run."""
    try:
        mel = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InferenceError(f"{path}: cannot read as a .npy mel ({e})") from None
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.ndim != 2 or mel.shape[0] != n_mels:
        raise InferenceError(
            f"{path}: mel shape {tuple(mel.shape)} does not fit this model: expected "
            f"[{n_mels}, frames] or [1, {n_mels}, frames] (the run's audio.n_mels is {n_mels})"
        )
    if mel.shape[1] < 1:
        raise InferenceError(f"{path}: mel has no frames")
    if not np.issubdtype(mel.dtype, np.floating):
        raise InferenceError(f"{path}: mel dtype {mel.dtype} is not floating point")
    if not np.all(np.isfinite(mel)):
        raise InferenceError(f"{path}: mel contains NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))


class MelExtractor:
    """The run's log-mel (same settings as training) for WAV inputs, resampled as needed."""

    def __init__(self, cfg: Config, device: torch.device | str = "cpu") -> None:
        self.audio = cfg.audio
        self.device = torch.device(device)
        self.mel = MelSpectrogram(cfg.audio).to(self.device)

    def from_wav(self, path: str | os.PathLike[str]) -> torch.Tensor:
        try:
            wav = read_wav(path, self.audio.sample_rate, resample=True)
        except ValueError as e:  # AudioError names the file
            raise InferenceError(str(e)) from None
        if len(wav) < self.audio.hop_length:
            raise InferenceError(
                f"{path}: {len(wav)} samples is shorter than one hop ({self.audio.hop_length})"
            )
        return self.from_audio(wav)

    @torch.inference_mode()
    def from_audio(self, wav: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Mono audio at the run's rate -> ``[n_mels, len // hop]`` on the CPU."""
        x = torch.as_tensor(np.asarray(wav, dtype=np.float32)).to(self.device)
        return self.mel(x.view(1, -1))[0].cpu()


# --------------------------------------------------------------------------- vocoding


@dataclass
class Vocoded:
    """One output: audio at the model's rate and the share of compute time it took."""

    item: MelInput
    audio: np.ndarray
    seconds: float  # compute time attributed to this item (its share of its batch)
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def rtf(self) -> float:
        """Real-time factor: compute time / audio duration (below 1 is faster than real time)."""
        return self.seconds / self.duration if self.duration else math.inf


def _placement(generator: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the generator's weights are (a module without any, e.g. an ONNX Runtime
    session's wrapper, takes fp32 on the CPU)."""
    w = next(generator.parameters(), None)
    return (w.device, w.dtype) if w is not None else (torch.device("cpu"), torch.float32)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def vocode_batch(
    generator: torch.nn.Module, mels: Sequence[torch.Tensor], hop: int
) -> list[np.ndarray]:
    """Vocode mels of any lengths in one forward pass; each output is ``frames * hop`` long.

    Shorter mels are padded with the log-mel of silence, then their audio trimmed back. The
    last few milliseconds of a padded item may differ slightly from vocoding it alone (the
    convolutions there see silence instead of zeros).
    """
    device, dtype = _placement(generator)
    longest = max(int(m.shape[-1]) for m in mels)
    batch = torch.full((len(mels), mels[0].shape[0], longest), SILENCE, dtype=torch.float32)
    for i, m in enumerate(mels):
        batch[i, :, : m.shape[-1]] = m
    audio = generator(batch.to(device, dtype)).float().cpu().numpy()[:, 0]
    return [audio[i, : int(m.shape[-1]) * hop].copy() for i, m in enumerate(mels)]


def context_frames(cfg: GeneratorConfig) -> int:
    """Mel frames on each side that one output sample can depend on (an upper bound).

    The sum of every layer's one-sided reach, each in mel frames: conv_pre (kernel 7), each
    transposed convolution (``ceil(k / u) + 1`` of its input steps), the widest residual
    block of each stage (its convolutions in sequence) and conv_post (kernel 7).
    """
    pair = cfg.resblock == "1"  # ResBlock1: a dilated conv then a plain one, per dilation
    reach, rate = 3.0, 1
    for u, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True):
        reach += (math.ceil(k / u) + 1) / rate
        rate *= u
        block = max(
            sum((ks - 1) * d // 2 + ((ks - 1) // 2 if pair else 0) for d in dil)
            for ks, dil in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True)
        )
        reach += block / rate
    reach += 3 / rate
    return math.ceil(reach) + 1


def windows(frames: int, chunk: int, context: int) -> list[tuple[int, int, int, int]]:
    """``(start, end, keep_from, keep_to)`` frame ranges that cover ``frames`` in chunks of
    ``chunk`` with ``context`` frames of overlap each side (none past either end)."""
    out = []
    for a in range(0, frames, chunk):
        b = min(frames, a + chunk)
        out.append((max(0, a - context), min(frames, b + context), a, b))
    return out


def vocode_long(
    generator: torch.nn.Module,
    mel: torch.Tensor,
    hop: int,
    chunk: int,
    context: int,
    batch_size: int = 1,
) -> np.ndarray:
    """Vocode one long mel in overlapping windows (equal ones ``batch_size`` at a time) and
    join their centres: with ``context`` >= the generator's reach (:func:`context_frames`)
    the result equals vocoding it whole, while memory stays that of one batch of windows."""
    spans = windows(int(mel.shape[-1]), chunk, context)
    pieces: list[np.ndarray] = [np.empty(0, np.float32)] * len(spans)
    by_length: dict[int, list[int]] = {}
    for i, (a, b, _, _) in enumerate(spans):
        by_length.setdefault(b - a, []).append(i)
    for group in by_length.values():  # equal lengths only: padding would change the edges
        for g in range(0, len(group), batch_size):
            idx = group[g : g + batch_size]
            outs = vocode_batch(generator, [mel[:, spans[i][0] : spans[i][1]] for i in idx], hop)
            for i, audio in zip(idx, outs, strict=True):
                a, _, keep_a, keep_b = spans[i]
                pieces[i] = audio[(keep_a - a) * hop : (keep_b - a) * hop]
    return np.concatenate(pieces)


def vocode(
    generator: torch.nn.Module,
    items: Sequence[MelInput],
    sample_rate: int,
    hop: int,
    batch_size: int = 1,
    chunk: int = 0,
    context: int = 0,
) -> list[Vocoded]:
    """Vocode ``items`` in batches of similar lengths (longest first); results in input order.

    With ``chunk`` > 0, an item longer than ``chunk + 2 * context`` frames is vocoded on its
    own in overlapping windows (:func:`vocode_long`), which bounds memory on long files.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    device = _placement(generator)[0]
    long = {i for i, it in enumerate(items) if chunk and it.frames > chunk + 2 * context}
    out: dict[int, Vocoded] = {}
    for i in sorted(long):
        _sync(device)
        t0 = time.perf_counter()
        audio = vocode_long(generator, items[i].mel, hop, chunk, context, batch_size)
        _sync(device)
        out[i] = Vocoded(items[i], audio, time.perf_counter() - t0, sample_rate)
    order = sorted((i for i in range(len(items)) if i not in long), key=lambda i: -items[i].frames)
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        _sync(device)
        t0 = time.perf_counter()
        audios = vocode_batch(generator, [items[i].mel for i in idx], hop)
        _sync(device)
        elapsed = time.perf_counter() - t0
        total_frames = sum(items[i].frames for i in idx)
        for i, a in zip(idx, audios, strict=True):
            share = elapsed * items[i].frames / total_frames
            out[i] = Vocoded(items[i], a, share, sample_rate)
    return [out[i] for i in range(len(items))]
