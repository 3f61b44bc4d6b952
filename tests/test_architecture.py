"""The import graph: no cycles among the project's modules (function-level imports count), and pare_core
never imports pare_bench (DESIGN.md: imports point down only)."""

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).parents[1]


def import_graph() -> nx.DiGraph:
    modules = {}
    for path in [*ROOT.glob("pare_bench/**/*.py"), *ROOT.glob("pare_core/**/*.py")]:
        modules[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph.add_edges_from((module, target) for target in targets if target in modules and target != module)
    return graph


def test_no_import_cycles():
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_pare_core_never_imports_pare_bench():
    graph = import_graph()
    upward = [(a, b) for a, b in graph.edges if a.startswith("pare_core") and b.startswith("pare_bench")]
    assert not upward, upward


def test_the_tiny_wing_never_imports_the_wan_wing():
    """`pare_bench.tiny` (the embedded teachers and their world) runs without the real-model wing; the Wan wing may
    use a tiny teacher as a stand-in model or data source (build, encode-world), not the other way round."""
    graph = import_graph()
    across = [(a, b) for a, b in graph.edges if a.startswith("pare_bench.tiny") and b.startswith("pare_bench.wan")]
    assert not across, across
