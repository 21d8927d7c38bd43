"""Longest paths and positive cycles on small weighted digraphs (Bellman-Ford, no cycle enumeration)."""

from __future__ import annotations

from typing import Sequence

Arc = tuple[int, int, int]  # (src, dst, weight)


def longest_paths(n: int, arcs: Sequence[Arc]) -> tuple[list[int], list[int] | None]:
    """Longest path from a virtual source joined to every node with weight 0.

    Returns ``(dist, None)`` when there is no positive cycle, else ``(dist, cycle)`` where ``cycle``
    lists the indices into ``arcs`` of one positive cycle, in order.
    """
    dist = [0] * n
    pred: list[int | None] = [None] * n
    changed_arc = None
    for _ in range(n + 1):
        changed_arc = None
        for index, (u, v, w) in enumerate(arcs):
            if dist[u] + w > dist[v]:
                dist[v] = dist[u] + w
                pred[v] = index
                changed_arc = index
        if changed_arc is None:
            return dist, None
    # Still relaxing after n rounds: walk back n steps to land on the cycle, then collect it.
    node = arcs[changed_arc][1]
    for _ in range(n):
        node = arcs[pred[node]][0]
    cycle, current = [], node
    while True:
        index = pred[current]
        cycle.append(index)
        current = arcs[index][0]
        if current == node:
            break
    cycle.reverse()
    return dist, cycle
