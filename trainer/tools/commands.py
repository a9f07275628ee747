"""The ``vocode``, ``export`` and ``import`` subcommands' faces: their arguments and their entry points.
Torch-free, so ``nal-train --help`` stays fast; torch loads when one runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHECKPOINT_HELP = (
    "best, latest (default) or a checkpoint path (absolute, or relative to the run dir)"
)
EXPORT_FORMATS = ("torchscript", "onnx", "hifigan")
IMPORT_FORMATS = ("hifigan",)
VOCODE_ENGINES = ("eager", "onnx")
VOCODE_CHUNK_FRAMES = 1024  # vocode splits longer inputs into overlapping windows of this size


def add_vocode_parser(sub: argparse._SubParsersAction) -> None:
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
    v.add_argument(
        "--chunk",
        type=int,
        default=VOCODE_CHUNK_FRAMES,
        metavar="FRAMES",
        help="vocode files longer than this many mel frames in overlapping windows (same "
        f"output, memory bounded on hour-long inputs; default {VOCODE_CHUNK_FRAMES}, 0: whole)",
    )
    v.add_argument("--threads", type=int, help="CPU threads (default: one per physical core)")
    v.add_argument(
        "--engine",
        default="eager",
        choices=VOCODE_ENGINES,
        help="eager PyTorch (default), or ONNX Runtime on the generator exported to ONNX at "
        "start-up (CPU, fp32; the [export] extra) and kept in the user cache for later runs "
        "($NAL_CACHE_DIR overrides it); onnx prints its max abs difference from eager fp32 "
        "on the first input and refuses one above the export's parity tolerance",
    )
    v.set_defaults(func=_run_vocode)


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    x = sub.add_parser(
        "export",
        help="export the generator as TorchScript or ONNX (parity-checked, with a JSON sidecar), "
        "or as the reference HiFi-GAN trainer's g_/do_ files",
        description="Export a run's generator (weight norm removed; batch and frames dynamic) "
        "as TorchScript or ONNX, check it against eager PyTorch on real mels, and write "
        "FILE.json with the sample rate, hop and every mel setting.",
    )
    x.add_argument(
        "--run-dir", type=Path, help="run directory (default: the one holding --checkpoint PATH)"
    )
    x.add_argument(
        "--checkpoint", default="latest", metavar="best|latest|PATH", help=CHECKPOINT_HELP
    )
    x.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    x.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the file to write (.pt, .onnx; for hifigan DIR/g_XXXXXXXX, config.json beside it)",
    )
    x.add_argument(
        "--with-discriminators",
        action="store_true",
        help="--format hifigan: also write DIR/do_XXXXXXXX (discriminators, optimizer states, "
        "steps, epoch) so the run can continue in the reference trainer",
    )
    x.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    x.add_argument(
        "--input",
        type=Path,
        help="a WAV or .npy mel for the parity check (default: generated speech-like audio)",
    )
    x.set_defaults(func=_run_export)


def _run_vocode(args: argparse.Namespace) -> int:
    from trainer.tools import vocode  # torch loads here, when the command runs

    return vocode.run(args)


def _run_export(args: argparse.Namespace) -> int:
    if args.format == "hifigan":
        from trainer.tools.hifigan import exporter  # torch loads here, when the command runs

        return exporter.run(args)
    if args.with_discriminators:
        print("nal-train: --with-discriminators goes with --format hifigan", file=sys.stderr)
        return 2
    from trainer.tools import export  # torch loads here, when the command runs

    return export.run(args)


def add_import_parser(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser(
        "import",
        help="make a run directory from another trainer's checkpoint (the reference HiFi-GAN's)",
        description="Import the reference HiFi-GAN trainer's files (jik876/hifi-gan: g_XXXXXXXX, "
        "optionally do_XXXXXXXX, and its config.json) as a new run directory: a resolved "
        "config.yaml and one verified checkpoint. verify, vocode, export, train --resume "
        "and train --init-from then work on it. Nothing is written when a file does not fit.",
    )
    i.add_argument("--format", required=True, choices=IMPORT_FORMATS)
    i.add_argument("--config", type=Path, required=True, help="the reference run's config.json")
    i.add_argument("--run-dir", type=Path, required=True, help="the new run directory")
    i.add_argument("g_file", type=Path, metavar="G_FILE", help="g_XXXXXXXX ({'generator': ...})")
    i.add_argument(
        "do_file",
        type=Path,
        nargs="?",
        metavar="DO_FILE",
        help="do_XXXXXXXX (discriminators, optimizer states, steps, epoch); without it the run "
        "is generator-only (fine-tune it with --init-from-generator-only)",
    )
    i.set_defaults(func=_run_import)


def _run_import(args: argparse.Namespace) -> int:
    from trainer.tools.hifigan import importer  # torch loads here, when the command runs

    return importer.run(args)
