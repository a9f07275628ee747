"""``nal-train vocode``: turn WAVs (copy synthesis) or ``.npy`` mels into audio with a trained run.

Torch is imported only when the command runs, so ``nal-train --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from trainer.events import schema as ev

WAV_SUFFIXES = (".wav",)
MEL_SUFFIXES = (".npy",)
CHECKPOINT_HELP = (
    "best, latest (default) or a checkpoint path (absolute, or relative to the run dir)"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser(
        "vocode",
        help="vocode WAV files (copy synthesis) or .npy mels with a trained run",
        description="Vocode WAV files (their mel computed with the run's audio settings) or "
        ".npy mels ([n_mels, frames] or [1, n_mels, frames]), or directories of them. "
        "Writes <out>/<name>.wav at the model's sample rate.",
    )
    v.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="WAV, .npy or directory")
    v.add_argument(
        "--run-dir", type=Path, help="run directory (default: the one holding --checkpoint PATH)"
    )
    v.add_argument(
        "--checkpoint", default="latest", metavar="best|latest|PATH", help=CHECKPOINT_HELP
    )
    v.add_argument("--out", type=Path, required=True, help="output directory (created)")
    v.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    v.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="inference precision (default fp32; bf16 is faster where the CPU or GPU has it; "
        "fp16 on CUDA only)",
    )
    v.add_argument("--batch", type=int, default=1, help="files per forward pass (default 1)")
    v.add_argument("--threads", type=int, help="CPU threads (default: one per physical core)")
    v.set_defaults(func=run)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fail(message: str, code: int = ev.EXIT_USAGE) -> int:
    print(f"nal-train: {message}", file=sys.stderr)
    return code


def resolve_run_dir(run_dir: Path | None, checkpoint: str) -> Path:
    """``--run-dir``, or the run that holds ``--checkpoint PATH``; ValueError when neither."""
    if run_dir is not None:
        return run_dir
    from trainer.tools.inference import run_dir_of

    if checkpoint not in ("latest", "best"):
        found = run_dir_of(checkpoint)
        if found is not None:
            return found
    raise ValueError("--run-dir is required (or --checkpoint PATH inside a run's checkpoints/)")


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


def run(args: argparse.Namespace) -> int:
    if args.batch < 1:
        return fail("--batch must be >= 1")
    if args.threads is not None and args.threads < 1:
        return fail("--threads must be >= 1")
    try:
        run_dir = resolve_run_dir(args.run_dir, args.checkpoint)
        files = expand_inputs(args.inputs)
    except ValueError as e:
        return fail(str(e))
    out_dir: Path = args.out
    for f in files:
        if (out_dir / f"{f.stem}.wav").resolve() == f.resolve():
            return fail(f"{f}: the output would overwrite this input; choose another --out")

    from trainer.audio import write_wav
    from trainer.rundir.layout import CheckpointError
    from trainer.tools import inference as inf

    t_load = time.perf_counter()
    try:
        device = inf.resolve_device(args.device)
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
    sr, hop = cfg.audio.sample_rate, cfg.audio.hop_length
    t0 = time.perf_counter()
    results = inf.vocode(loaded.generator, items, sr, hop, batch_size=args.batch)
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
        f"{wall:.2f} s with writing), batch {args.batch}"
    )
    return ev.EXIT_OK
