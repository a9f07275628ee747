"""Where configs and the demo corpus are: the shipped presets (named without a path, e.g.
``--config demo``), what a missing config's message suggests, and where a relative demo
corpus lives when the current directory is not the repository.

Torch-free: the trainer, ``nal-tui`` and preflight all resolve names here.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from trainer.config.schema import ConfigError

PRESETS_DIR = Path(__file__).resolve().parent / "presets"  # package data (config/ in a clone)
PRESET_SUFFIX = ".yaml"
DEMO_PRESET = "demo"
DATA_DIR_ENV = "NAL_DATA_DIR"  # overrides the per-user data directory of the demo corpus
CACHE_DIR_ENV = "NAL_CACHE_DIR"  # overrides the per-user cache (exported models vocode reuses)
APP_NAME = "naudiolab"


class ConfigNotFound(ConfigError):
    """A config path or name that names no file; the message lists what exists."""


def presets() -> dict[str, Path]:
    """The shipped configs by name (``demo``, ``hifigan_v1``, ...), sorted."""
    try:
        files = sorted(PRESETS_DIR.glob(f"*{PRESET_SUFFIX}"))
    except OSError:
        files = []
    return {f.name[: -len(PRESET_SUFFIX)]: f for f in files if f.is_file()}


def preset_summary(path: Path) -> str:
    """The first comment line of a preset (what it is), without the ``#``."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().strip()
    except OSError:
        return ""
    return first.lstrip("#").strip() if first.startswith("#") else ""


def resolve_config(arg: str | os.PathLike[str]) -> Path:
    """The file a ``--config`` argument means: an existing path as given, else a preset
    named without a directory (``demo``, ``hifigan_v1.yaml``); otherwise the path as given
    (loading it then raises :class:`ConfigNotFound` listing what exists)."""
    p = Path(arg)
    if p.exists() or p.parent != Path("."):
        return p
    name = p.name[: -len(PRESET_SUFFIX)] if p.name.endswith(PRESET_SUFFIX) else p.name
    return presets().get(name, p)


HINT_CUTOFF = 0.75  # difflib ratio of the names without .yaml: "dmeo" ~ "demo" is 0.75
HINT_SPREAD = 0.1  # only hints about as close as the closest one


def close_names(word: str, candidates: list[str], n: int = 2) -> list[str]:
    """The few ``candidates`` close to ``word`` (typos, a swapped letter), best first: at
    least ``HINT_CUTOFF`` alike and within ``HINT_SPREAD`` of the best, so a near miss
    is not padded with names that merely share a prefix."""
    scored = []
    for c in dict.fromkeys(candidates):
        m = difflib.SequenceMatcher(None, word, c)
        if m.real_quick_ratio() >= HINT_CUTOFF and m.quick_ratio() >= HINT_CUTOFF:
            r = m.ratio()
            if r >= HINT_CUTOFF:
                scored.append((r, c))
    scored.sort(reverse=True)  # ties: as difflib orders them
    return [c for r, c in scored[:n] if r >= scored[0][0] - HINT_SPREAD]


def _stem(name: str) -> str:
    for suffix in (PRESET_SUFFIX, ".yml"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def missing_config_message(arg: str | os.PathLike[str]) -> str:
    """One line for a config that is not there: the presets, and the nearest files (only
    close matches, compared by name: a shared ``config/`` or ``.yaml`` does not count)."""
    p = Path(arg)
    names = presets()
    wanted = _stem(p.name)
    bare = p.parent == Path(".")  # a bare name resolves to a preset: those first
    near = {str(f): _stem(f.name) for f in _nearby_configs(p) if not bare or f.parent == p.parent}
    close_stems = close_names(wanted, list(near.values()))
    close_files = [f for f, stem in near.items() if stem in close_stems][:2]
    close_files.sort(key=lambda f: close_stems.index(near[f]))
    close_presets = close_names(wanted, list(names), n=1)
    hints = (close_presets + close_files) if bare else (close_files or close_presets)
    msg = f"{p}: config file not found"
    if hints:
        msg += f" (did you mean {' or '.join(dict.fromkeys(hints))}?)"
    if names:
        msg += f"; shipped presets, named without a path: {', '.join(names)}"
    return msg


def _nearby_configs(p: Path) -> list[Path]:
    """YAML files beside where ``p`` points and, for a relative path, in ./config/ (at most
    a few hundred)."""
    dirs = [p.parent] + ([] if p.is_absolute() else [Path("config")])
    out: list[Path] = []
    for d in dict.fromkeys(dirs):
        try:
            for f in d.iterdir():
                if f.suffix in (".yaml", ".yml") and len(out) < 500:
                    out.append(f if d != Path(".") else Path(f.name))
        except OSError:
            continue
    return out


# ------------------------------------------------------------------ the demo corpus


def checkout_root() -> Path | None:
    """The source tree this package runs from (a clone, editable install), or None when it
    is installed (a wheel in site-packages has no pyproject.toml beside the package)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "trainer").is_dir() else None


def user_data_dir() -> Path:
    """Where per-user data (the generated demo corpus) goes: ``$NAL_DATA_DIR``, else the
    platform's user data directory (``~/.local/share/naudiolab`` on Linux)."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    # platformdirs comes with textual (a core dependency); read only when a demo is placed.
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False)


def user_cache_dir() -> Path:
    """Where re-creatable files go (the ONNX models ``vocode --engine onnx`` reuses):
    ``$NAL_CACHE_DIR``, else the platform's user cache directory (``~/.cache/naudiolab``)."""
    env = os.environ.get(CACHE_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_path  # see user_data_dir

    return user_cache_path(APP_NAME, appauthor=False)


def place_demo_corpus(corpus_dir: str) -> str:
    """Where a demo corpus named ``corpus_dir`` (relative) is: as given when it exists there
    or the current directory is the repository; the repository's one from elsewhere in a
    clone; else the per-user data directory (``$NAL_DATA_DIR`` first)."""
    p = Path(corpus_dir).expanduser()
    if p.is_absolute():
        return corpus_dir
    if os.environ.get(DATA_DIR_ENV, "").strip():
        return str(user_data_dir() / p.name)
    if p.exists():
        return corpus_dir
    root = checkout_root()
    if root is None:
        return str(user_data_dir() / p.name)
    try:
        here = Path.cwd().resolve()
    except OSError:
        here = None
    return corpus_dir if here == root else str(root / p)
