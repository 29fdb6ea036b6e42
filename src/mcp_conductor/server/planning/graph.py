"""The plan's dependency graph: cycles, levels (steps that can run together) and the critical path.

Nodes are step positions in the plan, edges go from a dependency to its dependent. networkx lives in planning/
only.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx


def build_graph(deps: Sequence[Sequence[int]]) -> nx.DiGraph[int]:
    graph: nx.DiGraph[int] = nx.DiGraph()
    graph.add_nodes_from(range(len(deps)))
    graph.add_edges_from((dep, node) for node, node_deps in enumerate(deps) for dep in node_deps)
    return graph


def is_acyclic(graph: nx.DiGraph[int]) -> bool:
    return bool(nx.is_directed_acyclic_graph(graph))


def cycles(graph: nx.DiGraph[int]) -> list[list[int]]:
    """One cycle per strongly connected component, rotated to start at its earliest step."""
    cycles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            cycle = [int(edge[0]) for edge in nx.find_cycle(graph.subgraph(component))]
            start = cycle.index(min(cycle))
            cycles.append(cycle[start:] + cycle[:start])
    return sorted(cycles)


def levels(graph: nx.DiGraph[int]) -> list[list[int]]:
    return [sorted(generation) for generation in nx.topological_generations(graph)]


def critical_path(
    graph: nx.DiGraph[int], levels: Sequence[Sequence[int]], weight: Sequence[float]
) -> tuple[list[int], float]:
    """The heaviest path by summed step latency (ties go to the earlier step), and its length."""
    finish: dict[int, float] = {}
    via: dict[int, int | None] = {}
    for level in levels:
        for node in level:
            best = None
            for pred in graph.predecessors(node):  # in plan order, so the first of equals wins
                if best is None or finish[pred] > finish[best]:
                    best = pred
            via[node] = best
            finish[node] = weight[node] + (finish[best] if best is not None else 0.0)
    if not finish:
        return [], 0.0
    end = min(finish, key=lambda node: (-finish[node], node))
    path: list[int] = []
    at: int | None = end
    while at is not None:
        path.append(at)
        at = via[at]
    return path[::-1], finish[end]
