"""What a fine-tune (``--init-from``) checks before it starts: the source's audio settings
against the new config's and the corpus's. Torch-free: the trainer and preflight call it.

A difference that makes the source's weights meaningless (the mel bands the generator reads,
the hop it upsamples by) is refused; one that only degrades them (sample rate, mel range,
STFT sizes) is a warning. Each message names the key and both values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.corpus.headers import HeaderError, read_wav_header
from trainer.corpus.metadata import parse_metadata
from trainer.corpus.report import DataError

# Another value of these and the generator's weights mean something else.
REFUSED = {
    "n_mels": "the generator reads another number of mel bands",
    "hop_length": "the generator upsamples each frame into another number of samples",
}
# Another value of these degrades the start (fine-tuning adapts to them).
WARNED = {
    "sample_rate": "the same frames cover another time span and frequency range",
    "fmin": "the mel bands cover another frequency range",
    "fmax": "the mel bands cover another frequency range",
    "n_fft": "the mel is computed from another STFT",
    "win_length": "the mel is computed from another STFT window",
}
CORPUS_SAMPLE = 50  # WAV headers read to learn the corpus's sample rate


@dataclass
class AudioCheck:
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _fmax(audio: Mapping[str, Any]) -> Any:
    v = audio.get("fmax")
    sr = audio.get("sample_rate")
    return v if v is not None or not isinstance(sr, (int, float)) else sr / 2


def compare_audio(
    source: Mapping[str, Any], target: Mapping[str, Any], corpus_rate: int | None = None
) -> AudioCheck:
    """``source``/``target``: ``audio`` sections (``to_dict``); ``corpus_rate``: the corpus's
    most common WAV sample rate, if known."""
    out = AudioCheck()
    for key, why in (*REFUSED.items(), *WARNED.items()):
        a = _fmax(source) if key == "fmax" else source.get(key)
        b = _fmax(target) if key == "fmax" else target.get(key)
        if a is None or b is None or a == b:
            continue
        line = f"audio.{key}: {a:g} in the source checkpoint, {b:g} in this config ({why})"
        (out.refusals if key in REFUSED else out.warnings).append(line)
    sr = source.get("sample_rate")
    if corpus_rate is not None and isinstance(sr, int) and corpus_rate < sr:
        out.warnings.append(
            f"the corpus's WAVs are at {corpus_rate} Hz, below the source checkpoint's "
            f"audio.sample_rate {sr}: resampled up, they hold nothing above {corpus_rate // 2} Hz"
        )
    return out


def corpus_rate(cfg: Any) -> int | None:
    """The most common sample rate among the first WAVs the corpus lists (None: unknown)."""
    root = Path(cfg.data.corpus_dir).expanduser()
    meta = Path(cfg.data.metadata)
    try:
        rows = parse_metadata(meta if meta.is_absolute() else root / meta)
    except DataError:
        return None
    rates: Counter[int] = Counter()
    for row in rows[:CORPUS_SAMPLE]:
        try:
            rates[read_wav_header(root / "wavs" / f"{row.id}.wav").sample_rate] += 1
        except (HeaderError, OSError):
            continue
    return rates.most_common(1)[0][0] if rates else None
