"""The gate graph (networkx): edges run upstream -> downstream and carry the dependency condition."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import networkx as nx

from bno_quality_gates.spec import GatesConfig


def build_graph(config: GatesConfig) -> nx.DiGraph:
    """A DiGraph with one node per gate (attribute ``spec``) and an edge per dependency (``condition``)."""
    graph: nx.DiGraph = nx.DiGraph()
    for name, spec in config.gates.items():
        graph.add_node(name, spec=spec)
    for name, spec in config.gates.items():
        for upstream, condition in spec.dependencies():
            graph.add_edge(upstream, name, condition=condition)
    assert nx.is_directed_acyclic_graph(graph), "the spec validation rejects cycles"
    return graph


def order(graph: nx.DiGraph, subset: Iterable[str] | None = None) -> list[str]:
    """Gates in a deterministic topological order (ties broken by name), limited to ``subset``."""
    keep = set(graph.nodes) if subset is None else set(subset)
    return [n for n in nx.lexicographical_topological_sort(graph) if n in keep]


def _closure(graph: nx.DiGraph, names: Iterable[str], reach: Callable[[nx.DiGraph, str], set[str]]) -> set[str]:
    """``names`` plus every gate ``reach`` (``nx.descendants`` or ``nx.ancestors``) finds from each."""
    out: set[str] = set()
    for name in names:
        out.add(name)
        out |= reach(graph, name)
    return out


def with_dependents(graph: nx.DiGraph, names: Iterable[str]) -> set[str]:
    """``names`` plus every gate downstream of them, transitively."""
    return _closure(graph, names, nx.descendants)


def with_upstream(graph: nx.DiGraph, names: Iterable[str]) -> set[str]:
    """``names`` plus every gate they depend on, transitively (their results decide whether they run)."""
    return _closure(graph, names, nx.ancestors)


def upstream_of(graph: nx.DiGraph, name: str) -> list[tuple[str, str]]:
    """The direct dependencies of ``name``: ``(gate, condition)`` sorted by gate."""
    return sorted((u, str(graph.edges[u, name]["condition"])) for u in graph.predecessors(name))


def levels(graph: nx.DiGraph) -> list[list[str]]:
    """Gates grouped by depth (every gate after all of its upstream): the parallel waves of a run."""
    return [sorted(generation) for generation in nx.topological_generations(graph)]


def to_dot(graph: nx.DiGraph) -> str:
    """The graph in Graphviz DOT, edges labelled with their condition."""
    lines = ["digraph gates {", "  rankdir=LR;"]
    for name in order(graph):
        spec = graph.nodes[name]["spec"]
        style = "solid" if spec.required else "dashed"
        lines.append(f'  "{name}" [shape=box, style={style}];')
    for upstream, downstream, data in sorted(graph.edges(data=True)):
        lines.append(f'  "{upstream}" -> "{downstream}" [label="{data["condition"]}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
