"""docs/architecture.md is the map: every file, folder and ``path::name`` it cites in code spans
exists (the name as a module-level function or class, or ``Class.method``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "architecture.md"
CITED = re.compile(r"`([a-z_]+(?:/[\w.-]+)*(?:/|\.(?:py|md|html|js|css|yaml|toml|sh)))(?:::([\w.]+))?`")


def defines(path: Path, name: str) -> bool:
    """``name`` (``f``, ``C`` or ``C.m``) is defined at the top of the module or in the class body."""
    body = ast.parse(path.read_text()).body
    *outer, last = name.split(".")
    for part in outer:
        body = next((n.body for n in body if isinstance(n, ast.ClassDef) and n.name == part), None)
        if body is None:
            return False
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return any((isinstance(n, kinds) and n.name == last) or
               (isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == last for t in n.targets))
               for n in body)


def citations(text: str) -> list[tuple[str, str | None]]:
    return [(m.group(1), m.group(2)) for m in CITED.finditer(text)]


def test_the_checker_catches_a_stale_citation(tmp_path: Path) -> None:
    mod = tmp_path / "m.py"
    mod.write_text("class A:\n    def f(self): ...\n\ndef g(): ...\nX = 1\n")
    assert defines(mod, "A.f") and defines(mod, "g") and defines(mod, "X")
    assert not defines(mod, "A.g") and not defines(mod, "f") and not defines(mod, "B.f")
    assert citations("see `serving/x.py::A.f`, `docs/` and `ARTIFACTS/CURRENT`") == [("serving/x.py", "A.f"),
                                                                                   ("docs/", None)]


def test_every_citation_in_the_architecture_doc_exists() -> None:
    cited = citations(DOC.read_text())
    assert len(cited) > 80  # the map really cites the code
    missing = [f"{p}::{n}" if n else p for p, n in cited
               if not (ROOT / p).exists() or (n is not None and not defines(ROOT / p, n))]
    assert not missing, missing
