"""A small, deterministic, speech-like corpus in LJSpeech format, generated on demand.

Each utterance is a string of pseudo-words: syllables of a glottal pulse train with a
gliding pitch, shaped by four gliding formant resonators, with fricative noise, plosive
bursts and pauses. numpy + soundfile only (no torch); 48 utterances take well under a second at 16 kHz.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

MARKER = ".demo_corpus_complete"
GENERATOR_VERSION = 1
PEAK_DBFS = -3.0
NOISE_FLOOR_DBFS = -66.0

# Formant targets (F1..F4, Hz), roughly Peterson & Barney's adult voices.
VOWELS: dict[str, tuple[float, float, float, float]] = {
    "a": (730, 1090, 2440, 3400),
    "e": (530, 1840, 2480, 3500),
    "i": (300, 2250, 3000, 3700),
    "o": (570, 840, 2410, 3300),
    "u": (320, 870, 2240, 3300),
}
# Voiced consonants: formant targets and relative amplitude.
SONORANTS: dict[str, tuple[tuple[float, float, float, float], float]] = {
    "m": ((250, 1100, 2200, 3300), 0.35),
    "n": ((250, 1500, 2500, 3400), 0.35),
    "l": ((360, 1100, 2700, 3400), 0.55),
}
# Fricatives: noise pass band (Hz) and relative level.
FRICATIVES: dict[str, tuple[tuple[float, float], float]] = {
    "s": ((4000, 7500), 0.5),
    "sh": ((2000, 4500), 0.45),
    "f": ((1200, 6500), 0.2),
    "h": ((400, 3000), 0.15),
}
# Plosives: burst pass band (Hz) and the F2 locus the next vowel glides from.
PLOSIVES: dict[str, tuple[tuple[float, float], float]] = {
    "p": ((500, 2000), 800.0),
    "t": ((2500, 6000), 1800.0),
    "k": ((1200, 3000), 2200.0),
    "b": ((300, 1500), 800.0),
    "d": ((2000, 5000), 1800.0),
}
BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0])
_FRAME = 512  # STFT size for time-varying formant filtering (at 16 kHz; scaled with sr)


class DemoCorpusError(ValueError):
    """The demo corpus directory cannot be created or is not what was asked for."""


@dataclass
class _Plan:
    """One utterance as segments on a timeline (times in samples)."""

    n: int
    voiced: list[tuple[int, int, float]] = field(default_factory=list)  # start, end, amp
    formant_keys: list[tuple[int, np.ndarray]] = field(default_factory=list)
    noises: list[tuple[int, int, tuple[float, float], float, bool]] = field(default_factory=list)
    accents: list[tuple[int, float]] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


def _plan_utterance(rng: np.random.Generator, sr: int) -> _Plan:
    n = int(round(rng.uniform(1.0, 2.5) * sr))
    plan = _Plan(n)
    t = int(rng.uniform(0.08, 0.2) * sr)
    end_room = int(0.12 * sr)
    while True:
        n_syl = int(rng.integers(1, 4))
        word_len_guess = int(n_syl * 0.2 * sr)
        if t + word_len_guess > n - end_room and plan.words:
            break
        word = ""
        for _ in range(n_syl):
            t, letters = _plan_syllable(rng, sr, t, plan)
            word += letters
        plan.words.append(word)
        if t >= n - end_room:
            break
        t += int(rng.uniform(0.06, 0.2) * sr)  # pause between words
    if t > n - end_room:  # a long last word stretches the clip, within the 2.5 s bound
        plan.n = min(int(2.5 * sr), t + end_room)
    return plan


def _plan_syllable(rng: np.random.Generator, sr: int, t: int, plan: _Plan) -> tuple[int, str]:
    letters = ""
    locus = None
    kind = rng.choice(["none", "fric", "plos", "son"], p=[0.2, 0.3, 0.3, 0.2])
    if kind == "fric":
        name = str(rng.choice(list(FRICATIVES)))
        band, level = FRICATIVES[name]
        dur = int(rng.uniform(0.06, 0.14) * sr)
        plan.noises.append((t, t + dur, band, level, False))
        t += dur
        letters += name
    elif kind == "plos":
        name = str(rng.choice(list(PLOSIVES)))
        band, locus = PLOSIVES[name]
        t += int(rng.uniform(0.03, 0.06) * sr)  # closure: silence
        dur = int(rng.uniform(0.01, 0.025) * sr)
        plan.noises.append((t, t + dur, band, 0.9, True))
        t += dur + int(rng.uniform(0.005, 0.03) * sr)  # aspiration gap before voicing
        letters += name
    elif kind == "son":
        name = str(rng.choice(list(SONORANTS)))
        formants, amp = SONORANTS[name]
        dur = int(rng.uniform(0.05, 0.09) * sr)
        plan.voiced.append((t, t + dur, amp))
        plan.formant_keys += [(t, np.array(formants)), (t + dur - 1, np.array(formants))]
        t += dur
        letters += name
    vowel = str(rng.choice(list(VOWELS)))
    target = np.array(VOWELS[vowel])
    dur = int(rng.uniform(0.09, 0.22) * sr)
    start = target.copy()
    if locus is not None:  # formant transition out of the consonant's place of articulation
        start[1] = 0.6 * target[1] + 0.4 * locus
    plan.voiced.append((t, t + dur, 1.0))
    plan.formant_keys += [
        (t, start),
        (t + int(0.35 * dur), target),
        (t + dur - 1, target * rng.uniform(0.9, 1.1, size=4)),
    ]
    plan.accents.append(
        (t + dur // 2, rng.choice([-1.0, 1.0], p=[0.2, 0.8]) * rng.uniform(0.15, 0.35))
    )
    t += dur
    letters += vowel
    if rng.random() < 0.25:
        name = str(rng.choice(["s", "f", "sh"]))
        band, level = FRICATIVES[name]
        d = int(rng.uniform(0.05, 0.1) * sr)
        plan.noises.append((t, t + d, band, level, False))
        t += d
        letters += name
    return t, letters


def _ramp_envelope(n: int, segments: list[tuple[int, int, float]], ramp: int) -> np.ndarray:
    env = np.zeros(n)
    for s, e, amp in segments:
        e = min(e, n)
        length = e - s
        if length <= 0:
            continue
        r = max(1, min(ramp, length // 2))
        seg = np.full(length, amp)
        rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)
        seg[:r] *= rise
        seg[length - r :] *= rise[::-1]
        env[s:e] = np.maximum(env[s:e], seg)
    return env


def _glottal_source(f0: np.ndarray, sr: int) -> np.ndarray:
    """Derivative of a Rosenberg glottal flow pulse train following ``f0`` (Hz per sample)."""
    frac = np.cumsum(f0 / sr) % 1.0
    flow = np.zeros_like(frac)
    rise = frac < 0.4
    fall = (frac >= 0.4) & (frac < 0.6)
    flow[rise] = 0.5 - 0.5 * np.cos(np.pi * frac[rise] / 0.4)
    flow[fall] = np.cos(0.5 * np.pi * (frac[fall] - 0.4) / 0.2)
    return np.diff(flow, prepend=0.0)


def _formant_filter(x: np.ndarray, formants: np.ndarray, sr: int, frame: int) -> np.ndarray:
    """Filter ``x`` with a cascade of resonators whose frequencies vary per STFT frame.

    ``formants`` is [frames, 4] Hz at hop = frame // 4 (overlap-add with Hann windows).
    """
    hop = frame // 4
    n = len(x)
    n_frames = formants.shape[0]
    padded = np.zeros((n_frames - 1) * hop + frame)
    padded[frame // 2 : frame // 2 + n] = x
    idx = np.arange(frame)[None, :] + hop * np.arange(n_frames)[:, None]
    win = np.hanning(frame + 1)[:-1]
    spec = np.fft.rfft(padded[idx] * win, axis=1)
    f = np.fft.rfftfreq(frame, 1.0 / sr)[None, :, None]
    fk = formants[:, None, :]
    # |H| of a two-pole resonator, unity gain at DC; the cascade gives the natural tilt.
    mag = fk**2 / np.sqrt((fk**2 - f**2) ** 2 + (BANDWIDTHS * f) ** 2)
    out_frames = np.fft.irfft(spec * np.prod(mag, axis=2), n=frame, axis=1) * win
    out = np.zeros(n_frames * hop + frame)
    for g in range(4):  # frames g, g+4, ... tile without overlap: add each set at once
        group = out_frames[g::4].reshape(-1)
        out[g * hop : g * hop + len(group)] += group
    return out[frame // 2 : frame // 2 + n] / 1.5  # sum of Hann^2 at hop frame/4


def _band_noise(rng: np.random.Generator, n: int, band: tuple[float, float], sr: int) -> np.ndarray:
    noise = rng.standard_normal(n)
    spec = np.fft.rfft(noise)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    lo, hi = band[0], min(band[1], 0.45 * sr)
    # Smooth band edges: a raised-cosine taper a quarter of the band wide.
    width = max(1.0, 0.25 * (hi - lo))
    gain = np.clip(np.minimum((f - lo) / width + 1.0, (hi - f) / width + 1.0), 0.0, 1.0)
    out = np.fft.irfft(spec * (0.5 - 0.5 * np.cos(np.pi * gain)), n=n)
    return out / (np.std(out) + 1e-12)


def synthesize_utterance(rng: np.random.Generator, sr: int) -> tuple[np.ndarray, str]:
    """One utterance (float32, peak at -3 dBFS) and its pseudo-text."""
    plan = _plan_utterance(rng, sr)
    n = plan.n
    frame = max(64, int(round(_FRAME * sr / 16000 / 64)) * 64)
    hop = frame // 4
    times = np.arange(n)
    # Pitch: declining baseline, accent bumps on stressed vowels, a slow wobble.
    base = rng.uniform(105.0, 185.0)
    f0 = base * np.linspace(rng.uniform(1.05, 1.2), rng.uniform(0.78, 0.9), n)
    for centre, height in plan.accents:
        f0 *= 1.0 + height * np.exp(-0.5 * ((times - centre) / (0.09 * sr)) ** 2)
    f0 *= 1.0 + 0.02 * np.sin(2 * np.pi * rng.uniform(3.0, 6.0) * times / sr)
    f0 = np.clip(f0, 90.0, 250.0)
    voice_env = _ramp_envelope(n, plan.voiced, int(0.015 * sr))
    source = _glottal_source(f0, sr) * voice_env
    source += 0.03 * rng.standard_normal(n) * voice_env * np.abs(source).max()  # breathiness
    n_frames = n // hop + 2
    frame_t = np.arange(n_frames) * hop
    key_t = np.array([k[0] for k in plan.formant_keys], dtype=float)
    key_f = np.stack([k[1] for k in plan.formant_keys])
    order = np.argsort(key_t, kind="stable")
    formants = np.stack([np.interp(frame_t, key_t[order], key_f[order, j]) for j in range(4)], 1)
    formants = np.minimum(formants, 0.45 * sr)
    voiced = _formant_filter(source, formants, sr, frame)
    voiced /= np.sqrt(np.mean(voiced[voice_env > 0.5] ** 2)) + 1e-12
    out = 0.1 * voiced
    for s, e, band, level, burst in plan.noises:
        e = min(e, n)
        if e <= s:
            continue
        seg = _band_noise(rng, e - s, band, sr)
        if burst:  # plosive release: instant onset, fast exponential decay
            env = np.exp(-np.arange(e - s) / (0.004 * sr))
        else:
            env = _ramp_envelope(e - s, [(0, e - s, 1.0)], int(0.02 * sr))
        out[s:e] += 0.1 * level * seg * env
    out *= 10 ** (PEAK_DBFS / 20) / (np.abs(out).max() + 1e-12)
    out += 10 ** (NOISE_FLOOR_DBFS / 20) * rng.standard_normal(n)  # room noise, not digital zero
    text = " ".join(plan.words).capitalize() + "."
    return out.astype(np.float32), text


def _args_record(sample_rate: int, n_utterances: int, seed: int) -> dict[str, int]:
    return {
        "generator_version": GENERATOR_VERSION,
        "sample_rate": sample_rate,
        "n_utterances": n_utterances,
        "seed": seed,
    }


def _check_existing(path: Path, want: dict[str, int]) -> bool:
    """True when ``path`` holds a complete demo corpus made with the same arguments."""
    marker = path / MARKER
    if not marker.is_file():
        return False
    try:
        have = json.loads(marker.read_text())
    except (OSError, ValueError):
        raise DemoCorpusError(
            f"{marker}: unreadable demo-corpus marker; delete {path} to regenerate it"
        ) from None
    keys = ("sample_rate", "n_utterances", "seed")
    if any(have.get(k) != want[k] for k in keys):
        got = ", ".join(f"{k}={have.get(k)}" for k in keys)
        asked = ", ".join(f"{k}={want[k]}" for k in keys)
        raise DemoCorpusError(
            f"{path}: demo corpus was generated with {got} but {asked} "
            f"was asked for; delete the directory or use another corpus_dir"
        )
    return True


def ensure_demo_corpus(
    path: str | os.PathLike[str], sample_rate: int, n_utterances: int = 48, seed: int = 0
) -> Path:
    """Generate the demo corpus at ``path`` unless a complete one is there; return ``path``.

    Built in a temporary directory beside ``path`` and renamed into place, so racing
    processes never see a half-written corpus.
    """
    target = Path(path).expanduser()
    want = _args_record(sample_rate, n_utterances, seed)
    if _check_existing(target, want):
        return target
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise DemoCorpusError(
            f"{target}: exists but is not a complete demo corpus (no {MARKER}); "
            f"refusing to overwrite it: remove it or choose another corpus_dir"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        _build(tmp, sample_rate, n_utterances, seed)
        (tmp / MARKER).write_text(json.dumps(want, sort_keys=True) + "\n")
        try:
            os.rename(tmp, target)  # replaces an empty dir; fails if another process won
        except OSError:
            if _check_existing(target, want):
                return target
            raise DemoCorpusError(
                f"{target}: could not move the generated corpus into "
                f"place (the directory appeared meanwhile)"
            ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _build(root: Path, sr: int, n_utterances: int, seed: int) -> None:
    (root / "wavs").mkdir()
    lines = []
    for i in range(n_utterances):
        rng = np.random.default_rng([seed, i])
        wav, text = synthesize_utterance(rng, sr)
        uid = f"DEMO-{i + 1:04d}"
        # Plain write: the whole directory is renamed into place only when complete.
        sf.write(root / "wavs" / f"{uid}.wav", wav, sr, subtype="PCM_16", format="WAV")
        lines.append(f"{uid}|{text}|{text}\n")
    with open(root / "metadata.csv", "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m trainer.demo_corpus", description="Generate the speech-like demo corpus."
    )
    ap.add_argument("dir", type=Path)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--n-utterances", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.sample_rate < 8000 or args.n_utterances < 1:
        ap.error("--sample-rate must be >= 8000 and --n-utterances >= 1")
    try:
        print(ensure_demo_corpus(args.dir, args.sample_rate, args.n_utterances, args.seed))
    except DemoCorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
