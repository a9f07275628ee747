"""Preflight checks run before a training start: ``nal-tui --preflight`` and the dashboard.

Each check returns a CheckResult (pass / fail / warn / skip, a reason, how to fix it).
Light on purpose: no torch, numpy or soundfile; WAV and .npy headers are parsed here, and
the two checks that need the trainer run it in a subprocess (started first, in parallel).
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer import rundir

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
SYMBOLS = {PASS: "✓", FAIL: "✗", WARN: "!", SKIP: "-"}
ASCII_SYMBOLS = {PASS: "OK", FAIL: "FAIL", WARN: "WARN", SKIP: "SKIP"}

# Installed versions the project supports: (minimum, exclusive maximum or None).
SUPPORTED = {
    "torch": ((2, 13), (2, 14)),
    "numpy": ((1, 24), None),
    "soundfile": ((0, 12), None),
    "soxr": ((0, 3), None),
    "textual": ((8,), (9,)),
    "watchdog": ((4,), None),
    "psutil": ((5, 9), None),
    "PyYAML": ((6,), None),
    "orjson": ((3, 9), None),
}
TRAIN_PACKAGES = ("torch", "numpy", "soundfile", "soxr")

# Sizes used by the estimates (see estimate_memory / estimate_disk).
BYTES_STATE_PER_PARAM = 16  # fp32 weight + grad + Adam m + Adam v
BYTES_CKPT_PER_PARAM = 12  # fp32 weight + Adam m + Adam v (grads are not saved)
FRAMEWORK_OVERHEAD = 512 << 20  # interpreter, torch runtime, allocator slack
SAMPLE_SECONDS = 10.0  # a validation sample's length, at most (LJSpeech clips are <= 10 s)
EVENT_LINE_BYTES = 400
WAV_FORMATS = {1: "PCM", 3: "float", 6: "A-law", 7: "mu-law"}
MEL_FRAME_TOLERANCE = 2  # as trainer.data: centred STFTs may differ by a frame or two
DETAILS_MAX = 5
TRAINER_TIMEOUT_S = 60.0
SUMMARY_TIMEOUT_S = 300.0


@dataclass
class CheckResult:
    """One check: its name, status (pass/fail/warn/skip), the reason and how to fix it."""

    name: str
    status: str
    message: str
    fix: str = ""
    details: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PreflightReport:
    config_path: str
    run_dir: str | None
    checks: list[CheckResult]
    duration_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.checks)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skipped checks do not fail)."""
        return self.count(FAIL) == 0

    @property
    def passed(self) -> int:
        return self.count(PASS) + self.count(WARN)

    @property
    def total(self) -> int:
        return len(self.checks) - self.count(SKIP)

    def summary(self) -> str:
        extra = []
        if self.count(WARN):
            extra.append(f"{self.count(WARN)} warning{'s' * (self.count(WARN) > 1)}")
        if self.count(SKIP):
            extra.append(f"{self.count(SKIP)} skipped")
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"{self.passed}/{self.total} checks passed{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "passed": self.passed,
            "total": self.total,
            "failed": self.count(FAIL),
            "warnings": self.count(WARN),
            "skipped": self.count(SKIP),
            "summary": self.summary(),
            "config": self.config_path,
            "run_dir": self.run_dir,
            "duration_s": round(self.duration_s, 3),
            "checks": [c.to_dict() for c in self.checks],
        }

    def lines(self, ascii_only: bool = False) -> list[str]:
        """Human-readable report: one line per check, then details, fixes, summary."""
        sym = ASCII_SYMBOLS if ascii_only else SYMBOLS
        out = []
        for c in self.checks:
            out.append(f"{sym[c.status]} {c.name}: {c.message}")
            out += [f"    {d}" for d in c.details]
            if c.fix and c.status in (FAIL, WARN):
                out.append(f"    fix: {c.fix}")
        out.append(self.summary())
        return out


# ------------------------------------------------------------------ file headers


@dataclass(frozen=True)
class WavHeader:
    format_tag: int
    channels: int
    sample_rate: int
    bits: int
    frames: int | None  # None when there is no data chunk


def read_wav_header(path: str | os.PathLike[str]) -> WavHeader:
    """Parse a RIFF/WAVE header (PCM, float, WAVE_FORMAT_EXTENSIBLE); ValueError says why."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise ValueError("not a RIFF/WAVE file")
        fmt: tuple[int, int, int, int, int] | None = None
        frames = None
        while True:
            ch = f.read(8)
            if len(ch) < 8:
                break
            cid, size = ch[:4], struct.unpack("<I", ch[4:])[0]
            if cid == b"fmt ":
                body = f.read(size)
                if len(body) < 16:
                    raise ValueError("fmt chunk is too short")
                tag, nch, sr, _rate, align, bits = struct.unpack("<HHIIHH", body[:16])
                if tag == 0xFFFE and len(body) >= 26:
                    # WAVE_FORMAT_EXTENSIBLE: the real tag is the SubFormat GUID's first 2 bytes.
                    tag = struct.unpack("<H", body[24:26])[0]
                fmt = (tag, nch, sr, align, bits)
                if size % 2:
                    f.seek(1, os.SEEK_CUR)
            elif cid == b"data":
                if fmt is None:
                    raise ValueError("data chunk before the fmt chunk")
                # RF64 stores 0xFFFFFFFF here (real size in ds64); length unknown then.
                frames = None if size == 0xFFFFFFFF else size // max(1, fmt[3])
                break
            else:
                f.seek(size + (size % 2), os.SEEK_CUR)
    if fmt is None:
        raise ValueError("no fmt chunk")
    tag, nch, sr, _align, bits = fmt
    return WavHeader(tag, nch, sr, bits, frames)


def read_npy_shape(path: str | os.PathLike[str]) -> tuple[int, ...]:
    """The array shape from a .npy header (format 1.0-3.0); ValueError says why."""
    with open(path, "rb") as f:
        magic = f.read(8)
        if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
            raise ValueError("not a .npy file")
        major = magic[6]
        n = f.read(2 if major == 1 else 4)
        hlen = struct.unpack("<H" if major == 1 else "<I", n)[0]
        header = f.read(hlen).decode("latin1")
    try:
        d = ast.literal_eval(header)
        shape = tuple(int(x) for x in d["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError):
        raise ValueError("garbled .npy header") from None
    return shape


# ------------------------------------------------------------------- estimates


def _conv(cin: int, cout: int, k: int, groups: int = 1) -> int:
    return cin * cout * k // groups + cout


def estimate_params(cfg: Any) -> dict[str, int]:
    """Parameter counts computed from the config alone (no torch), per model part."""
    g, d = cfg.generator, cfg.discriminator
    ch = g.upsample_initial_channel
    gen = _conv(cfg.audio.n_mels, ch, 7)
    for u_k in g.upsample_kernel_sizes:
        gen += _conv(ch, ch // 2, u_k)
        ch //= 2
        for k, dil in zip(g.resblock_kernel_sizes, g.resblock_dilation_sizes, strict=False):
            gen += _conv(ch, ch, k) * len(dil) * (2 if g.resblock == "1" else 1)
    gen += _conv(ch, 1, 7)
    mpd, cin = 0, 1
    for c in d.mpd_channels:
        mpd += _conv(cin, c, 5)
        cin = c
    mpd = (mpd + _conv(cin, 1, 3)) * len(d.periods)
    groups = (1, 4, 16, 16, 16, 16)
    msd, cin = 0, 1
    for i, c in enumerate(d.msd_channels):
        k = 15 if i == 0 else (5 if i == len(d.msd_channels) - 1 else 41)
        gr = groups[i] if i < len(groups) and i != len(d.msd_channels) - 1 else 1
        gr = _gcd3(gr, cin, c)
        msd += _conv(cin, c, k, gr)
        cin = c
    msd = (msd + _conv(cin, 1, 3)) * d.msd_scales
    return {"generator": gen, "mpd": mpd, "msd": msd}


def _gcd3(a: int, b: int, c: int) -> int:
    import math

    return math.gcd(a, math.gcd(b, c))


def estimate_memory(cfg: Any, params: int) -> int:
    """Training memory in bytes, on the high side.

    state = params x 16 B (weights, grads, Adam m and v). Activations per batch item, in
    floats: generator: sum over upsampling stages of channels x length x (2 + 2 x convs in
    the stage's resblocks); each discriminator pass: 2 x sum over layers of channels x
    length (conv output + leaky ReLU), MPD strided by 3 per layer, MSD by its strides over
    1, 1/2, 1/4... of the audio; 4 discriminator passes (real and fake, D and G steps).
    activations x 4 B x 2 (their gradients) x batch_size, plus a fixed 512 MiB overhead.
    """
    a, g, d = cfg.audio, cfg.generator, cfg.discriminator
    t = a.segment_size
    n_convs = sum(len(dil) * (2 if g.resblock == "1" else 1) for dil in g.resblock_dilation_sizes)
    ch, length, gen = g.upsample_initial_channel, t // a.hop_length, 0.0
    for r in g.upsample_rates:
        ch, length = ch // 2, length * r
        gen += ch * length * (2 + 2 * n_convs)
    mpd = 0.0
    for p in d.periods:
        n = -(-t // p) * p  # padded to a multiple of the period
        for i, c in enumerate(d.mpd_channels):
            n = n / 3 if i < len(d.mpd_channels) - 1 else n
            mpd += 2 * c * n
    msd = 0.0
    strides = (1, 2, 2, 4, 4, 1, 1)
    for s in range(d.msd_scales):
        n = t / 2**s
        for i, c in enumerate(d.msd_channels):
            n = n / (strides[i] if i < len(strides) else 1)
            msd += 2 * c * n
    act_floats = gen + 4 * (mpd + msd)
    return int(
        params * BYTES_STATE_PER_PARAM
        + act_floats * 4 * 2 * cfg.train.batch_size
        + FRAMEWORK_OVERHEAD
    )


@dataclass(frozen=True)
class DiskEstimate:
    checkpoint: int  # one checkpoint, bytes
    required: int  # keep_last + 1 checkpoints (one being written) + samples + logs
    with_milestones: int  # required + every milestone checkpoint kept to the target step
    samples: int
    logs: int


def estimate_disk(cfg: Any, params: int) -> DiskEstimate:
    """Disk the run will use: checkpoints at params x 12 B, samples, event log."""
    ck = params * BYTES_CKPT_PER_PARAM
    steps = cfg.train.max_steps
    n_vals = steps // cfg.log.val_every
    samples = int(n_vals * cfg.log.val_samples * SAMPLE_SECONDS * cfg.audio.sample_rate * 2)
    logs = (steps // cfg.log.log_every + 1) * EVENT_LINE_BYTES
    required = (cfg.checkpoint.keep_last + 1) * ck + samples + logs
    ms = steps // cfg.checkpoint.milestone_every if cfg.checkpoint.milestone_every else 0
    return DiskEstimate(ck, required, required + ms * ck, samples, logs)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _human_count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


# ---------------------------------------------------------------------- checks


def check_config(config_path: str | os.PathLike[str]) -> tuple[CheckResult, Any]:
    """1. The YAML parses, every key is known, every value in range."""
    from trainer.config import ConfigError, load

    try:
        cfg = load(config_path)
    except ConfigError as e:
        return CheckResult(
            "Configuration",
            FAIL,
            str(e),
            "edit the key named above; config/hifigan_v1.yaml lists every key",
        ), None
    t = cfg.train
    return CheckResult(
        "Configuration",
        PASS,
        f"{config_path}: valid ({cfg.name}: {t.max_steps} steps, batch "
        f"{t.batch_size}, {cfg.audio.sample_rate} Hz)",
    ), cfg


def check_data(cfg: Any, nproc: int = 1) -> CheckResult:
    """2. Corpus, metadata and WAVs exist and match the config; mels when configured."""
    name = "Data"
    d, a = cfg.data, cfg.audio
    root = Path(d.corpus_dir).expanduser()
    if not root.is_dir():
        if d.demo:
            return CheckResult(
                name, PASS, f"demo corpus {root} will be generated on the first start"
            )
        return CheckResult(
            name,
            FAIL,
            f"{root}: corpus directory not found (data.corpus_dir)",
            "download the corpus there or point data.corpus_dir at it",
        )
    meta = root / d.metadata
    ids, err = _metadata_ids(meta)
    if err:
        return CheckResult(name, FAIL, err, f"fix {meta}: one 'id|text|normalized text' per line")
    fails: list[str] = []
    warns: list[str] = []
    fix: list[str] = []
    wav_dir = root / "wavs"
    missing = [i for i in ids if not (wav_dir / f"{i}.wav").is_file()]
    if missing:
        fails.append(
            f"{len(missing)} of {len(ids)} WAV files listed in {meta} are missing "
            f"from {wav_dir}: {_some(f'{m}.wav' for m in missing)}"
        )
        fix.append("restore the missing files or remove their lines from the metadata")
    frames: dict[str, int | None] = {}
    bad, stereo, short, rates = [], [], [], {}
    for i in ids:
        if i in missing:
            continue
        p = wav_dir / f"{i}.wav"
        try:
            h = read_wav_header(p)
        except (OSError, ValueError, struct.error) as e:
            bad.append(f"{p.name} ({getattr(e, 'strerror', None) or e})")
            continue
        if h.format_tag not in WAV_FORMATS:
            bad.append(f"{p.name} (unsupported WAV encoding, format tag {h.format_tag:#x})")
            continue
        if h.channels != 1:
            stereo.append(f"{p.name} ({h.channels} channels)")
        if h.sample_rate != a.sample_rate:
            rates.setdefault(h.sample_rate, []).append(p.name)
        n = None if h.frames is None else round(h.frames * a.sample_rate / h.sample_rate)
        if n is not None and n < a.hop_length:
            short.append(f"{p.name} ({h.frames} samples)")
        frames[i] = n
    if bad:
        fails.append(f"{len(bad)} WAV file(s) cannot be read: {_some(bad)}")
        fix.append("re-export them as PCM or float WAV")
    if stereo:
        fails.append(f"{len(stereo)} file(s) are not mono: {_some(stereo)}")
        fix.append("downmix them to mono first")
    if short:
        fails.append(f"{len(short)} file(s) are shorter than one hop: {_some(short)}")
        fix.append("remove them from the metadata")
    for sr, names in sorted(rates.items()):
        msg = (
            f"{len(names)} file(s) are {sr} Hz, the config says audio.sample_rate "
            f"{a.sample_rate}: {_some(names)}"
        )
        if d.resample:
            warns.append(msg + " (they will be resampled on load)")
        else:
            fails.append(msg + " (data.resample is false)")
            fix.append("resample the corpus, set data.resample: true, or change audio.sample_rate")
    n_train = len(ids) - d.val_size
    if n_train < cfg.train.batch_size * nproc:
        fails.append(
            f"{len(ids)} clips minus data.val_size {d.val_size} leaves {n_train} for "
            f"training, fewer than one batch (train.batch_size {cfg.train.batch_size}"
            + (f" x {nproc} processes" if nproc > 1 else "")
            + ")"
        )
        fix.append("add clips, or lower data.val_size or train.batch_size")
    if d.mels_dir is not None:
        _check_mels(Path(d.mels_dir).expanduser(), ids, frames, a, fails, fix)
    if fails:
        return CheckResult(
            name, FAIL, fails[0], "; ".join(dict.fromkeys(fix)), details=fails[1:] + warns
        )
    rate_note = f", {a.sample_rate} Hz mono"
    msg = f"{root}: {len(ids)} clips ({n_train} train, {d.val_size} validation){rate_note}"
    if warns:
        return CheckResult(
            name,
            WARN,
            msg,
            "set audio.sample_rate to the corpus rate, or "
            "resample the corpus once to save time at load",
            details=warns,
        )
    return CheckResult(name, PASS, msg + (", mels present" if d.mels_dir else ""))


def _metadata_ids(meta: Path) -> tuple[list[str], str]:
    try:
        text = meta.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        return [], f"{meta}: metadata file not found (data.metadata)"
    except OSError as e:
        return [], f"{meta}: cannot read: {e.strerror}"
    except UnicodeDecodeError:
        return [], f"{meta}: not valid UTF-8"
    ids, seen = [], set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cols = line.split("|")
        uid = cols[0].strip()
        if len(cols) not in (2, 3) or not uid or "/" in uid:
            return [], f"{meta}:{n}: expected 'id|text|normalized text'"
        if uid in seen:
            return [], f"{meta}:{n}: duplicate utterance id {uid!r}"
        seen.add(uid)
        ids.append(uid)
    if not ids:
        return [], f"{meta}: no utterances listed"
    return ids, ""


def _check_mels(
    mels: Path,
    ids: list[str],
    frames: dict[str, int | None],
    a: Any,
    fails: list[str],
    fix: list[str],
) -> None:
    if not mels.is_dir():
        fails.append(f"{mels}: mel directory not found (data.mels_dir)")
        fix.append("compute the mels there, or remove data.mels_dir to compute them on the fly")
        return
    missing, wrong = [], []
    for i in ids:
        p = mels / f"{i}.npy"
        if not p.is_file():
            missing.append(p.name)
            continue
        try:
            shape = read_npy_shape(p)
        except (OSError, ValueError, struct.error) as e:
            wrong.append(f"{p.name} ({e})")
            continue
        if len(shape) == 3 and shape[0] == 1:
            shape = shape[1:]
        if len(shape) != 2 or shape[0] != a.n_mels:
            wrong.append(f"{p.name} (shape {shape}, expected [{a.n_mels}, frames])")
            continue
        n = frames.get(i)
        if n is not None and abs(shape[1] - n // a.hop_length) > MEL_FRAME_TOLERANCE:
            wrong.append(f"{p.name} ({shape[1]} frames, its audio gives {n // a.hop_length})")
    if missing:
        fails.append(f"{len(missing)} of {len(ids)} mels missing from {mels}: {_some(missing)}")
    if wrong:
        fails.append(f"{len(wrong)} mel file(s) do not match the config: {_some(wrong)}")
    if missing or wrong:
        fix.append("recompute the mels with this config's audio settings (n_mels, hop_length)")


def _some(items: Any) -> str:
    items = list(items)
    more = len(items) - DETAILS_MAX
    return ", ".join(items[:DETAILS_MAX]) + (f" ... and {more} more" if more > 0 else "")


def check_output_dirs(run_dir: Path) -> CheckResult:
    """3. The run directory, checkpoints/ and samples/ can be created and written."""
    name = "Output directories"
    created: list[Path] = []
    try:
        for d in (run_dir, run_dir / rundir.CHECKPOINTS_DIR, run_dir / rundir.SAMPLES_DIR):
            missing = [p for p in (d, *d.parents) if not p.exists()]
            for p in reversed(missing):
                p.mkdir()
                created.append(p)
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".nal-preflight-")
            try:
                os.write(fd, b"preflight")
            finally:
                os.close(fd)
                os.unlink(tmp)
    except OSError as e:
        where = getattr(e, "filename", None) or run_dir
        return CheckResult(
            name,
            FAIL,
            f"cannot create or write {where}: {e.strerror or e}",
            "choose another --run-dir, or fix the directory's permissions",
        )
    finally:
        for p in reversed(created):  # leave no trace: the trainer creates them itself
            try:
                p.rmdir()
            except OSError:
                pass
    return CheckResult(
        name,
        PASS,
        f"{run_dir} and its {rundir.CHECKPOINTS_DIR}/, {rundir.SAMPLES_DIR}/ are writable",
    )


def _version_tuple(v: str) -> tuple[int, ...]:
    m = re.match(r"\d+(?:\.\d+)*", v)
    return tuple(int(x) for x in m.group(0).split(".")) if m else ()


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_installation(version_of: Callable[[str], str | None] = _installed) -> CheckResult:
    """4. Dependencies at supported versions (metadata only: torch is not imported)."""
    name = "Installation"
    problems, have = [], []
    for dist, (lo, hi) in SUPPORTED.items():
        v = version_of(dist)
        want = ">=" + ".".join(map(str, lo)) + (f",<{'.'.join(map(str, hi))}" if hi else "")
        if v is None:
            problems.append(f"{dist} is not installed (need {want})")
            continue
        t = _version_tuple(v)
        if t < lo or (hi is not None and t[: len(hi)] >= hi):
            problems.append(f"{dist} {v} is not supported (need {want})")
        elif dist in ("torch", "textual"):
            have.append(f"{dist} {v}")
    info = [_cuda_info()]
    if problems:
        return CheckResult(
            name,
            FAIL,
            problems[0],
            "pip install -e '.[dev]' in the project's virtual environment (torch must be 2.13.x)",
            details=problems[1:] + info,
        )
    return CheckResult(
        name, PASS, f"dependencies at supported versions ({', '.join(have)})", details=info
    )


def _cuda_info() -> str:
    """CUDA availability as information, without importing torch."""
    drv = Path("/proc/driver/nvidia/version")
    if drv.exists() or shutil.which("nvidia-smi"):
        return "info: NVIDIA driver found; CUDA training is possible with a CUDA build of torch"
    return "info: no NVIDIA driver found; training runs on the CPU"


class _Sub:
    """A subprocess started now and collected later, so slow checks overlap the fast ones."""

    def __init__(self, cmd: list[str]) -> None:
        self.cmd = cmd
        self.error = ""
        try:
            self.proc: subprocess.Popen[str] | None = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as e:
            self.proc, self.error = None, f"cannot run {cmd[0]}: {e.strerror or e}"

    def result(self, timeout: float) -> tuple[int | None, str, str]:
        if self.proc is None:
            return None, "", self.error
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return None, "", f"no answer within {timeout:.0f} s"
        return self.proc.returncode, out, err


def _last_lines(text: str, n: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-n:])


def check_trainer(sub: _Sub, timeout: float = TRAINER_TIMEOUT_S) -> CheckResult:
    """5. ``nal-train`` is installed and runs."""
    rc, out, err = sub.result(timeout)
    shown = " ".join(sub.cmd[:-1] if sub.cmd[-1] == "--help" else sub.cmd)
    if rc == 0 and "train" in out:
        return CheckResult("Trainer", PASS, f"{shown} runs")
    why = err.strip() and _last_lines(err) or f"exit code {rc}"
    return CheckResult(
        "Trainer",
        FAIL,
        f"{shown} --help failed: {why}",
        "pip install -e '.[dev]' so the nal-train command is installed",
    )


def parse_summary(out: str) -> dict[str, int]:
    """Parameter counts from ``nal-train summary`` (its JSON object; other lines ignored)."""
    import json

    for text in (out, *reversed(out.strip().splitlines())):
        try:
            d = json.loads(text)
        except ValueError:
            continue
        if isinstance(d, dict):
            return {k: v for k, v in d.items() if isinstance(v, int) and not isinstance(v, bool)}
    raise ValueError("no JSON object in the output")


def check_models(
    sub: _Sub, timeout: float = SUMMARY_TIMEOUT_S
) -> tuple[CheckResult, dict[str, int]]:
    """6. The configured generator and discriminators can be built (sizes reported)."""
    name = "Model components"
    rc, out, err = sub.result(timeout)
    if rc != 0:
        why = err.strip() and _last_lines(err) or f"exit code {rc}"
        return CheckResult(
            name,
            FAIL,
            f"building the models failed: {why}",
            "check the generator/discriminator sections of the config",
        ), {}
    try:
        counts = parse_summary(out)
    except ValueError as e:
        return CheckResult(name, FAIL, f"nal-train summary: {e}", "reinstall the project"), {}
    # "discriminators" / "total" are sums of the parts already listed.
    shown = {k: v for k, v in counts.items() if k not in ("total", "discriminators")}
    parts = [f"{k} {_human_count(v)}" for k, v in (shown or counts).items()]
    return CheckResult(name, PASS, "built: " + ", ".join(parts) + " parameters"), counts


def _model_params(counts: dict[str, int]) -> int:
    if "total" in counts:
        return counts["total"]
    return sum(v for k, v in counts.items() if k in ("generator", "mpd", "msd", "discriminator"))


def _gpu_memory() -> tuple[int, int] | None:
    """(total, free) bytes of the first GPU from nvidia-smi, or None."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        total, free = (int(x) for x in out.splitlines()[0].split(","))
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None
    return total << 20, free << 20


def check_resources(
    cfg: Any,
    run_dir: Path,
    counts: dict[str, int] | None = None,
    *,
    disk_free: int | None = None,
    mem_available: int | None = None,
    mem_total: int | None = None,
    gpu: tuple[int, int] | None | bool = False,
) -> CheckResult:
    """7. CPU cores, memory for the configured batch, disk for the checkpoints and samples.

    ``disk_free``, ``mem_available``, ``mem_total`` and ``gpu`` (total, free) override
    what the machine reports (``gpu=False``: ask nvidia-smi when the config may use CUDA).
    """
    import psutil

    name = "System resources"
    est = "from nal-train summary" if counts else "estimated from the config"
    params = _model_params(counts) if counts else sum(estimate_params(cfg).values())
    need_mem = estimate_memory(cfg, params)
    disk = estimate_disk(cfg, params)
    if mem_available is None or mem_total is None:
        vm = psutil.virtual_memory()
        mem_available = vm.available if mem_available is None else mem_available
        mem_total = vm.total if mem_total is None else mem_total
    if gpu is False:
        gpu = _gpu_memory() if cfg.train.device != "cpu" else None
    if disk_free is None:
        probe = next((p for p in (run_dir, *run_dir.resolve().parents) if p.exists()), Path("."))
        disk_free = shutil.disk_usage(probe).free
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    details = [
        f"info: {cores} CPU core(s); {_human_count(params)} parameters ({est})",
        f"memory: about {human_bytes(need_mem)} for batch {cfg.train.batch_size} "
        f"(segment {cfg.audio.segment_size}); {human_bytes(mem_available)} of "
        f"{human_bytes(mem_total)} RAM available"
        + (f"; GPU {human_bytes(gpu[1])} free of {human_bytes(gpu[0])}" if gpu else ""),
        f"disk: {cfg.checkpoint.keep_last}+1 checkpoints x {human_bytes(disk.checkpoint)}"
        f" + samples {human_bytes(disk.samples)} + logs {human_bytes(disk.logs)} = "
        f"{human_bytes(disk.required)}; {human_bytes(disk_free)} free",
    ]
    mem_total_dev, mem_free_dev, where = (
        (gpu[0], gpu[1], "GPU") if gpu else (mem_total, mem_available, "RAM")
    )
    if disk.required > disk_free:
        return CheckResult(
            name,
            FAIL,
            f"not enough disk: the run needs about "
            f"{human_bytes(disk.required)}, {human_bytes(disk_free)} is free "
            f"on {run_dir}'s filesystem",
            "free some space, lower checkpoint.keep_last, or choose a --run-dir on a larger disk",
            details,
        )
    if need_mem > mem_total_dev:
        return CheckResult(
            name,
            FAIL,
            f"the configured batch needs about {human_bytes(need_mem)}"
            f", more than the {human_bytes(mem_total_dev)} of {where}",
            "lower train.batch_size or audio.segment_size",
            details,
        )
    warn = None
    if need_mem > mem_free_dev:
        warn = (
            f"about {human_bytes(need_mem)} of memory needed, {human_bytes(mem_free_dev)} "
            f"of {where} is free now",
            "close other programs or lower train.batch_size",
        )
    elif disk.with_milestones > disk_free:
        warn = (
            f"milestone checkpoints up to step {cfg.train.max_steps} need about "
            f"{human_bytes(disk.with_milestones)}, {human_bytes(disk_free)} is free",
            "free space before the run gets there, or raise checkpoint.milestone_every",
        )
    if warn:
        return CheckResult(name, WARN, warn[0], warn[1], details)
    return CheckResult(
        name,
        PASS,
        f"{cores} cores, memory and disk suffice "
        f"(~{human_bytes(need_mem)} memory, ~{human_bytes(disk.required)} disk)",
        details=details,
    )


def check_run_state(run_dir: Path, resume: str | None = None) -> CheckResult:
    """8. No live trainer owns the run dir; a resume target is a complete, verified checkpoint."""
    from nal_tui.control import ControlError, find_checkpoint
    from nal_tui.runs import PID_GARBLED, PID_LIVE, PID_STALE, pid_state

    name = "Run state"
    st = pid_state(run_dir)
    if st.state == PID_LIVE and st.info is not None:
        return CheckResult(
            name,
            FAIL,
            f"a trainer (pid {st.info.pid}, started "
            f"{time.ctime(st.info.started)}) already owns {run_dir}",
            f"stop it first (nal-tui stop --run-dir {run_dir}) or choose another --run-dir",
        )
    details = []
    warn = None
    if st.state in (PID_STALE, PID_GARBLED):
        warn = (
            st.message,
            f"no trainer is running there: delete {run_dir / rundir.PID_FILE} "
            "(the next start also replaces it)",
        )
    if resume is not None:
        try:
            info, notes = find_checkpoint(run_dir, resume)
        except ControlError as e:
            return CheckResult(
                name,
                FAIL,
                f"cannot resume: {e}",
                "resume from another checkpoint, or start a new run",
                details,
            )
        details += notes
        msg = f"resume from step {info.step} ({info.path.name}, verified)"
    else:
        cks = [c for c in rundir.list_checkpoints(run_dir) if c.complete]
        msg = f"{run_dir} is free"
        if cks:
            details.append(
                f"info: it holds checkpoints up to step {cks[-1].step}; resume with --resume latest"
            )
    if warn:
        return CheckResult(name, WARN, warn[0], warn[1], details + [msg])
    return CheckResult(name, PASS, msg, details=details)


# ---------------------------------------------------------------------- runner


def run_checks(
    config_path: str | os.PathLike[str],
    run_dir: str | os.PathLike[str] | None = None,
    resume: str | None = None,
    build_models: bool = True,
    *,
    nproc: int = 1,
    logs_dir: str | os.PathLike[str] = "logs",
    disk_free: int | None = None,
    mem_available: int | None = None,
) -> PreflightReport:
    """Run every check; the trainer subprocesses start first and run alongside the rest."""
    from nal_tui.control import trainer_base_command

    t0 = time.monotonic()
    base, _ = trainer_base_command()
    help_sub = _Sub([*base, "--help"])
    cfg_res, cfg = check_config(config_path)
    model_sub = (
        _Sub([*base, "summary", "--config", str(config_path)])
        if (build_models and cfg is not None)
        else None
    )
    rd = (
        Path(run_dir)
        if run_dir is not None
        else (Path(logs_dir) / cfg.name if cfg is not None else None)
    )
    no_cfg = "skipped: the configuration did not load"
    checks = [cfg_res]
    checks.append(check_data(cfg, nproc) if cfg is not None else CheckResult("Data", SKIP, no_cfg))
    checks.append(
        check_output_dirs(rd)
        if rd is not None
        else CheckResult("Output directories", SKIP, no_cfg + " (no run directory)")
    )
    checks.append(check_installation())
    checks.append(check_trainer(help_sub))
    counts: dict[str, int] = {}
    if model_sub is not None:
        res, counts = check_models(model_sub)
        checks.append(res)
    else:
        checks.append(
            CheckResult(
                "Model components", SKIP, "skipped (--skip-models)" if cfg is not None else no_cfg
            )
        )
    if cfg is not None and rd is not None:
        checks.append(
            check_resources(
                cfg, rd, counts or None, disk_free=disk_free, mem_available=mem_available
            )
        )
    else:
        checks.append(CheckResult("System resources", SKIP, no_cfg))
    checks.append(
        check_run_state(rd, resume)
        if rd is not None
        else CheckResult("Run state", SKIP, no_cfg + " (no run directory)")
    )
    return PreflightReport(
        str(config_path), str(rd) if rd is not None else None, checks, time.monotonic() - t0
    )


def print_report(report: PreflightReport, json_out: bool = False) -> None:
    """Print the report (human lines, or one JSON object)."""
    if json_out:
        import json

        print(json.dumps(report.to_dict(), indent=1))
        return
    enc = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(enc)
        ascii_only = False
    except (UnicodeEncodeError, LookupError):
        ascii_only = True
    print(f"nal-tui preflight: {report.config_path} -> {report.run_dir or '(no run directory)'}")
    for line in report.lines(ascii_only):
        print(line)
