"""Data flows one way: no module of ivlm_core / ivlm_ros imports one that imports it back (even lazily)."""

from __future__ import annotations

import ast
from pathlib import Path

from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    mods = {}
    for path in [*ROOT.glob("ivlm_core/**/*.py"), *ROOT.glob("ivlm_ros/**/*.py")]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _imports(path: Path, mods: dict[str, Path]) -> set[str]:
    """Modules of this repository imported anywhere in the file (top level or inside functions), except
    under `if TYPE_CHECKING:` (annotations only, never executed)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in mods else node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out & mods.keys()


def test_no_import_cycle():
    mods = _modules()
    names = sorted(mods)
    index = {n: i for i, n in enumerate(names)}
    rows, cols = [], []
    for name in names:
        for target in _imports(mods[name], mods):
            rows.append(index[name])
            cols.append(index[target])
    graph = csr_matrix(([1] * len(rows), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(graph, directed=True, connection="strong")
    cycles = [sorted(n for n in names if labels[index[n]] == c) for c in set(labels.tolist())]
    assert [c for c in cycles if len(c) > 1] == []
