"""The reference HiFi-GAN trainer's formats (jik876/hifi-gan), torch-free: its config.json
keys and how they translate to ours, the keys of its ``g_XXXXXXXX`` and ``do_XXXXXXXX`` files,
and how its state-dict names (``torch.nn.utils.weight_norm``'s ``weight_g``/``weight_v``,
``spectral_norm``'s ``weight_orig``/``weight_u``/``weight_v``) map to ours (the parametrization
API's ``parametrizations.weight.original0``/``original1``/``original``/``0._u``/``0._v``).

The architecture is the same (same modules, names, shapes and parameter order); only the
weight-norm spelling differs, so every tensor maps one to one, bit for bit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

FORMAT_NAME = "hifigan"
# The reference's files: g_XXXXXXXX holds {"generator": state_dict}; do_XXXXXXXX the rest.
G_PREFIX, DO_PREFIX = "g_", "do_"
REF_GENERATOR = "generator"
REF_MPD, REF_MSD = "mpd", "msd"
REF_OPTIM_G, REF_OPTIM_D = "optim_g", "optim_d"
REF_STEPS, REF_EPOCH = "steps", "epoch"
DO_KEYS = (REF_MPD, REF_MSD, REF_OPTIM_G, REF_OPTIM_D, REF_STEPS, REF_EPOCH)
CONFIG_JSON = "config.json"
MAX_CONFIG_BYTES = 256 * 1024  # as for our YAML configs: a config is a few hundred bytes

# Reference key -> our "section.key": the architecture and audio settings (all required).
ARCH_KEYS = {
    "resblock": "generator.resblock",
    "upsample_rates": "generator.upsample_rates",
    "upsample_kernel_sizes": "generator.upsample_kernel_sizes",
    "upsample_initial_channel": "generator.upsample_initial_channel",
    "resblock_kernel_sizes": "generator.resblock_kernel_sizes",
    "resblock_dilation_sizes": "generator.resblock_dilation_sizes",
    "num_mels": "audio.n_mels",
    "n_fft": "audio.n_fft",
    "hop_size": "audio.hop_length",
    "win_size": "audio.win_length",
    "sampling_rate": "audio.sample_rate",
    "fmin": "audio.fmin",
    "fmax": "audio.fmax",
}
# Training settings with a counterpart (optional: ours keep their defaults when absent).
TRAINING_KEYS = {
    "segment_size": "audio.segment_size",
    "learning_rate": "optim.lr_g",  # and optim.lr_d: the reference has one rate for both
    "lr_decay": "optim.lr_decay",
    "batch_size": "train.batch_size",
    "seed": "train.seed",
    "num_workers": "data.num_workers",
}
BETA_KEYS = ("adam_b1", "adam_b2")  # -> optim.betas
# Reference keys nal-train has no counterpart for: named in a warning, never silently dropped.
NO_COUNTERPART = {
    "fmax_for_loss": "nal-train's mel loss uses audio.fmax",
    "num_gpus": "nal-train takes the process count from torchrun",
    "num_freq": "implied by n_fft",
    "dist_config": "nal-train takes the backend and address from torchrun",
}
# Keys that only other architectures' configs have (BigVGAN v1/v2, its discriminators):
# weights made with them do not fit this generator, whatever their shapes say.
OTHER_ARCHITECTURE = {
    "activation": "BigVGAN's anti-aliased periodic activations",
    "snake_logscale": "BigVGAN's Snake activations",
    "use_tanh_at_final": "BigVGAN v2's output layer",
    "use_bias_at_final": "BigVGAN v2's output layer",
    "resolutions": "BigVGAN's multi-resolution discriminator",
    "mpd_reshapes": "BigVGAN's multi-period discriminator",
    "use_spectral_norm": "BigVGAN's discriminators",
    "discriminator_channel_mult": "BigVGAN's discriminators",
    "use_cqtd_instead_of_mrd": "BigVGAN v2's CQT discriminator",
    "model_in_dim": "another fork's generator",
}
# What the reference trainer writes for the keys nal-train does not have (export).
REFERENCE_DEFAULTS = {
    "num_gpus": 0,
    "fmax_for_loss": None,
    "dist_config": {"dist_backend": "nccl", "dist_url": "tcp://localhost:54321", "world_size": 1},
}
# The reference's discriminators are fixed in its models.py: these are ours that match.
REFERENCE_DISCRIMINATOR = {
    "periods": [2, 3, 5, 7, 11],
    "msd_scales": 3,
    "mpd_channels": [32, 128, 512, 1024, 1024],
    "msd_channels": [128, 128, 256, 512, 1024, 1024, 1024],
}
REFERENCE_N_MELS = 80  # the reference's models.py builds conv_pre for 80 mel bands


class InteropError(ValueError):
    """A file or config that does not translate; the message is one line naming the file
    (and the key, with both values or shapes where there are two)."""


def _show(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 60 else text[:59] + "…"


def read_config(path: Path) -> dict[str, Any]:
    """The reference config.json as a dict; InteropError naming the file otherwise."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise InteropError(f"{path}: cannot read the config ({e.strerror or e})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise InteropError(f"{path}: over {MAX_CONFIG_BYTES // 1024} KiB, not a HiFi-GAN config")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InteropError(f"{path}: not a JSON config ({str(e).splitlines()[0][:80]})") from None
    if not isinstance(data, dict):
        raise InteropError(f"{path}: holds a JSON {type(data).__name__}, not a config object")
    return data


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def translate_config(data: dict[str, Any], src: str) -> tuple[dict[str, Any], list[str]]:
    """Our config sections (a partial dict for ``trainer.config.build.from_dict``) from a
    reference config.json, and the warnings (keys with no counterpart, named)."""
    for key in data:
        if key in OTHER_ARCHITECTURE:
            raise InteropError(
                f"{src}: key '{key}' ({_show(data[key])}) belongs to another architecture "
                f"({OTHER_ARCHITECTURE[key]}), not the reference HiFi-GAN's; nothing imported"
            )
    missing = [k for k in ARCH_KEYS if k not in data]
    if missing:
        raise InteropError(
            f"{src}: lacks the reference HiFi-GAN key(s) {', '.join(missing)} "
            f"(is it the config.json of the run that wrote these files?)"
        )
    resblock = data["resblock"]
    if resblock not in ("1", "2"):
        # The reference compares with the string '1': any other value means ResBlock2.
        raise InteropError(
            f"{src}: key 'resblock' is {_show(resblock)}; the reference reads the string "
            f'"1" (ResBlock1) or "2" (ResBlock2)'
        )
    out: dict[str, Any] = {}

    def put(dotted: str, value: Any) -> None:
        sec, key = dotted.split(".")
        out.setdefault(sec, {})[key] = value

    for ref, ours in ARCH_KEYS.items():
        put(ours, data[ref])
    for ref, ours in TRAINING_KEYS.items():
        if ref in data:
            put(ours, data[ref])
    if "learning_rate" in data:
        put("optim.lr_d", data["learning_rate"])
    if any(k in data for k in BETA_KEYS):
        if not all(_number(data.get(k)) for k in BETA_KEYS):
            raise InteropError(f"{src}: needs both adam_b1 and adam_b2 as numbers")
        put("optim.betas", [data["adam_b1"], data["adam_b2"]])
    # The reference trains with the mel L1 loss (x45), feature matching (x2), LSGAN (x1),
    # its fixed discriminators, and AdamW's default weight decay (0.01).
    out["loss"] = {"recon": "mel", "lambda_recon": 45.0, "lambda_adv": 1.0, "lambda_fm": 2.0}
    out["discriminator"] = dict(REFERENCE_DISCRIMINATOR)
    out.setdefault("optim", {})["weight_decay"] = 0.01
    known = set(ARCH_KEYS) | set(TRAINING_KEYS) | set(BETA_KEYS)
    unused = [k for k in data if k not in known]
    warnings = []
    if unused:
        what = "; ".join(
            f"{k} = {_show(data[k])}" + (f" ({NO_COUNTERPART[k]})" if k in NO_COUNTERPART else "")
            for k in unused
        )
        warnings.append(f"{src}: key(s) with no counterpart in nal-train, not used: {what}")
    return out, warnings


def reference_config(cfg: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The reference config.json for one of our resolved configs (``to_dict``), and warnings
    for what the reference cannot express."""
    a, g, o, t = cfg["audio"], cfg["generator"], cfg["optim"], cfg["train"]
    out: dict[str, Any] = {
        "resblock": g["resblock"],
        "num_gpus": REFERENCE_DEFAULTS["num_gpus"],
        "batch_size": t["batch_size"],
        "learning_rate": o["lr_g"],
        "adam_b1": o["betas"][0],
        "adam_b2": o["betas"][1],
        "lr_decay": o["lr_decay"],
        "seed": t["seed"],
        "upsample_rates": list(g["upsample_rates"]),
        "upsample_kernel_sizes": list(g["upsample_kernel_sizes"]),
        "upsample_initial_channel": g["upsample_initial_channel"],
        "resblock_kernel_sizes": list(g["resblock_kernel_sizes"]),
        "resblock_dilation_sizes": [list(d) for d in g["resblock_dilation_sizes"]],
        "segment_size": a["segment_size"],
        "num_mels": a["n_mels"],
        "num_freq": a["n_fft"] // 2 + 1,
        "n_fft": a["n_fft"],
        "hop_size": a["hop_length"],
        "win_size": a["win_length"],
        "sampling_rate": a["sample_rate"],
        "fmin": a["fmin"],
        "fmax": a["fmax"],
        "fmax_for_loss": REFERENCE_DEFAULTS["fmax_for_loss"],
        "num_workers": cfg["data"]["num_workers"],
        "dist_config": dict(REFERENCE_DEFAULTS["dist_config"]),
    }
    warnings = []
    if o["lr_g"] != o["lr_d"]:
        warnings.append(
            f"optim.lr_g ({o['lr_g']}) and optim.lr_d ({o['lr_d']}) differ; the reference has "
            f"one learning_rate (written: {o['lr_g']})"
        )
    if a["n_mels"] != REFERENCE_N_MELS:
        warnings.append(
            f"audio.n_mels is {a['n_mels']}: the reference's own models.py builds its first "
            f"conv for {REFERENCE_N_MELS} mels; load it with a fork whose Generator reads num_mels"
        )
    return out, warnings


def discriminator_problem(cfg: dict[str, Any]) -> str | None:
    """Why our discriminators cannot be written as the reference's (None: they can)."""
    d = cfg["discriminator"]
    for key, want in REFERENCE_DISCRIMINATOR.items():
        have = list(d[key]) if isinstance(d[key], (list, tuple)) else d[key]
        if have != want:
            return (
                f"discriminator.{key} is {_show(have)}, the reference's is {_show(want)}: "
                f"its trainer cannot load these discriminators"
            )
    return None


def discriminator_widths(mpd: Any, msd: Any) -> dict[str, list[int]]:
    """The channel widths a do_ file's discriminators have (read from their first period's
    and first scale's weights); empty where they cannot be read (the key check then names
    what is wrong)."""
    out: dict[str, list[int]] = {}
    for key, sd, name in (
        ("mpd_channels", mpd, "weight_v"),
        ("msd_channels", msd, "weight_orig"),
    ):
        widths = []
        while isinstance(sd, dict):
            w = sd.get(f"discriminators.0.convs.{len(widths)}.{name}")
            shape = getattr(w, "shape", None)
            if shape is None or len(shape) < 1:
                break
            widths.append(int(shape[0]))
        if widths:
            out[key] = widths
    return out


# ------------------------------------------------------------------ state-dict names

_WN_G, _WN_V = "parametrizations.weight.original0", "parametrizations.weight.original1"
_SN_W, _SN_U, _SN_V = (
    "parametrizations.weight.original",
    "parametrizations.weight.0._u",
    "parametrizations.weight.0._v",
)
_OURS_TO_REF = {_WN_G: "weight_g", _WN_V: "weight_v", _SN_W: "weight_orig", _SN_U: "weight_u"}


def reference_name(ours: str) -> str:
    """The reference's name for one of our state-dict keys (same module path)."""
    for suffix, ref in (*_OURS_TO_REF.items(), (_SN_V, "weight_v")):
        if ours.endswith(suffix):
            return ours[: -len(suffix)] + ref
    return ours


def reference_names(ours: list[str]) -> dict[str, str]:
    """Reference name -> our name, for one network's keys (one to one)."""
    out = {reference_name(k): k for k in ours}
    if len(out) != len(ours):  # pragma: no cover - a model change would have to cause it
        raise InteropError("two of our keys map to one reference key")
    return out
