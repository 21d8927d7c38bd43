"""A brute-force exact modulo scheduler for tiny loops, sharing no code with the solvers.

It reads only the ``Loop`` value (ops, reservations, capacities, edges) and uses none of the solver
backends, ``twill.solver.verify``, ``twill.solver.bounds`` or ``twill.model.graph``: resource loads,
durations and the longest-path computation are written out again here.

Why enumerating slots and taking least stages is exact
------------------------------------------------------
At a fixed II every start splits uniquely as ``t(v) = II*k(v) + p(v)`` with slot ``p(v)`` in
``[0, II)`` and stage ``k(v) >= 0``.

* Resources see only the slots: reservation cycle ``c`` of op ``v`` lands on residue
  ``(t(v) + offset + c) mod II = (p(v) + offset + c) mod II``. So a slot vector ``p`` either fits every
  unit or no schedule with those slots does.
* With ``p`` fixed, an edge ``t(dst) - t(src) >= delay - II*distance`` reads
  ``II*(k(dst) - k(src)) >= delay - II*distance - p(dst) + p(src)``; as the stages are integers this is
  exactly ``k(dst) - k(src) >= w = ceil((delay - II*distance - p(dst) + p(src)) / II)``: a system of
  difference constraints on integers plus ``k >= 0``.
* Such a system is solvable iff the graph with arc weights ``w`` has no positive cycle, and then the
  longest-path distances from a virtual source (arcs of weight 0 to every op) form its least solution
  ``k*``: every solution ``k`` satisfies ``k >= k*`` pointwise (induction along the path).
* Length ``max(t + duration)`` and stage count ``max(k) + 1`` are both nondecreasing in every ``k(v)``,
  so ``k*`` has the smallest length *and* the smallest stage count of all schedules with slots ``p``.

Let ``L`` be the least length at II and ``S`` the least stage count among schedules of length ``L``.
A schedule of length ``L`` and ``S`` stages with slots ``p`` has ``length(k*_p) <= L`` (hence ``= L``)
and ``stages(k*_p) <= S``; no slot vector does better. So the lexicographic minimum of
``(length, stages)`` over the least solutions of all fitting slot vectors is exactly ``(L, S)``, and the
first II with any fitting, solvable slot vector is the least II.

The slots are enumerated op by op with the partial unit loads checked as soon as an op is placed:
the same set as filtering all of ``[0, II)^n``, visited faster.
"""

from __future__ import annotations

from twill.model.loop import Loop


class NoScheduleFound(RuntimeError):
    pass


def _duration(op) -> int:
    end = op.latency
    for res in op.reservations:
        end = max(end, res.offset + res.cycles)
    return end


def _load_patterns(loop: Loop, ii: int, units: list[str]) -> list[list[list[tuple[int, int, int]]]]:
    """patterns[op][p]: the (unit index, residue, amount) loads of ``op`` issued in slot ``p``."""
    patterns = []
    for op in loop.ops:
        per_slot = []
        for p in range(ii):
            load: dict[tuple[int, int], int] = {}
            for res in op.reservations:
                u = units.index(res.unit)
                for c in range(res.cycles):
                    key = (u, (p + res.offset + c) % ii)
                    load[key] = load.get(key, 0) + res.amount
            per_slot.append([(u, r, amount) for (u, r), amount in sorted(load.items())])
        patterns.append(per_slot)
    return patterns


def least_stages(n: int, arcs: list[tuple[int, int, int]]) -> list[int] | None:
    """Least ``k >= 0`` with ``k[dst] - k[src] >= w`` for every arc, or None when a positive cycle exists."""
    k = [0] * n
    for _ in range(n):
        changed = False
        for src, dst, w in arcs:
            if k[src] + w > k[dst]:
                k[dst] = k[src] + w
                changed = True
        if not changed:
            return k
    return None  # still relaxing after n rounds: a longest path would need more than n-1 arcs


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def solve_at(loop: Loop, ii: int) -> tuple[int, int, tuple[int, ...]] | None:
    """(length, stages, starts) of the best schedule at ``ii``, or None if there is none."""
    n = len(loop.ops)
    units = list(loop.capacity)
    capacity = [loop.capacity[u] for u in units]
    patterns = _load_patterns(loop, ii, units)
    durations = [_duration(op) for op in loop.ops]
    edges = [(e.src, e.dst, e.delay - ii * e.distance) for e in loop.edges]
    load = [[0] * ii for _ in units]
    slots = [0] * n
    best: list = [None]

    def leaf() -> None:
        arcs = [(s, d, ceil_div(need - slots[d] + slots[s], ii)) for s, d, need in edges]
        k = least_stages(n, arcs)
        if k is None:
            return
        starts = tuple(ii * k[v] + slots[v] for v in range(n))
        key = (max(t + d for t, d in zip(starts, durations)), max(k) + 1, starts)
        if best[0] is None or key < best[0]:
            best[0] = key

    def place(v: int) -> None:
        if v == n:
            leaf()
            return
        for p in range(ii):
            pattern = patterns[v][p]
            fits = True
            for u, r, amount in pattern:
                load[u][r] += amount
                if load[u][r] > capacity[u]:
                    fits = False
            if fits:
                slots[v] = p
                place(v + 1)
            for u, r, amount in pattern:
                load[u][r] -= amount

    place(0)
    return best[0]


def oracle(loop: Loop, max_ii: int = 64) -> tuple[int, int, int, tuple[int, ...]]:
    """(II, length, stages, starts): the least II, then least length, then least stage count."""
    for ii in range(1, max_ii + 1):
        found = solve_at(loop, ii)
        if found is not None:
            length, stages, starts = found
            return ii, length, stages, starts
    raise NoScheduleFound(f"no schedule with II <= {max_ii}")
