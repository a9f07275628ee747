"""The house's layout rules, read from the source: no import circle, function-level imports
only where they keep torch or an optional extra off a light path (and say so), one owner of
the checkpoint format's keys, a short top of ``trainer/``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("trainer", "nal_tui")


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = {name: path for pkg in PACKAGES for name, path in _modules(pkg).items()}


def _target(module: str, path: Path, node: ast.ImportFrom, alias: ast.alias) -> str | None:
    base = node.module or ""
    if node.level:
        parts = module.split(".")
        if path.name != "__init__.py":
            parts = parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, base] if base else parts)
    for cand in (f"{base}.{alias.name}", base):
        while cand and cand not in MODULES and "." in cand:
            cand = cand.rsplit(".", 1)[0]
        if cand in MODULES:
            return cand
    return None


def _imports(module: str, path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """(house modules imported, at any level; function-level import lines)."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    top: set[str] = set()
    in_function: list[tuple[int, str]] = []

    def visit(node: ast.AST, depth: int, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            tc = type_checking or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            )
            d = depth + isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, (ast.Import, ast.ImportFrom)) and not tc:
                if d:  # the statement, and the comment above its block of imports
                    first = child.lineno - 1
                    while first > 0 and lines[first - 1].strip().startswith(("from ", "import ")):
                        first -= 1
                    text = "\n".join(lines[max(first - 1, 0) : child.end_lineno])
                    in_function.append((child.lineno, text))
                if isinstance(child, ast.ImportFrom):
                    top.update(t for a in child.names if (t := _target(module, path, child, a)))
                else:
                    top.update(a.name for a in child.names if a.name in MODULES)
            visit(child, d, tc)

    visit(tree, 0, False)
    top.discard(module)
    return top, in_function


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v][0]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_anywhere() -> None:
    """Function-level imports count: a lazy import is still a circle."""
    assert _cycles() == []


@pytest.mark.parametrize("package", PACKAGES)
def test_function_level_imports_say_why(package: str) -> None:
    """Each one keeps torch or an optional extra off a light path, and its line says so."""
    silent = [
        f"{MODULES[m].relative_to(ROOT)}:{n}: {line.strip().splitlines()[-1]}"
        for m, (_, fl) in GRAPH.items()
        if m.split(".")[0] == package
        for n, line in fl
        if "#" not in line
    ]
    assert silent == []


def test_only_the_format_module_types_a_checkpoint_key() -> None:
    keys = {"opt_g", "opt_d", "sched_g", "sched_d", "batch_in_epoch"}
    owner = ROOT / "trainer" / "checkpointing" / "format.py"
    typed = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "trainer").rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Constant) and node.value in keys and p != owner
    )
    assert typed == []


def test_the_top_of_trainer_holds_a_handful_of_modules() -> None:
    top = sorted(p.name for p in (ROOT / "trainer").glob("*.py"))
    assert top == [
        "__init__.py",
        "__main__.py",
        "audio.py",
        "cli.py",
        "data.py",
        "demo_corpus.py",
        "losses.py",
    ]
