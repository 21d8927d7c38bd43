"""The Twill paper's cost normalization (section 5.2): shrink every cycle count, keeping the ratios.

Given the distinct non-zero cycle counts C of a loop (latencies, reservation offsets and cycles,
issue cycles, edge delays and, for a joint loop, the hand-off of each edge whose ends may be on
different roles), find integers C' minimizing F subject to
``-F <= C[i]·C'[j] - C[j]·C'[i] <= F`` for every pair and ``1 <= sum C' <= U``. Zero stays zero.
Two choices the paper leaves open:

* C holds each distinct value once: equal costs stay equal, the pair count is quadratic in the
  number of distinct values (not of costs), and ``sum C' <= U`` bounds the sum of distinct values;
* among the C' with the least F, the one with the least sum (exact ratios give the primitive
  vector: 1000, 2000, 500 become 2, 4, 1). Solved as one objective ``F·(U+1) + sum C'``.

F is absolute, so it favours coarse scales once small costs must round: in practice the smallest
costs land near one unit (or zero), e.g. about 32 real cycles per unit on the FlashAttention
benchmarks.

The paper solved it with SCIP; here it is CP-SAT, one worker and a fixed seed (deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ortools.sat.python import cp_model

from twill.model.joint import handoff_cost
from twill.model.loop import Dependence, Loop, Op, Reservation

UPPER = 300          # the paper's U
SECONDS = 10.0       # CP-SAT limit (deterministic seconds); the best C' found is used if it runs out


@dataclass(frozen=True)
class Normalized:
    """A loop with every cycle count replaced by its normalized value.

    ``loop`` has scaled latencies, reservations (zero-cycle ones dropped), issue cycles and edge
    delays. Its hand-offs are ``handoff``, per edge (a scaled barrier plus a scaled per-KiB
    transfer is not the scaled sum): ``loop.warps`` keeps the real-cycle hand-off fields.
    """

    loop: Loop
    handoff: tuple[int, ...]      # normalized cross-role hand-off of each edge (0 for a pure loop)
    values: dict[int, int]        # real cycle count -> normalized count
    scale: float                  # real cycles per normalized unit: sum(C) / sum(C')
    error: int                    # F, the largest |C[i]·C'[j] - C[j]·C'[i]|
    optimal: bool                 # F (and the sum) proven minimal
    work: float                   # CP-SAT (deterministic) seconds

    def to_real(self, cycles: int) -> int:
        """A normalized count in real cycles (an estimate: each unit stands for ``scale`` cycles)."""
        return round(cycles * self.scale)


def cycle_counts(loop: Loop) -> list[int]:
    """The distinct non-zero cycle counts of the loop, ascending."""
    counts = set()
    for op in loop.ops:
        counts.add(op.latency)
        counts.update(x for r in op.reservations for x in (r.offset, r.cycles))
        if op.issue_cycles is not None:
            counts.add(op.issue_cycles)
    for e in loop.edges:
        counts.add(e.delay)
        if can_cross(loop, e):
            counts.add(handoff_cost(loop, e))
    return sorted(counts - {0})


def can_cross(loop: Loop, edge: Dependence) -> bool:
    """Whether the edge's ends may be on different roles, so that its hand-off can cost anything."""
    src, dst = loop.ops[edge.src], loop.ops[edge.dst]
    if not loop.joint or edge.src == edge.dst or (src.variable_latency and dst.variable_latency):
        return False
    return loop.warps.cross_role or src.registers == 0


def solve_ratios(counts: list[int], upper: int = UPPER, seconds: float = SECONDS,
                 seed: int = 0) -> tuple[list[int], int, bool, float]:
    """C' for ``counts`` (distinct, positive): (C', F, proven optimal, deterministic seconds)."""
    model = cp_model.CpModel()
    scaled = [model.new_int_var(0, upper, f"c{c}") for c in counts]
    worst = max(counts) * upper
    error = model.new_int_var(0, worst, "F")
    for i, ci in enumerate(counts):
        for j in range(i + 1, len(counts)):
            difference = ci * scaled[j] - counts[j] * scaled[i]
            model.add(difference <= error)
            model.add(difference >= -error)
    model.add(sum(scaled) >= 1)
    model.add(sum(scaled) <= upper)
    model.minimize(error * (upper + 1) + sum(scaled))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    solver.parameters.max_deterministic_time = seconds
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise RuntimeError("cost normalization found no solution within its time limit")
    return ([solver.value(x) for x in scaled], solver.value(error), status == cp_model.OPTIMAL,
            solver.response_proto.deterministic_time)


def normalize(loop: Loop, upper: int = UPPER, seconds: float = SECONDS, seed: int = 0) -> Normalized:
    """The loop with normalized costs (U = ``upper``) and the scale back to real cycles."""
    counts = cycle_counts(loop)
    if not counts:
        handoff = tuple(0 for _ in loop.edges)
        return Normalized(loop, handoff, {}, 1.0, 0, True, 0.0)
    scaled, error, optimal, work = solve_ratios(counts, upper, seconds, seed)
    values = dict(zip(counts, scaled))
    values[0] = 0
    ops = tuple(_scaled_op(op, values) for op in loop.ops)
    edges = tuple(replace(e, delay=values[e.delay]) for e in loop.edges)
    handoff = tuple(values[handoff_cost(loop, e)] if can_cross(loop, e) else 0 for e in loop.edges)
    scale = sum(counts) / sum(scaled)
    return Normalized(replace(loop, ops=ops, edges=edges), handoff, values, scale, error, optimal, work)


def _scaled_op(op: Op, values: dict[int, int]) -> Op:
    table = tuple(Reservation(r.unit, values[r.offset], values[r.cycles], r.amount)
                  for r in op.reservations if values[r.cycles] > 0)
    issue = None if op.issue_cycles is None else values[op.issue_cycles]
    return replace(op, latency=values[op.latency], reservations=table, issue_cycles=issue)

