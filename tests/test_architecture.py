"""The package's shape, read from its own source: no import circles (imports inside functions
count: they run too), the reference model never reaching into its fast paths, no module too
long to read in one sitting, and measured figures kept in benchmarks/RESULTS.md rather than
in comments that go stale when the CPU changes."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mvit_cli"
LONGEST_MODULE = 600
MOST_FIGURES_IN_COMMENTS = 10


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(name: str, path: Path) -> set[str]:
    """Every package module `name` imports, at the top or inside a function, type-checking
    imports included: each is an edge of the graph a circle would run through."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES
                       else module for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: imported_modules(name, path) for name, path in MODULES.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                part.append(member)
                if member == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_circles():
    assert circles(import_graph()) == []


def test_a_circle_is_found_when_there_is_one():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_reference_model_never_imports_its_fast_paths():
    """The fast paths are functions of the reference modules' parameters: they import the
    reference, never the other way round."""
    graph = import_graph()
    reference = [name for name in graph if name.startswith("mvit_cli.models")
                 and not name.startswith("mvit_cli.models.fast")
                 and name != "mvit_cli.models"]
    assert reference, "no reference model modules found"
    reaching = {name: sorted(t for t in graph[name] if t.startswith("mvit_cli.models.fast"))
                for name in reference}
    assert {name: fast for name, fast in reaching.items() if fast} == {}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_longer_than_one_sitting(name):
    assert len(MODULES[name].read_text().splitlines()) <= LONGEST_MODULE


UNIT = r"(?:ms|µs|us|s|seconds?|minutes?|%|x|×|MB|MiB|GB|GiB|KB|kB|GFLOPs?|fps|times)"
FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?" + UNIT + r"(?!\w)")
MEASURED = re.compile(r"measur|faster|slower|took|cost|ran |speed", re.IGNORECASE)


def commentary(path: Path) -> list[str]:
    """The comments and docstrings of a module."""
    source = path.read_text()
    texts = [token.string for token in tokenize.generate_tokens(io.StringIO(source).readline)
             if token.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                texts.append(docstring)
    return texts


def measured_figures(text: str) -> int:
    """Figures with a unit, in a sentence that speaks of a measurement."""
    sentences = re.split(r"(?<=[.;:])\s", " ".join(text.split()))
    return sum(len(FIGURE.findall(s)) for s in sentences if MEASURED.search(s))


def test_measured_figures_live_in_the_results_not_in_comments():
    found = {name: figures for name, path in MODULES.items()
             if (figures := sum(measured_figures(t) for t in commentary(path)))}
    assert sum(found.values()) <= MOST_FIGURES_IN_COMMENTS, found


def test_a_measured_figure_is_counted():
    assert measured_figures("B-16x4 ran 1.14x faster in bf16 and took 0.32 s.") == 2
    assert measured_figures("16 frames at 7.5 fps, short side 256.") == 0
