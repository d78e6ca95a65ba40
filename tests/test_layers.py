"""The layering rules, read from the source: no import cycle between the packages of `app`,
no PyTorch in `app`, no database or Celery in the engine.

A package is `app.<name>`; the modules directly under `app/` (main.py, cli.py, models.py,
wiring.py) are the composition root and may import anything. Every import counts, also one
inside a function: it is still a dependency, only a later one.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """The absolute names `path` imports, each with its line (`from a import b` gives `a.b`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(name: str) -> str | None:
    """`app.<name>` for a name inside one of app's packages; None for anything else."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != "app" or not (APP / parts[1]).is_dir():
        return None
    return f"app.{parts[1]}"


def package_graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> where (`file:line`), for app's packages."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in _python_files(APP):
        source = _package_of(_module_name(path))
        if source is None:
            continue  # the composition root
        edges = graph.setdefault(source, {})
        for name, line in imports(path):
            target = _package_of(name)
            if target is not None and target != source:
                edges.setdefault(target, []).append(f"{path.relative_to(REPO)}:{line}")
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """One shortest cycle through each package that is on one, without repeats."""
    found: dict[frozenset[str], list[str]] = {}
    for start in sorted(graph):
        # Breadth-first from `start`'s neighbours back to `start`: the shortest cycle through it.
        paths = {n: [start, n] for n in sorted(graph[start])}
        queue = list(paths)
        while queue:
            node = queue.pop(0)
            if node == start:
                cycle = paths[node]
                found.setdefault(frozenset(cycle), cycle)
                break
            for nxt in sorted(graph.get(node, {})):
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    queue.append(nxt)
    return list(found.values())


def _describe(cycle: list[str], graph: dict[str, dict[str, list[str]]]) -> str:
    steps = [f"  {a} -> {b}  ({', '.join(graph[a][b][:3])})" for a, b in itertools.pairwise(cycle)]
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_no_import_cycle_between_app_packages():
    graph = package_graph()
    found = cycles(graph)
    assert not found, "import cycles between packages:\n" + "\n".join(
        _describe(c, graph) for c in found
    )


def test_the_webhook_transport_knows_no_publisher():
    allowed = {"app.core", "app.audit"}
    extra = {
        target: where
        for target, where in package_graph().get("app.webhooks", {}).items()
        if target not in allowed
    }
    assert not extra, f"app.webhooks imports {extra}"


def test_packages_do_not_import_the_composition_root():
    root = {p.stem for p in APP.glob("*.py")} - {"__init__"}
    offending = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in _python_files(APP)
        if _package_of(_module_name(path)) is not None
        for name, line in imports(path)
        if name.split(".")[:2] in (["app", stem] for stem in root)
    ]
    assert not offending, "\n".join(offending)


def _lines_importing(path: Path, module: str) -> list[str]:
    return [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for name, line in imports(path)
        if name == module or name.startswith(module + ".")
    ]


def test_cli_and_demo_do_not_import_each_other_both_ways():
    cli_to_demo = _lines_importing(APP / "cli.py", "workers.demo")
    demo_to_cli = _lines_importing(REPO / "workers" / "demo.py", "app.cli")
    both_ways = "\n".join(cli_to_demo + demo_to_cli)
    assert not (cli_to_demo and demo_to_cli), f"cli and demo import each other:\n{both_ways}"


def _importers(folder: Path, *modules: str) -> list[str]:
    return [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in _python_files(folder)
        for name, line in imports(path)
        if name.split(".")[0] in modules
    ]


def test_app_never_imports_torch():
    assert not _importers(APP, "torch"), "\n".join(_importers(APP, "torch"))


def test_the_engine_knows_no_database_queue_or_service():
    found = _importers(REPO / "workers" / "engine", "app", "sqlalchemy", "celery")
    assert not found, "\n".join(found)


def test_the_stores_know_no_database_queue_service_or_torch():
    found = _importers(REPO / "workers" / "store", "app", "sqlalchemy", "celery", "torch")
    assert not found, "\n".join(found)


def test_the_checks_see_imports():
    """The helpers above find what they must, so that a passing test means something."""
    graph = {"app.a": {"app.b": ["x"]}, "app.b": {"app.c": ["y"]}, "app.c": {"app.a": ["z"]}}
    assert cycles(graph) == [["app.a", "app.b", "app.c", "app.a"]]
    assert cycles({"app.a": {"app.b": ["x"]}, "app.b": {}}) == []
    names = {name for name, _ in imports(APP / "erasure" / "lifecycle.py")}
    assert "app.erasure.events" in names
    assert _importers(REPO / "workers" / "pipeline", "torch")
