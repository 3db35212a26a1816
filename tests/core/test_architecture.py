"""The import graph of src/ifpo points one way: a module imports only its own package or lower layers.

Layers, lowest first (README "Architecture"):

    config, io  ->  constraints, judge  ->  models  ->  data  ->  losses  ->  training
        ->  scale, sampling, builders, eval, report, bench, importers, tools

Top-layer packages are peers: none may import another, except the edges in PEER_EDGES, each
with its reason. Every import counts, module-level or lazy inside a function; only imports
under `if TYPE_CHECKING:` (never executed, annotations only) are left out. Module-level
cycles are refused anywhere, within a package too. Pure `ast`: nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "ifpo"

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"config", "io"}),
    frozenset({"constraints", "judge"}),
    frozenset({"models"}),
    frozenset({"data"}),
    frozenset({"losses"}),
    frozenset({"training"}),
    frozenset({"scale", "sampling", "builders", "eval", "report", "bench", "importers", "tools"}),
)
#: The only imports allowed between top-layer peers (and why). Everything else among them is refused.
PEER_EDGES: dict[tuple[str, str], str] = {
    ("builders", "sampling"): "a dataset builder generates its responses with a sampling backend",
    ("scale", "bench"): "gpu_check runs the GPU bench's measurements against the planner's figures",
}
ROOT_MODULES = frozenset({""})  # ifpo/__init__.py: the package root, imports nothing of its own


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside an `if TYPE_CHECKING:` block."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = (
                test.id
                if isinstance(test, ast.Name)
                else test.attr
                if isinstance(test, ast.Attribute)
                else ""
            )
            if name == "TYPE_CHECKING":
                skipped.update(id(n) for child in node.body for n in ast.walk(child))
    return skipped


def imports_of(module: str) -> set[str]:
    """The ifpo modules `module` imports (`from pkg import name` resolves to pkg.name if that is a module)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ifpo")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ifpo":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in MODULES else target)
    return {m for m in found if m != module}


GRAPH: dict[str, set[str]] = {m: imports_of(m) for m in MODULES}


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(package: str) -> int:
    for index, members in enumerate(LAYERS):
        if package in members:
            return index
    raise KeyError(package)


def test_every_package_has_a_layer():
    packages = {top(m) for m in MODULES} - ROOT_MODULES
    unplaced = sorted(p for p in packages if not any(p in layer for layer in LAYERS))
    assert not unplaced, f"packages without a layer (add them to LAYERS and the README diagram): {unplaced}"


def test_the_graph_sees_known_imports():
    """Guards the parser itself: an edge known to exist must be found, lazy ones included."""
    assert "ifpo.models.forward" in GRAPH["ifpo.training.module"]
    assert "ifpo.training.pipeline" in GRAPH["ifpo.scale.plan_cli"]  # a lazy import inside a function
    assert "ifpo.scale.planner" not in GRAPH["ifpo.scale.deepspeed_estimate"]  # under TYPE_CHECKING only


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        source = top(module)
        if source in ROOT_MODULES:
            continue
        for target in targets:
            dest = top(target)
            if dest == source or dest in ROOT_MODULES:
                continue
            up = layer_of(dest) > layer_of(source)
            peers = layer_of(dest) == layer_of(source)
            if up or (peers and (source, dest) not in PEER_EDGES):
                wrong.append(f"{module} -> {target}")
    return sorted(wrong)


def test_imports_point_down_the_layers():
    wrong = layer_violations(GRAPH)
    assert not wrong, "imports pointing up a layer or across peers:\n" + "\n".join(wrong)


def test_the_layer_check_refuses_upward_and_peer_imports():
    graph = {
        "ifpo.data.datamodule": {"ifpo.training.resume", "ifpo.models.loading"},  # up, down
        "ifpo.sampling.hf": {"ifpo.eval.checkpoint"},  # peer without an allowed edge
        "ifpo.builders.cli": {"ifpo.sampling.base"},  # an allowed peer edge
    }
    assert layer_violations(graph) == [
        "ifpo.data.datamodule -> ifpo.training.resume",
        "ifpo.sampling.hf -> ifpo.eval.checkpoint",
    ]


def test_peer_edges_do_not_form_a_cycle():
    assert not any((b, a) in PEER_EDGES for a, b in PEER_EDGES)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start, targets in graph.items():
        if start in index:
            continue
        work = [(start, iter(sorted(targets & graph.keys())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child] & graph.keys()))))
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


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    assert not cycles, f"module import cycles: {cycles}"
