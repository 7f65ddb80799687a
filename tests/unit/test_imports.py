"""No import cycle among lambdalab modules: every module's top-level imports, read from its AST, form a DAG.

Imports inside functions (deliberately late) do not count; everything at module level does, including imports inside
`try` blocks and `if`s, `if TYPE_CHECKING:` among them: a cycle only the type checker sees is still a cycle of
dependencies."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lambdalab"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(tree.body)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _top_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from pkg import mod` imports the module pkg.mod when there is one, else a name of pkg
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_checker_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_reads_real_imports() -> None:
    graph = import_graph()
    assert "lambdalab.awslambda.core.policy" in graph["lambdalab.awslambda.service.service"]
    assert "lambdalab.clock" in graph["lambdalab.awslambda.core.policy"]


def test_no_import_cycle_among_lambdalab_modules() -> None:
    graph = import_graph()
    cycles = []
    while (cycle := find_cycle(graph)) is not None:  # report every cycle, one edge of each removed in turn
        cycles.append(" -> ".join(cycle))
        graph[cycle[-2]].discard(cycle[-1])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


# The sub-packages of lambdalab.awslambda, top to bottom (docs/ARCHITECTURE.md, "Layers"): a module imports only its
# own layer's modules and those of the layers below, except the edges named here.
LAYERS = ("api", "service", "esm", "core", "hosting", "runtime")
UPWARD_EDGES = {
    ("runtime", "hosting"),  # the runtime implements the seam
    ("lambdalab.awslambda.runtime.environment", "lambdalab.awslambda.core.billing"),  # the REPORT's billed duration
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["lambdalab", "awslambda"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in LAYERS else None


def test_every_awslambda_module_is_in_a_layer() -> None:
    loose = [m for m in import_graph() if m.startswith("lambdalab.awslambda.") and _layer(m) is None]
    assert not loose, loose


def test_awslambda_imports_point_down_the_layers() -> None:
    upward = []
    for module, targets in import_graph().items():
        source = _layer(module)
        for target in targets:
            layer = _layer(target)
            if source is None or layer is None or LAYERS.index(layer) >= LAYERS.index(source):
                continue
            if (source, layer) not in UPWARD_EDGES and (module, target) not in UPWARD_EDGES:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports pointing up the layers:\n" + "\n".join(sorted(upward))
