"""The README's promises name real tests: a guarantee whose test was renamed or deleted fails here."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

_REFERENCE = re.compile(r"`(tests/test_\w+\.py)::(\w+)`")


def _test_names(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    }


def test_every_test_the_readme_names_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## What we guarantee, and how it is tested", 1)[1].split("\n## ", 1)[0]
    references = _REFERENCE.findall(section)
    assert len(references) >= 20, "the guarantees section lost its table"
    missing = [f"{path}::{name}" for path, name in references if name not in _test_names(path)]
    assert not missing, f"README names tests that do not exist: {missing}"
