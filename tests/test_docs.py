"""docs/ARCHITECTURE.md points at real code: every ``path::name`` it cites is a top-level function,
class or assignment of that file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_architecture_references_exist():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    refs = sorted(set(re.findall(r"([\w/]+\.py)::(\w+)", text)))
    assert len(refs) >= 40, "the equation table should cite the code"
    missing = [f"{p}::{n}" for p, n in refs
               if not (ROOT / p).exists() or n not in top_level_names(ROOT / p)]
    assert not missing, f"docs/ARCHITECTURE.md cites names that do not exist: {missing}"
