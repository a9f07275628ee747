"""The hardened YAML reader: a config file to plain data in bounded time and memory.

A missing, unreadable, empty, oversized or non-UTF-8 file, YAML errors, alias bombs, deep
nesting, huge scalars and duplicate keys are each one ConfigError naming the file (and the
key when there is one); the node graph is checked before any Python object is built.
"""

from __future__ import annotations

import os
import stat
import typing
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from trainer.config.build import deep_merge, from_dict, show, to_dict
from trainer.config.locate import (
    ConfigNotFound,
    missing_config_message,
    place_demo_corpus,
    resolve_config,
)
from trainer.config.schema import Config, ConfigError

# Bounds that keep a hostile or mistyped config from costing unbounded time or memory.
MAX_CONFIG_BYTES = 256 << 10  # real configs are ~2 KiB; PyYAML parses this much in ~0.5 s
MAX_YAML_NODES = 10_000  # after alias expansion; a full config has ~150
MAX_YAML_DEPTH = 16  # a full config nests 5 deep
MAX_SCALAR_CHARS = 4096  # PATH_MAX; also keeps int() far from CPython's 4300-digit limit


def load(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate a YAML config file, in bounded time and memory.

    Every failure is a ConfigError naming the file (and the key when there is one): a
    missing, unreadable, empty, oversized or non-UTF-8 file, YAML errors, alias bombs.
    ``path`` may name a shipped preset (``demo``); a relative demo corpus is placed by
    :func:`trainer.config.locate.place_demo_corpus`.
    """
    p = resolve_config(path)
    src = str(p)
    raw = _read_bounded(p, src)
    text = _decode(raw, src)
    data = _parse_yaml(text, src)
    if data is None:
        raise ConfigError(f"{src}: the config file is empty (no sections)")
    if overrides:
        data = deep_merge(data if isinstance(data, dict) else {}, overrides)
    cfg = from_dict(data, src)
    if cfg.data.demo:
        where = place_demo_corpus(cfg.data.corpus_dir)
        if where != cfg.data.corpus_dir:
            cfg = replace(cfg, data=replace(cfg.data, corpus_dir=where))
    return cfg


def _read_bounded(p: Path, src: str) -> bytes:
    try:
        with open(p, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(f"{src}: not a regular file")
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigNotFound(missing_config_message(p)) from None
    except OSError as e:
        raise ConfigError(f"{src}: cannot read config: {e.strerror or e}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{src}: config file is larger than {MAX_CONFIG_BYTES // 1024} KiB; "
            f"a config is a few KiB of YAML"
        )
    return raw


def _decode(raw: bytes, src: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        # Name the key whose text holds the bad byte: parse with the byte replaced.
        index = len(raw[: e.start].decode("utf-8-sig"))
        key = _key_at(raw.decode("utf-8-sig", errors="replace"), index)
        where = f" in '{key}'" if key else ""
        raise ConfigError(
            f"{src}: not valid UTF-8 at line {line}, column {col}{where} "
            f"(byte 0x{raw[e.start]:02x}); save the file as UTF-8"
        ) from None


def _key_at(text: str, index: int) -> str | None:
    """Dotted key of the deepest mapping entry whose text spans ``index``, if any."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except (yaml.YAMLError, RecursionError):
        return None
    best: str | None = None
    stack: list[tuple[yaml.Node, str]] = [(root, "")] if root is not None else []
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                kp = f"{path}.{k.value}" if path else str(k.value)
                if isinstance(k, yaml.ScalarNode) and (
                    k.start_mark.index <= index < max(v.end_mark.index, k.end_mark.index)
                ):
                    best = kp[:120]
                    stack.append((v, kp))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                if v.start_mark.index <= index < v.end_mark.index:
                    stack.append((v, f"{path}[{i}]"))
    return best


def _parse_yaml(text: str, src: str) -> Any:
    """yaml.safe_load, but the node graph is checked before any Python object is built."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ConfigError(
                f"{src}: YAML nested too deeply (from line {_deep_line(text)}; "
                f"a config nests {MAX_YAML_DEPTH} levels at most)"
            ) from None
        if node is None:
            return None
        _check_nodes(node, src)
        return loader.construct_document(node)
    except ConfigError:
        raise
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{src}: not valid YAML{where}: {show(problem)}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        raise ConfigError(f"{src}: YAML value cannot be read: {show(str(e))}") from None
    finally:
        loader.dispose()


def _deep_line(text: str) -> int:
    """The line where flow brackets first nest deeper than MAX_YAML_DEPTH (a rough scan)."""
    depth = 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        for ch in line:
            depth += (ch in "[{") - (ch in "]}")
            if depth > MAX_YAML_DEPTH:
                return line_no
    return 1


def _check_nodes(root: yaml.Node, src: str) -> None:
    """Refuse alias bombs, recursive aliases, deep nesting, huge scalars and duplicate keys.

    Counts the nodes the document expands to (each alias counted as often as it is used)
    with one memoised pass over the node graph, so a billion-laughs document is refused
    after visiting its few distinct nodes, naming the key that holds the expansion.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, path: str, depth: int) -> int:
        nid = id(node)
        if nid in sizes:
            return sizes[nid]
        if nid in active:
            raise ConfigError(f"{src}: '{path or '<top>'}' refers to itself (recursive YAML alias)")
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{src}: '{path}' is nested more than {MAX_YAML_DEPTH} levels deep")
        if isinstance(node, yaml.ScalarNode):
            if len(node.value) > MAX_SCALAR_CHARS:
                raise ConfigError(
                    f"{src}: value of '{path or '<top>'}' is {len(node.value):,} characters "
                    f"long; at most {MAX_SCALAR_CHARS} are accepted"
                )
            sizes[nid] = 1
            return 1
        active.add(nid)
        total = 1
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for k, v in node.value:
                kname = k.value if isinstance(k, yaml.ScalarNode) else "<complex key>"
                kname = kname[:80]
                kp = f"{path}.{kname}" if path else kname
                if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                    if k.value in keys:
                        raise ConfigError(f"{src}: key '{kp}' appears twice")
                    keys.add(k.value)
                total += size(k, kp, depth + 1) + size(v, kp, depth + 1)
                if total > MAX_YAML_NODES:
                    _too_big(src, kp)
        else:
            for i, v in enumerate(node.value):
                total += size(v, f"{path}[{i}]" if path else f"[{i}]", depth + 1)
                if total > MAX_YAML_NODES:
                    _too_big(src, path or "<top>")
        active.discard(nid)
        sizes[nid] = total
        return total

    size(root, "", 0)


def _too_big(src: str, path: str) -> typing.NoReturn:
    raise ConfigError(
        f"{src}: '{path}' expands to more than {MAX_YAML_NODES:,} YAML nodes (aliases "
        f"repeating anchors: an expansion bomb?); a config needs a few hundred"
    )


def dump(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
