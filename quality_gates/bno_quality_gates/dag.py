"""The gate graph (networkx): edges run upstream -> downstream and carry the dependency condition.

It also holds the one table that says what a dependency condition makes of its upstream gate's status
(:data:`DEPENDENCY_TABLE`): the runner decides with it and the GitHub Actions export writes its ``if``
expressions from it, so both give the same verdict (docs/gates-ci.md, "Conditions").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum

import networkx as nx

from bno_quality_gates.spec import GatesConfig
from bno_quality_gates.status import Condition, GateStatus


class Outcome(StrEnum):
    """What one dependency makes of its upstream gate's status."""

    RUN = "run"  # the condition holds
    SKIP = "skip"  # the condition is false: the gate is not wanted in this run (never a failure)
    OMIT = "omit"  # the upstream gate did not give what the condition needs (a required gate then fails)


_S = GateStatus
DEPENDENCY_TABLE: dict[Condition, dict[GateStatus, Outcome]] = {
    Condition.PASSED: {_S.PASSED: Outcome.RUN, _S.CACHED: Outcome.RUN, _S.FAILED: Outcome.OMIT,
                       _S.ERRORED: Outcome.OMIT, _S.OMITTED: Outcome.OMIT, _S.SKIPPED: Outcome.SKIP},
    Condition.FAILED: {_S.PASSED: Outcome.SKIP, _S.CACHED: Outcome.SKIP, _S.FAILED: Outcome.RUN,
                       _S.ERRORED: Outcome.OMIT, _S.OMITTED: Outcome.OMIT, _S.SKIPPED: Outcome.SKIP},
    Condition.COMPLETED: {_S.PASSED: Outcome.RUN, _S.CACHED: Outcome.RUN, _S.FAILED: Outcome.RUN,
                          _S.ERRORED: Outcome.OMIT, _S.OMITTED: Outcome.OMIT, _S.SKIPPED: Outcome.SKIP},
    Condition.ALWAYS: dict.fromkeys(GateStatus, Outcome.RUN),
}
"""``DEPENDENCY_TABLE[condition][upstream status]``. A skipped upstream gate makes its dependents skipped
(what was not wanted, or not run on request, takes what hangs on it along), except through ``.always``."""


def dependency_outcome(condition: str, upstream_status: str) -> Outcome:
    """What the dependency ``upstream.CONDITION`` makes of the upstream gate's status."""
    return DEPENDENCY_TABLE[Condition(condition)][GateStatus(upstream_status)]


def decide(dependencies: Sequence[tuple[str, str, str]]) -> tuple[Outcome, str | None, str | None]:
    """Whether a gate runs, from ``(upstream, condition, upstream status)`` of each of its dependencies.

    Returns the outcome and the upstream gate and status that decided it (None when it runs). A false
    condition wins over a missing upstream result: a gate that is not wanted is skipped, whatever else
    happened upstream; otherwise any dependency that is not met omits the gate.
    """
    outcomes = [(dependency_outcome(condition, status), upstream, status)
                for upstream, condition, status in dependencies]
    for wanted in (Outcome.SKIP, Outcome.OMIT):
        for outcome, upstream, status in outcomes:
            if outcome == wanted:
                return outcome, upstream, status
    return Outcome.RUN, None, None


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
