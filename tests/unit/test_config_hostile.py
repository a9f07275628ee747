"""Hostile configs: non-UTF-8 bytes, alias bombs, absurd sizes, huge values; every verdict is
a ConfigError naming the file and the key, reached in bounded time and memory, with a
bounded message."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from trainer.config.schema import ConfigError
from trainer.config.yamlfile import MAX_CONFIG_BYTES, load

MSG_MAX = 600  # no message renders an unbounded value


def _load_err(tmp_path: Path, data: bytes | str) -> str:
    p = tmp_path / "c.yaml"
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    with pytest.raises(ConfigError) as e:
        load(p)
    msg = str(e.value)
    assert msg.startswith(str(p)), msg
    assert len(msg) < MSG_MAX, msg
    return msg


def test_non_utf8_bytes_name_line_and_key(tmp_path: Path) -> None:
    data = b"name: demo\ndata:\n  corpus_dir: data/caf\xe9\n  val_size: 4\n"
    msg = _load_err(tmp_path, data)
    assert "not valid UTF-8 at line 3" in msg and "'data.corpus_dir'" in msg
    assert "0xe9" in msg


def test_non_utf8_in_a_comment_still_names_the_line(tmp_path: Path) -> None:
    msg = _load_err(tmp_path, b"# r\xe9sum\xe9\ntrain: {batch_size: 4}\n")
    assert "not valid UTF-8 at line 1, column 4" in msg


def _billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["train:", "  batch_size: 4", "loss:", "  stft_resolutions:", '    - &l0 ["lol"]']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*l{i - 1}"] * width)
        lines.append(f"    - &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_in_a_real_key_is_refused_fast_and_small(tmp_path: Path) -> None:
    # 9**9 ~ 387M "lol"s once expanded: must be refused without building them.
    tracemalloc.start()
    try:
        msg = _load_err(tmp_path, _billion_laughs())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "'loss.stft_resolutions[" in msg and "expands to more than" in msg
    assert peak < 50 << 20, f"peak {peak} bytes"


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    msg = _load_err(tmp_path, "generator:\n  upsample_rates: &a [8, *a]\n")
    assert "'generator.upsample_rates" in msg and "recursive" in msg


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    msg = _load_err(tmp_path, "loss:\n  stft_resolutions: " + "[" * 3000 + "]" * 3000 + "\n")
    assert "nested too deeply (from line 2" in msg


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    msg = _load_err(tmp_path, "# " + "x" * (MAX_CONFIG_BYTES + 10) + "\n")
    assert "larger than" in msg


def test_huge_scalar_is_refused_naming_the_key(tmp_path: Path) -> None:
    msg = _load_err(tmp_path, "data:\n  corpus_dir: " + "a" * 100_000 + "\n")
    assert "'data.corpus_dir'" in msg and "100,000 characters" in msg


def test_huge_integer_is_refused_with_a_bounded_message(tmp_path: Path) -> None:
    msg = _load_err(tmp_path, "train:\n  max_steps: " + "9" * 4000 + "\n")
    assert "'train.max_steps'" in msg and "too large" in msg


def test_long_list_is_refused(tmp_path: Path) -> None:
    msg = _load_err(tmp_path, "discriminator:\n  periods: [" + ", ".join(["2"] * 500) + "]\n")
    assert "'discriminator.periods' has 500 entries" in msg


@pytest.mark.parametrize(
    "text, needle",
    [
        ("audio:\n  segment_size: 1000000000000\n", "'audio.segment_size' = "),
        ("train:\n  batch_size: 1000000000\n", "'train.batch_size' = "),
        (
            "train:\n  batch_size: 4096\naudio:\n  segment_size: 1048576\n",
            "'train.batch_size' x 'audio.segment_size' = 4,294,967,296 samples",
        ),
        ("generator:\n  upsample_initial_channel: 100000000\n", "'generator."),
        ("loss:\n  lambda_recon: .inf\n", "'loss.lambda_recon' is infinite"),
        ("train:\n  seed: " + "1" * 30 + "\n", "'train.seed' = "),
        (
            "audio:\n  segment_size: 512\n  n_fft: 512\n  win_length: 512\n",
            "'audio.segment_size' (512) must be at least the largest STFT size (2048",
        ),
        ("name: ../../etc\n", "'name' = '../../etc' must be a plain directory name"),
        ("train:\n  batch_size: 4\n  batch_size: 8\n", "key 'train.batch_size' appears twice"),
        ("data:\n  corpus_dir: !!binary aGVsbG8=\n", "'data.corpus_dir' must be a string"),
    ],
)
def test_absurd_values_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    assert needle in _load_err(tmp_path, text)


def test_error_reprs_are_capped(tmp_path: Path) -> None:
    # A long list where a scalar belongs: the message shows a bounded rendering of it.
    msg = _load_err(tmp_path, "train:\n  batch_size: [" + ", ".join(["123456789"] * 60) + "]\n")
    assert "'train.batch_size' must be an integer" in msg and "..." in msg


def test_a_directory_or_device_is_not_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        load("/dev/zero")
    with pytest.raises(ConfigError, match="cannot read config|not a regular file"):
        load(tmp_path)


def test_anchors_within_bounds_still_work(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(
        "optim:\n  lr_g: &lr 1.0e-4\n  lr_d: *lr\n"
        "generator:\n  resblock_dilation_sizes: [&d [1, 3, 5], *d, *d]\n"
    )
    cfg = load(p)
    assert cfg.optim.lr_d == cfg.optim.lr_g == 1e-4
    assert cfg.generator.resblock_dilation_sizes == ((1, 3, 5),) * 3
