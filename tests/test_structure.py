"""The layout rules of docs/architecture.md, checked: no import cycle between the project's modules
(imports inside functions included: a lazy import is still a dependency), no module over 400
lines, serving never imports torch, and nothing points outside the repository."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGES = ("common", "bundle", "recsys", "vision", "serving", "pipelines")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (``from a import b`` counts b when b is a module)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for n in names:
                if n in mods and n != m and not m.startswith(n + "."):  # a package's own __init__ is not a cycle
                    graph[m].add(n)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (iterative DFS with colours)."""
    colour = dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done
    for start in graph:
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour[nxt] == 1:
                return path[path.index(nxt):] + [nxt]
            elif colour[nxt] == 0:
                colour[nxt] = 1
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
    return None


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_project_modules() -> None:
    graph = import_graph()
    assert len(graph) > 40 and graph["pipelines.nightly"]  # the walk really saw the code
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_training_code_never_imports_the_http_layer() -> None:
    http = {m for m in import_graph() if m.startswith(("serving.app", "serving.routers", "serving.deps"))}
    for m, deps in import_graph().items():
        if m.startswith(("recsys", "vision", "common")):
            assert not deps & http, f"{m} imports {deps & http}"


def test_no_module_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _modules().values() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_nothing_points_outside_the_repository() -> None:
    files = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.toml", "*.yaml", "*.sh"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    outside = [f for f in files if re.search(r"\.\./shared|shared/DESIGN\.md", (ROOT / f).read_text())]
    assert not outside, outside


def test_the_cli_starts_without_torch() -> None:
    """A serving-only install has no torch: `vitrine serve`, `bundle`, `data` must still start."""
    code = "import sys, pipelines.cli; assert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


SERVING_FOR_PIPELINES = {"serving.smoke": ["check_servable"], "serving.holdout": ["serve_holdout"],
                         "serving.experiments": ["Experiment", "Guardrails", "Variant", "utc"],
                         "serving.merch_store": ["MerchStore"], "serving.experiment_stats": ["experiment_analysis"],
                         "serving.settings": ["ServingSettings"], "serving.workers": ["run"]}


def test_pipelines_imports_of_serving_only_what_it_runs_offline() -> None:
    """The offline half reaches the online half through the bundle contract (``bundle``) and the
    service's own code it runs offline: its smoke check (before a bundle is published), its served
    path over a holdout (the nightly gate), the experiments' model, log and analysis (the
    nightly canary decides with the statistics the console shows), and the service `vitrine serve`
    starts (its settings size the workers' thread pools; serving/workers.py runs them)."""
    for m, path in _modules().items():
        if not m.startswith("pipelines"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                bad = [a.name for a in node.names if a.name.split(".")[0] == "serving"]
                assert not bad, f"{m} imports {bad}"
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "serving":
                names = [a.name for a in node.names]
                assert SERVING_FOR_PIPELINES.get(node.module) == names, f"{m} imports {names} from {node.module}"
