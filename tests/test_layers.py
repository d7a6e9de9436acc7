"""The import contract (DEVELOPERS.md, "Layers"), read from the source with `ast`, so a circle cannot come back.

- `pycoredns/`: no module imports one from a higher layer (imports under TYPE_CHECKING and inside
  functions count too) and the graph has no cycle at all.
- `plugins/`: a plugin imports only its own package, `pycoredns.plugin` and the public helper modules
  (PUBLIC), never another plugin and never the runtime (instance, process, server, ...).
- nothing shipped imports the test kit (`pycoredns_conformance`, `tests`).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Bottom to top. A module may import modules of its own layer or below; within a layer the graph
# must still be acyclic. Modules not listed (new ones) are held to the no-cycle rule only; list them.
LAYERS: list[set[str]] = [
    {"pycoredns", "exceptions", "wire", "log", "metrics", "http", "layout", "timers", "corefile", "mmsg", "reuseport"},
    {"goparse", "config", "directives", "loader", "truncation", "response", "pod"},
    {"util"},
    {"request"},
    {"handler"},
    {"block"},
    {"context"},
    {"controller"},
    {"plugin"},
    {"server", "handover"},
    {"instance", "lastgood"},
    {"process"},
    {"embed", "cli", "workers", "nodecache", "__main__", "demo", "testing"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}

# What plugins may import from pycoredns (besides pycoredns.plugin): the small public helper modules
# (and the Corefile package, which reload uses to hash the source).
PUBLIC = {"pycoredns", "pycoredns.plugin", "pycoredns.request", "pycoredns.wire", "pycoredns.metrics",
          "pycoredns.log", "pycoredns.util", "pycoredns.response", "pycoredns.context", "pycoredns.corefile",
          "pycoredns.timers", "pycoredns.layout", "pycoredns.truncation", "pycoredns.config", "pycoredns.mmsg"}
TEST_KITS = ("pycoredns_conformance", "tests", "conftest")


def _module_name(path: Path, base: Path, package: str) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _imports(path: Path, module: str) -> set[str]:
    """Every module `path` imports (absolute names), wherever the import statement is."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}"))
    return out


def _is_module(name: str) -> bool:
    """True when `name` (pycoredns.x.y or pycoredns.plugins.p.m) is a module or package in this tree."""
    parts = name.split(".")
    if parts[0] != "pycoredns":
        return False
    rel = ["plugins", *parts[2:]] if parts[1:2] == ["plugins"] else ["pycoredns", *parts[1:]]
    path = ROOT.joinpath(*rel)
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _core_graph() -> dict[str, set[str]]:
    """pycoredns module (short name, `corefile` for the subpackage) -> pycoredns modules it imports."""
    base = ROOT / "pycoredns"
    short = {}
    for p in base.rglob("*.py"):
        name = _module_name(p, base, "pycoredns")
        short[name] = name.split(".")[1] if name.count(".") else "pycoredns"
    graph: dict[str, set[str]] = {}
    for p in base.rglob("*.py"):
        name = _module_name(p, base, "pycoredns")
        me = short[name]
        deps = {short[m] for m in _imports(p, name) if m in short} - {me}
        if me == "directives":
            deps.discard("plugins")  # lists pycoredns.plugins by name and imports a plugin's setup on use
        graph.setdefault(me, set()).update(deps)
    return graph


def test_core_imports_go_only_downward() -> None:
    upward = []
    for mod, deps in sorted(_core_graph().items()):
        for dep in sorted(deps):
            if mod in RANK and dep in RANK and RANK[dep] > RANK[mod]:
                upward.append(f"pycoredns.{mod} imports pycoredns.{dep} (a higher layer)")
    assert upward == []


def test_core_import_graph_has_no_cycle() -> None:
    graph = _core_graph()
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*stack[stack.index(dep):], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_every_core_module_has_a_layer() -> None:
    """New modules get a place in LAYERS (the no-cycle test holds them meanwhile)."""
    missing = sorted(set(_core_graph()) - set(RANK) - {"plugins"})
    assert missing == [], f"add these to LAYERS in {__file__}"


def test_plugins_import_only_the_public_api() -> None:
    base = ROOT / "plugins"
    bad = []
    for p in sorted(base.rglob("*.py")):
        rel = p.relative_to(base)
        if len(rel.parts) < 2:
            continue  # plugins/__init__.py
        plugin = rel.parts[0]
        module = _module_name(p, base, "pycoredns.plugins")
        for m in sorted(_imports(p, module)):
            if m.startswith("pycoredns.plugins."):
                if m.split(".")[2] != plugin:
                    bad.append(f"{rel}: imports another plugin ({m})")
            elif m.startswith("pycoredns") and m not in PUBLIC and not m.startswith("pycoredns.corefile."):
                bad.append(f"{rel}: imports {m} (not the public plugin API)")
    assert bad == []


def test_product_imports_no_test_kit() -> None:
    bad = []
    for base, package in ((ROOT / "pycoredns", "pycoredns"), (ROOT / "plugins", "pycoredns.plugins")):
        for p in sorted(base.rglob("*.py")):
            for m in _imports(p, _module_name(p, base, package)):
                if m.split(".")[0] in TEST_KITS:
                    bad.append(f"{p.relative_to(ROOT)}: imports {m}")
    assert bad == []


def test_plugins_do_not_reach_for_the_runtime() -> None:
    """No plugin touches `.instance` or `.process` (the configuration and the program behind the
    Controller): the setup context is the way in."""
    bad = []
    for p in sorted((ROOT / "plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("instance", "process"):
                bad.append(f"{p.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    assert bad == []


def _runtime_relative_imports(tree: ast.Module) -> set[str]:
    """Modules of the same package a file imports at run time (not under `if TYPE_CHECKING:`)."""
    deps: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            deps |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        stack.extend(ast.iter_child_nodes(node))
    return deps


def test_no_import_cycle_inside_a_plugin() -> None:
    """Inside one plugin package no two modules import each other at run time (type-only imports
    under TYPE_CHECKING may point back: a handler's type in its helper module)."""
    cycles = []
    for pkg in sorted(p for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists()):
        graph = {f.stem: _runtime_relative_imports(ast.parse(f.read_text(encoding="utf-8"))) - {f.stem}
                 for f in pkg.glob("*.py")}
        done: set[str] = set()

        def visit(node: str, stack: list[str], graph: dict[str, set[str]] = graph, done: set[str] = done,
                  pkg: Path = pkg) -> None:
            for dep in sorted(graph.get(node, ())):
                if dep in stack:
                    cycles.append(f"{pkg.name}: " + " -> ".join([*stack[stack.index(dep):], dep]))
                elif dep in graph and dep not in done:
                    visit(dep, [*stack, dep])
            done.add(node)

        for node in sorted(graph):
            if node not in done:
                visit(node, [node])
    assert cycles == []
