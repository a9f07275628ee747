"""LJSpeech-format corpus, training segments, the resumable batch sampler and validation set.

The sampler yields ``(index, segment_seed)`` pairs; the dataset draws its random segment
offset from that seed alone, so a resumed run sees exactly the batches an uninterrupted
one would, whatever the number of DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset, DistributedSampler

from trainer.audio import LOG_FLOOR, AudioError, read_wav
from trainer.config.schema import AudioConfig, Config
from trainer.corpus.check import MEL_FRAME_TOLERANCE, check_corpus
from trainer.corpus.metadata import MetadataLine, parse_metadata, split_ids
from trainer.corpus.report import RULE_CORPUS_DIR, CorpusReport, DataError
from trainer.demo_corpus import DemoCorpusError, ensure_demo_corpus

__all__ = [
    "MEL_FRAME_TOLERANCE",
    "Corpus",
    "DataError",
    "MetadataLine",
    "ResumableBatchSampler",
    "TrainDataset",
    "Utterance",
    "ValidationSet",
    "collate",
    "parse_metadata",
    "segment_seed",
    "split_ids",
]

T = TypeVar("T")
PRELOAD_LIMIT_BYTES = 1 << 30  # training audio below this is held in memory as float32
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Utterance:
    """One usable corpus item: its files and its length at the configured sample rate."""

    id: str
    text: str
    wav_path: Path
    mel_path: Path | None
    file_sr: int
    num_samples: int  # at the configured rate (after resampling)


@dataclass(frozen=True)
class Corpus:
    """A checked corpus: its train and validation utterances (validation sorted by id)."""

    root: Path
    audio: AudioConfig
    resample: bool
    train: tuple[Utterance, ...]
    val: tuple[Utterance, ...]
    report: CorpusReport | None = None
    unseen: tuple[Utterance, ...] = ()  # data.unseen_metadata's held-out set (sorted by id)

    @classmethod
    def load(cls, cfg: Config, nproc: int = 1, tick: Callable[[], None] | None = None) -> Corpus:
        """Check the corpus with :func:`trainer.corpus.check_corpus`, then split it.

        Raises DataError (one line: the rule and the file) when any rule is broken; the
        warnings stay in ``report``. With ``data.demo`` the demo corpus is generated first
        when missing. ``tick`` may raise to cancel a long check.
        """
        data, audio = cfg.data, cfg.audio
        if data.demo:
            try:
                ensure_demo_corpus(Path(data.corpus_dir).expanduser(), audio.sample_rate)
            except DemoCorpusError as e:
                raise DataError(f"[{RULE_CORPUS_DIR}] {e}") from None
        report = check_corpus(cfg, nproc, tick)
        if not report.ok:
            raise DataError(report.error_line())

        def utt(uid: str, clips: dict | None = None) -> Utterance:
            c = (report.clips if clips is None else clips)[uid]
            return Utterance(c.id, c.text, c.wav_path, c.mel_path, c.file_sr, c.num_samples)

        return cls(
            report.root,
            audio,
            data.resample,
            tuple(utt(u) for u in report.train_ids),
            tuple(utt(u) for u in report.val_ids),
            report,
            tuple(utt(u, report.unseen) for u in report.unseen_ids),
        )

    @property
    def has_mels(self) -> bool:
        return bool(self.train) and self.train[0].mel_path is not None

    def read(self, utt: Utterance) -> np.ndarray:
        """The whole utterance as float32 at the configured rate."""
        return read_wav(utt.wav_path, self.audio.sample_rate, self.resample)


def _load_mel(path: Path, mmap: bool = False) -> np.ndarray:
    try:
        mel = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: precomputed mel not found") from None
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: cannot read precomputed mel: {e}") from None
    if mel.ndim == 3 and mel.shape[0] == 1:  # [1, n_mels, frames], as Tacotron exports
        mel = mel[0]
    return mel


class TrainDataset(Dataset):
    """Random fixed-length training segments; indexed by ``(index, segment_seed)`` pairs.

    Audio is held in memory when it fits ``preload_limit_bytes``, else read per segment.
    """

    def __init__(
        self,
        corpus: Corpus,
        preload: bool | None = None,
        preload_limit_bytes: int = PRELOAD_LIMIT_BYTES,
        tick: Callable[[], None] | None = None,
    ) -> None:
        self.corpus = corpus
        self.utts = corpus.train
        self.segment = corpus.audio.segment_size
        self.hop = corpus.audio.hop_length
        self.with_mels = corpus.has_mels
        if preload is None:
            preload = sum(u.num_samples for u in self.utts) * 4 <= preload_limit_bytes
        self.preloaded = preload
        self._audio: list[np.ndarray] | None = None
        self._mels: list[np.ndarray] | None = None
        if preload:
            # ``tick`` between files: a stop request during a long preload is honoured.
            self._audio = [_ticked(tick, corpus.read, u) for u in self.utts]
            if self.with_mels:
                self._mels = [
                    _ticked(tick, _load_mel, u.mel_path).astype(np.float32) for u in self.utts
                ]

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, np.ndarray]:
        index, seed = key
        rng = np.random.default_rng(seed)
        if self.with_mels:
            return self._mel_segment(index, rng)
        n = self.utts[index].num_samples
        start = int(rng.integers(0, n - self.segment + 1)) if n > self.segment else 0
        return {"audio": self._audio_slice(index, start, self.segment)}

    def _mel_segment(self, index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        frames = self.segment // self.hop
        mel = (
            self._mels[index]
            if self._mels is not None
            else _load_mel(self.utts[index].mel_path, mmap=True)
        )
        total = mel.shape[1]
        start = int(rng.integers(0, total - frames + 1)) if total > frames else 0
        seg = np.asarray(mel[:, start : start + frames], dtype=np.float32)
        if seg.shape[1] < frames:
            # Pad with the log-mel of silence, matching the zero-padded audio.
            seg = np.pad(
                seg, ((0, 0), (0, frames - seg.shape[1])), constant_values=np.log(LOG_FLOOR)
            )
        return {"audio": self._audio_slice(index, start * self.hop, self.segment), "mel": seg}

    def _audio_slice(self, index: int, start: int, length: int) -> np.ndarray:
        """``length`` samples from ``start``, zero-padded past the end of the clip."""
        utt = self.utts[index]
        if self._audio is not None:
            seg = self._audio[index][start : start + length]
        elif utt.file_sr == self.corpus.audio.sample_rate:
            seg = _read_frames(utt.wav_path, start, length)
        else:
            seg = self.corpus.read(utt)[start : start + length]
        if len(seg) < length:
            seg = np.pad(seg, (0, length - len(seg)))
        return np.ascontiguousarray(seg, dtype=np.float32)


def _ticked(tick: Callable[[], None] | None, fn: Callable[..., T], *args: object) -> T:
    if tick is not None:
        tick()
    return fn(*args)


def _read_frames(path: Path, start: int, length: int) -> np.ndarray:
    try:
        with sf.SoundFile(str(path)) as f:
            f.seek(min(start, f.frames))
            data = f.read(length, dtype="float32", always_2d=True)[:, 0]
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise AudioError(f"{path}: cannot read audio file: {e}") from None
    return np.clip(data, -1.0, 1.0)


def collate(batch: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Stack items: ``audio`` [B, 1, segment] float32 and, with mels, ``mel`` [B, n_mels, frames]."""
    out = {"audio": torch.from_numpy(np.stack([b["audio"] for b in batch]))[:, None, :]}
    if "mel" in batch[0]:
        out["mel"] = torch.from_numpy(np.stack([b["mel"] for b in batch]))
    return out


def segment_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed from (seed, epoch, position in the epoch's global order)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + position) & _MASK64
    # splitmix64 finaliser: nearby inputs give unrelated outputs.
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) >> 1


class ResumableBatchSampler:
    """Per-epoch shuffled, rank-sharded batches of ``(index, segment_seed)`` pairs.

    Call ``set_epoch(e)`` then, on resume, ``set_start(b)`` to skip the first ``b`` batches
    of that epoch; ``set_epoch`` resets the start to 0.
    """

    def __init__(
        self,
        dataset_len: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.dataset_len = dataset_len
        self._dist = DistributedSampler(
            range(dataset_len),
            num_replicas=world_size,
            rank=rank,
            shuffle=True,
            seed=seed,
            drop_last=drop_last,
        )
        if len(self) == 0:
            raise DataError(
                f"the training set has {dataset_len} utterances, fewer than one "
                f"batch (train.batch_size={batch_size} x {world_size} process(es)); "
                f"add data or lower the batch size"
            )
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.start = 0
        self._dist.set_epoch(epoch)

    def set_start(self, batch_index: int) -> None:
        """Skip the first ``batch_index`` batches of the current epoch (already trained on)."""
        if not 0 <= batch_index <= len(self):
            raise ValueError(f"start batch {batch_index} is outside 0..{len(self)}")
        self.start = batch_index

    def __len__(self) -> int:
        n = self._dist.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        indices = list(iter(self._dist))
        # Position in the epoch's global order: DistributedSampler gives rank r every
        # world_size-th element starting at r, so seeds never repeat across ranks.
        pairs = [
            (idx, segment_seed(self.seed, self.epoch, self.rank + k * self.world_size))
            for k, idx in enumerate(indices)
        ]
        for b in range(self.start, len(self)):
            yield pairs[b * self.batch_size : (b + 1) * self.batch_size]


@dataclass(frozen=True)
class ValItem:
    """A whole validation utterance, trimmed to a multiple of the hop."""

    id: str
    text: str
    audio: np.ndarray  # float32 [T], T % hop == 0
    mel: np.ndarray | None  # precomputed [n_mels, T // hop] when data.mels_dir is set

    def audio_tensor(self) -> torch.Tensor:
        """The audio as a [1, 1, T] tensor."""
        return torch.from_numpy(self.audio)[None, None, :]


class ValidationSet:
    """The held-out utterances, loaded once, in a fixed order (sorted by id).

    ``unseen=True``: the unseen set (data.unseen_metadata) instead, always without mels.
    """

    def __init__(
        self, corpus: Corpus, tick: Callable[[], None] | None = None, unseen: bool = False
    ) -> None:
        hop = corpus.audio.hop_length
        self.items: list[ValItem] = []
        for utt in corpus.unseen if unseen else corpus.val:
            wav = _ticked(tick, corpus.read, utt)
            frames = len(wav) // hop
            mel = None
            if utt.mel_path is not None:
                mel = _load_mel(utt.mel_path).astype(np.float32)
                frames = min(frames, mel.shape[1])
                mel = np.ascontiguousarray(mel[:, :frames])
            self.items.append(
                ValItem(utt.id, utt.text, np.ascontiguousarray(wav[: frames * hop]), mel)
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> ValItem:
        return self.items[i]

    def __iter__(self) -> Iterator[ValItem]:
        return iter(self.items)
