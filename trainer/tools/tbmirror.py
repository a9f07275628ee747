"""A TensorBoard mirror of the event log (``log.tensorboard: true``; the ``[tensorboard]`` extra).

The JSONL stays the source of truth: the mirror is an observer of the trainer's event writer
(``trainer.events.writer.add_observer``), so it writes at the log's own cadence (one step
record per ``log.log_every`` steps, one per validation), with the ``tensorboard`` package's
own event-file writer, whose background thread does the file I/O. Scalars: every loss,
the learning rates, gradient norms, speed; every validation metric and loss by set (``val``,
``unseen``); the validation samples as audio and as spectrogram images. A failure turns the
mirror off and is reported once through ``on_failure``; it never stops training.

Torch-free: ``nal-tui export --tensorboard`` replays a log through the same code.
"""

from __future__ import annotations

import io
import logging
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from trainer.events import schema as ev
from trainer.events.parse import parse_lines

log = logging.getLogger("nal-train")

TENSORBOARD_DIR = "tensorboard"  # under the run directory
EXTRA_HINT = "pip install 'naudiolab[tensorboard]'"
# Step-record fields mirrored as scalars, and their TensorBoard tags.
STEP_SCALARS = {
    "g": "train/loss_g",
    "d": "train/loss_d",
    "stft": "train/loss_recon",
    "adv": "train/loss_adv",
    "fm": "train/loss_fm",
    "lr_g": "train/lr_g",
    "lr_d": "train/lr_d",
    "grad_norm_g": "train/grad_norm_g",
    "grad_norm_d": "train/grad_norm_d",
    "samples_per_s": "speed/samples_per_s",
    "step_time": "speed/step_time",
}
FLUSH_SECONDS = 10
SPEC_FFT, SPEC_HOP = 512, 128  # the spectrogram images' STFT (display only)


def missing() -> str | None:
    """Why the mirror cannot run here (None: it can)."""
    import importlib.util  # only to probe the optional extra, without importing it

    if importlib.util.find_spec("tensorboard") is None:
        return f"log.tensorboard needs the tensorboard package (not installed): {EXTRA_HINT}"
    return None


def val_tag(set_name: str, kind: str, name: str) -> str:
    return f"{set_name}/{kind}/{name}" if kind else f"{set_name}/{name}"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class TensorBoardMirror:
    """Mirror event records (dicts, as the event writer hands them) into ``out_dir``."""

    def __init__(
        self,
        out_dir: Path,
        run_dir: Path | None = None,
        on_failure: Callable[[str, int], None] | None = None,
        media: bool = True,
    ) -> None:
        # The [tensorboard] extra: imported only when the mirror is asked for.
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
        self.out_dir = Path(out_dir)
        self.run_dir = run_dir
        self.media = media
        self.on_failure = on_failure
        self.enabled = True
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # Flushed every few seconds by its own thread, so a live TensorBoard keeps up.
        self._writer = EventFileWriter(str(self.out_dir), flush_secs=FLUSH_SECONDS)
        self.seconds = 0.0  # time spent in record(), for the benchmark and the run log
        self.last_step = 0

    # ------------------------------------------------------------------ writing

    def _emit(self, step: int, values: list[Any], wall: float | None) -> None:
        summary = self._summary_pb2.Summary(value=values)
        event = self._event_pb2.Event(wall_time=wall or time.time(), step=step, summary=summary)
        self._writer.add_event(event)

    def _scalar(self, tag: str, v: float) -> Any:
        return self._summary_pb2.Summary.Value(tag=tag, simple_value=float(v))

    def record(self, rec: dict[str, Any]) -> None:
        """Mirror one event record; the first failure turns the mirror off (reported once)."""
        if not self.enabled:
            return
        t0 = time.perf_counter()
        try:
            self._record(rec)
        except Exception as e:  # noqa: BLE001 - a mirror must never stop the run
            self.fail(f"{type(e).__name__}: {e}")
        self.seconds += time.perf_counter() - t0

    def _record(self, rec: dict[str, Any]) -> None:
        kind, step, wall = rec.get("event"), rec.get("step"), rec.get("t")
        if not isinstance(step, int):
            return
        self.last_step = step
        if kind == ev.Step.EVENT:
            values = [
                self._scalar(tag, rec[k]) for k, tag in STEP_SCALARS.items() if _number(rec.get(k))
            ]
            self._emit(step, values, wall)
        elif kind == ev.Val.EVENT:
            set_name = str(rec.get("set") or ev.VAL_SET)
            values = [
                self._scalar(val_tag(set_name, "", k), v)
                for k, v in (rec.get("metrics") or {}).items()
                if _number(v)
            ]
            values += [
                self._scalar(val_tag(set_name, "loss", k), v)
                for k, v in (rec.get("losses") or {}).items()
                if _number(v)
            ]
            if self.media and self.run_dir is not None:
                values += self._media(set_name, rec.get("samples") or [])
            self._emit(step, values, wall)

    def _media(self, set_name: str, samples: Iterable[Any]) -> list[Any]:
        # soundfile and numpy come with the trainer ([train]); the dashboard's replay has no media.
        import numpy as np
        import soundfile as sf

        out = []
        for s in samples:
            p = Path(str(s))
            p = p if p.is_absolute() else self.run_dir / p  # type: ignore[operator]
            data, sr = sf.read(p, dtype="float32", always_2d=False)
            name = p.stem
            buf = io.BytesIO()
            sf.write(buf, data, sr, format="WAV", subtype="PCM_16")
            audio = self._summary_pb2.Summary.Audio(
                sample_rate=float(sr),
                num_channels=1,
                length_frames=len(data),
                encoded_audio_string=buf.getvalue(),
                content_type="audio/wav",
            )
            out.append(
                self._summary_pb2.Summary.Value(tag=val_tag(set_name, "audio", name), audio=audio)
            )
            img = spectrogram_png(np.asarray(data))
            if img is not None:
                png, h, w = img
                image = self._summary_pb2.Summary.Image(
                    height=h, width=w, colorspace=1, encoded_image_string=png
                )
                out.append(
                    self._summary_pb2.Summary.Value(
                        tag=val_tag(set_name, "spectrogram", name), image=image
                    )
                )
        return out

    def fail(self, why: str) -> None:
        self.enabled = False
        msg = f"TensorBoard mirror into {self.out_dir} failed ({why}); mirroring is off, training goes on"
        log.warning(msg)
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - already failing; the alert says so
            pass
        if self.on_failure is not None:
            self.on_failure(msg, self.last_step)

    def flush(self) -> None:
        if self.enabled:
            try:
                self._writer.flush()
            except Exception as e:  # noqa: BLE001 - a mirror must never stop the run
                self.fail(f"{type(e).__name__}: {e}")

    def close(self) -> None:
        if self.enabled:
            self.enabled = False
            try:
                self._writer.close()
            except Exception as e:  # noqa: BLE001 - reported, never raised
                log.warning("closing the TensorBoard mirror: %s", e)


def spectrogram_png(wav: Any) -> tuple[bytes, int, int] | None:
    """A log-magnitude spectrogram of ``wav`` as a greyscale PNG (low frequencies at the
    bottom), or None when the clip is shorter than one window."""
    import numpy as np  # the trainer's (media are mirrored by the trainer only)

    if wav.ndim != 1 or len(wav) < SPEC_FFT:
        return None
    n = 1 + (len(wav) - SPEC_FFT) // SPEC_HOP
    idx = np.arange(SPEC_FFT)[None, :] + SPEC_HOP * np.arange(n)[:, None]
    frames = wav[idx] * np.hanning(SPEC_FFT)[None, :]
    mag = np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-5).T[::-1]  # [freq, time]
    lo, hi = float(mag.min()), float(mag.max())
    pix = ((mag - lo) / (hi - lo + 1e-9) * 255).astype(np.uint8)
    h, w = pix.shape
    return _png(pix.tobytes(), w, h), h, w


def _png(gray: bytes, w: int, h: int) -> bytes:
    """An 8-bit greyscale PNG (no image library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return (
            struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + gray[y * w : (y + 1) * w] for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def replay(records: Iterable[dict[str, Any]], out_dir: Path) -> int:
    """Write ``records`` (a log's, e.g. its live branch) as scalars into ``out_dir``; returns
    the number of records mirrored."""
    mirror = TensorBoardMirror(out_dir, media=False)
    n = 0
    for rec in records:
        mirror.record(rec)
        n += 1
    mirror.close()
    return n


def main(argv: list[str] | None = None) -> int:
    """``python -m trainer.tools.tbmirror RECORDS.jsonl OUT_DIR``: scalars of a log's records
    (``nal-tui export --tensorboard`` runs this with the live branch's records)."""
    import argparse  # the command line only

    ap = argparse.ArgumentParser(prog="python -m trainer.tools.tbmirror", description=main.__doc__)
    ap.add_argument("records", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    why = missing()
    if why:
        print(why.replace("log.tensorboard needs", "a TensorBoard export needs"), file=sys.stderr)
        return ev.EXIT_USAGE
    recs, _, _ = parse_lines(args.records.read_bytes().splitlines())
    n = replay(recs, args.out)
    print(f"wrote {n} records into {args.out}")
    return ev.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
