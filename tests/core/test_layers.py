"""The plugin API is the only door: first-party plugins import ``hanzo_cli.api`` and nothing else of
the core, and never another plugin. Imports inside functions count. (import-linter, run by tox's
lint environment, checks the core's layers and cycles; this test runs with the suite.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_FILES = sorted(p for p in (ROOT / "plugins").glob("hanzo-*/hanzo_*/**/*.py") if "build" not in p.parts)
FIRST_PARTY = {p.parent.name for p in (ROOT / "plugins").glob("hanzo-*/hanzo_*/__init__.py")}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "hanzo_cli":  # from hanzo_cli import x: x is a module or a name
                found += [(node.lineno, f"hanzo_cli.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def test_the_plugins_are_found() -> None:
    assert {"hanzo_ollama", "hanzo_huggingface", "hanzo_lmstudio", "hanzo_llamacpp"} <= FIRST_PARTY
    assert len(PLUGIN_FILES) > 20


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT / "plugins")))
def test_plugins_import_only_the_public_api(path: Path) -> None:
    own = path.relative_to(ROOT / "plugins").parts[1]
    bad = []
    for line, module in imported_modules(path):
        top = module.split(".")[0]
        if top == "hanzo_cli" and module != "hanzo_cli.api":
            bad.append(f"line {line}: {module} is private to the core (use hanzo_cli.api)")
        elif top in FIRST_PARTY and top != own:
            bad.append(f"line {line}: {module} belongs to another plugin (use a declared interface)")
    assert not bad, "\n".join(bad)


def test_the_checker_catches_a_private_import(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from hanzo_cli.store import Store\n    import hanzo_huggingface.hub\n")
    assert imported_modules(sample) == [(2, "hanzo_cli.store"), (3, "hanzo_huggingface.hub")]


def test_no_core_module_does_too_many_jobs() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "hanzo_cli").rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 550
    }
    assert not long, f"core modules over ~500 lines: {long}"


def test_api_exports_what_it_lists() -> None:
    import hanzo_cli.api as api

    assert sorted(api.__all__) == sorted(["API_VERSION", *api._SOURCES])
    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert not missing
    assert api.API_VERSION.count(".") == 1
    with pytest.raises(AttributeError):
        api.store  # noqa: B018 - modules are not part of the API, only the names listed


def test_no_import_cycles_anywhere() -> None:
    """No cycle among the core's and the plugins' modules, imports inside functions included (grimp is
    import-linter's graph builder; the lint environment checks the layer contracts themselves)."""
    import grimp

    packages = ["hanzo_cli", *sorted(FIRST_PARTY)]
    graph = grimp.build_graph(*packages, exclude_type_checking_imports=True)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found
