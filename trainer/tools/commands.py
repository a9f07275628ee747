"""The ``vocode`` and ``export`` subcommands' faces: their arguments and their entry points.
Torch-free, so ``nal-train --help`` stays fast; torch loads when one runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

CHECKPOINT_HELP = (
    "best, latest (default) or a checkpoint path (absolute, or relative to the run dir)"
)
EXPORT_FORMATS = ("torchscript", "onnx")


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
    v.add_argument("--threads", type=int, help="CPU threads (default: one per physical core)")
    v.set_defaults(func=_run_vocode)


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    x = sub.add_parser(
        "export",
        help="export the generator as TorchScript or ONNX (parity-checked, with a JSON sidecar)",
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
    x.add_argument("--out", type=Path, required=True, help="the file to write (.pt, .onnx)")
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
    from trainer.tools import export  # torch loads here, when the command runs

    return export.run(args)
