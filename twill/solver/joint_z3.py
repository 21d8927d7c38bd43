"""The joint problem (docs/joint-model.md, rules 1 and 3-11) in Z3, linear only (QF_LIA).

Roles are integers. Ops are ordered with the variable-latency ones first (the producer is role 0)
and role ids obey value precedence in that order (each op takes a role already used or the next
one), which removes the symmetry of anonymous roles; every constraint below is symmetric in the
ids, so no schedule is lost. In-order issue is a pairwise circular non-overlap of the issue
windows on one role; the blocking rule's ``d`` is a slot difference, wrapped once; ring depths are
integers with ``D·II`` at least every lifetime term (a larger D only costs, so the least one is
allowed). A role's register need is a peak checked at the slot of each of its register values
(lifetimes split into full turns and a remainder, register_needs). Setmaxnreg values are legal
register counts at least the role's need; the single-warp
roles' shared value is multiplied by the number of packed warpgroups through a case split.
"""

from __future__ import annotations

from dataclasses import dataclass

import z3

from twill.model.joint import (MBARRIER_BYTES, SLOT_ALIGN, THREADS_PER_WARP, ceil_div, depth, handoff_cost, has_ring,
                               held_after_issue, lifetime_edges, lifetime_terms, max_roles, order_tokens,
                               register_bytes, register_lifetime, register_lifetime_terms, released_after_issue,
                               same_role_pairs, token_uses)
from twill.model.loop import Dependence, Loop
from twill.model.schedule import Schedule

JOINT_OBJECTIVES = ("handoff_bytes", "ring_slots", "roles")


@dataclass(frozen=True)
class JointVars:
    role: list[z3.ArithRef]                  # role id per op
    objectives: dict[str, z3.ArithRef]       # handoff_bytes, ring_slots, roles


def add_joint(solver: z3.Solver, loop: Loop, ii: int, slot: list[z3.ArithRef],
              start: list[z3.ArithRef]) -> JointVars:
    """Add rules 3-11 (rule 1's hand-offs: ``handoff``)."""
    ctx, ids = solver.ctx, range(max(1, min(len(loop.ops), loop.warps.max_warps, max_roles(loop))))  # rule 5 allows no more
    role, roles_used = add_roles(solver, loop, ids, ctx)
    solver.add([role[a] == role[b] for a, b, _ in same_role_pairs(loop)])  # rules 7 and 8
    add_issue_order(solver, loop, ii, slot, role)
    add_blocking(solver, loop, ii, slot, start, role)
    ring = add_depths(solver, loop, ii, start, role, ctx)
    crossing = [crosses(loop, v, role) for v in range(len(loop.ops))]
    need = register_needs(solver, loop, ii, ids, slot, start, role)
    add_registers_and_warps(solver, loop, ids, role, need, roles_used, ctx)
    add_memories(solver, loop, ii, start, ring, role)
    if not loop.warps.cross_role:
        solver.add([z3.Not(c) for c in crossing])
    handoff_bytes = z3.Sum([z3.IntVal(0, ctx)] + [z3.If(crossing[v], register_bytes(op), 0)
                                                  for v, op in enumerate(loop.ops) if op.registers])
    ring_slots = z3.Sum([z3.IntVal(0, ctx)] + [ring[v] for v, op in enumerate(loop.ops) if op.smem or op.tmem])
    return JointVars(role, {"handoff_bytes": handoff_bytes, "ring_slots": ring_slots, "roles": roles_used})


def handoff(loop: Loop, edge: Dependence, role: list[z3.ArithRef]) -> z3.ArithRef | int:
    """Rule 1: the extra delay of ``edge`` when its ends are on different roles."""
    if edge.src == edge.dst:
        return 0
    return z3.If(role[edge.src] == role[edge.dst], 0, handoff_cost(loop, edge))


def add_roles(solver: z3.Solver, loop: Loop, ids: range,
              ctx: z3.Context) -> tuple[list[z3.ArithRef], z3.ArithRef]:
    """Role ids in ``ids`` with value precedence (producer first, alone on role 0); returns them and
    the number of roles used."""
    n = len(loop.ops)
    role = [z3.Int(f"r_{op.name}", ctx) for op in loop.ops]
    producers = [v for v, op in enumerate(loop.ops) if op.variable_latency]
    order = producers + [v for v in range(n) if v not in producers]
    solver.add(role[order[0]] == 0)
    highest = z3.IntVal(0, ctx)  # the largest id among the ops so far
    for position, v in enumerate(order[1:], 1):
        if v in producers:
            solver.add(role[v] == 0)
            continue
        solver.add(role[v] >= (1 if producers else 0), role[v] <= highest + 1, role[v] < len(ids))
        new = z3.Int(f"m_{position}", ctx)
        solver.add(new == z3.If(role[v] > highest, role[v], highest))
        highest = new
    return role, highest + 1


def add_issue_order(solver: z3.Solver, loop: Loop, ii: int, slot: list[z3.ArithRef],
                    role: list[z3.ArithRef]) -> None:
    """Rule 3: ops on one role have disjoint issue windows modulo II, each window at most II."""
    solver.add(z3.BoolVal(all(op.issue <= ii for op in loop.ops), solver.ctx))
    busy = [v for v, op in enumerate(loop.ops) if op.issue > 0]
    for x, i in enumerate(busy):
        for j in busy[x + 1:]:
            a, b = loop.ops[i].issue, loop.ops[j].issue
            apart = z3.Or(z3.And(slot[j] >= slot[i] + a, slot[j] + b <= slot[i] + ii),
                          z3.And(slot[i] >= slot[j] + b, slot[i] + a <= slot[j] + ii))
            solver.add(z3.Implies(role[i] == role[j], apart))


def add_blocking(solver: z3.Solver, loop: Loop, ii: int, slot: list[z3.ArithRef],
                 start: list[z3.ArithRef], role: list[z3.ArithRef]) -> None:
    """Rule 6: for a blocking u -> v, the last instance of each other op o of v's role issued before
    u (at t(u) - d, d in [1, II] congruent to t(u) - t(o)) has completed when v issues."""
    for n, e in enumerate(loop.edges):
        if not e.blocking:
            continue
        u, v = e.src, e.dst
        for o, op in enumerate(loop.ops):
            if o == v:
                continue
            if o == u:
                d = ii
            else:
                d = z3.Int(f"d_{n}_{op.name}", solver.ctx)
                gap = slot[u] - slot[o]
                solver.add(1 <= d, d <= ii, z3.Or(d == gap, d == gap + ii))
            solver.add(z3.Implies(role[o] == role[v], start[u] - d + op.duration <= start[v] + ii * e.distance))


def add_depths(solver: z3.Solver, loop: Loop, ii: int, start: list[z3.ArithRef], role: list[z3.ArithRef],
               ctx: z3.Context) -> list[z3.ArithRef | None]:
    """Rule 7: ring depth per op whose depth matters (``has_ring``), None elsewhere."""
    ring: list[z3.ArithRef | None] = []
    for v, op in enumerate(loop.ops):
        if not has_ring(loop, v):
            ring.append(None)
            continue
        if op.depth is not None:
            slots = z3.IntVal(op.depth, ctx)
        else:
            slots = z3.Int(f"D_{op.name}", ctx)
            solver.add(slots >= 1)
        solver.add([slots * ii >= term for term in lifetime_terms(loop, ii, start, v, differ(role))])
        ring.append(slots)
    return ring


def differ(role: list[z3.ArithRef]):
    """``cross(a, b)`` for joint.lifetime_terms: 1 when ops a and b are on different roles."""
    return lambda a, b: z3.If(role[a] == role[b], 0, 1)


def crosses(loop: Loop, v: int, role: list[z3.ArithRef]) -> z3.BoolRef:
    """The register value of op ``v`` is read on another role."""
    if not loop.ops[v].registers:
        return z3.BoolVal(False, role[v].ctx)
    return z3.Or([z3.BoolVal(False, role[v].ctx)] +
                 [role[e.dst] != role[v] for e in loop.edges if e.src == v and e.dst != v])


def register_needs(solver: z3.Solver, loop: Loop, ii: int, ids: range, slot: list[z3.ArithRef],
                   start: list[z3.ArithRef], role: list[z3.ArithRef]) -> list[z3.ArithRef]:
    """Rule 8's need per role: overhead plus a peak at least the registers held at the slot of each
    register value or op with scratch of the role: the live copies plus the scratch of the ops
    issued at that slot (the sum over the modulo timeline rises only at those slots).

    A value holds its fixed depth in copies, else ``floor(L/II)`` plus one over ``[p, p + L mod II)``
    circularly, with ``L`` at least every register lifetime term that counts (a longer one only holds
    more copies)."""
    ctx, ops = solver.ctx, loop.ops
    holders = [v for v, op in enumerate(ops) if op.own_registers]
    full, rest = {}, {}
    for v in (v for v in holders if ops[v].depth is None):
        life, full[v], rest[v] = (z3.Int(f"{x}_{ops[v].name}", ctx) for x in ("L", "Lfull", "Lrest"))
        solver.add(life == ii * full[v] + rest[v], 0 <= rest[v], rest[v] < ii)
        solver.add([life >= term if isinstance(apart, int) else z3.Implies(apart == 0, life >= term)
                    for term, apart in register_lifetime_terms(loop, ii, start, v, differ(role))])

    def copies(v: int, at: int) -> z3.ArithRef | int:
        if ops[v].depth is not None:
            return ops[v].depth
        gap = z3.If(slot[at] >= slot[v], slot[at] - slot[v], slot[at] - slot[v] + ii)
        return full[v] + z3.If(gap < rest[v], 1, 0)

    scratch = [v for v, op in enumerate(ops) if op.scratch]
    needs = []
    for r in ids:
        peak = z3.Int(f"peak_{r}", ctx)
        solver.add(peak >= 0)
        for u in holders + [u for u in scratch if u not in holders]:
            live = z3.Sum([z3.If(role[v] == r, ops[v].own_registers * copies(v, u), 0) for v in holders]
                          + [z3.If(z3.And(role[v] == r, slot[v] == slot[u]), ops[v].scratch, 0) for v in scratch])
            solver.add(z3.Implies(role[u] == r, live <= peak))
        needs.append(loop.warps.overhead + peak)
    return needs


def add_registers_and_warps(solver: z3.Solver, loop: Loop, ids: range, role: list[z3.ArithRef],
                            needs: list[z3.ArithRef], roles_used: z3.ArithRef, ctx: z3.Context) -> None:
    """Rules 5 and 8: setmaxnreg values for the per-role needs, the register file and the warps."""
    w = loop.warps
    wide_ops = [v for v, op in enumerate(loop.ops) if op.warps > 1]
    shared = legal_setting(solver, loop, "shared", ctx)
    per_role, wide_count, single_count = [], [], []
    for r, need in zip(ids, needs):
        used = r < roles_used
        wide = z3.Or([z3.BoolVal(False, ctx)] + [role[v] == r for v in wide_ops])
        single = z3.And(used, z3.Not(wide))
        solver.add(z3.Implies(used, need <= w.max_registers), z3.Implies(single, shared >= need))
        if wide_ops:
            setting = legal_setting(solver, loop, f"set_{r}", ctx)
            solver.add(z3.Implies(wide, setting >= need))
            per_role.append(z3.If(wide, setting, 0))
        wide_count.append(z3.If(wide, 1, 0))
        single_count.append(z3.If(single, 1, 0))
    groups = z3.Int("packed_groups", ctx)  # ceil(#single-warp roles / warpgroup)
    singles = z3.Sum(single_count)
    solver.add(w.warpgroup * groups >= singles, w.warpgroup * groups < singles + w.warpgroup)
    solver.add(w.warpgroup * (z3.Sum(wide_count) + groups) <= w.max_warps)
    packed = [z3.If(groups == g, g * shared, 0) for g in range(1, ceil_div(len(ids), w.warpgroup) + 1)]
    per_group = w.warpgroup * THREADS_PER_WARP
    solver.add(per_group * z3.Sum([z3.IntVal(0, ctx)] + per_role + packed) <= w.register_file)


def legal_setting(solver: z3.Solver, loop: Loop, name: str, ctx: z3.Context) -> z3.ArithRef:
    """A setmaxnreg value: the minimum or a multiple of the step, within [min, max]."""
    low, high, step = loop.warps.setmaxnreg
    value, multiple = z3.Int(name, ctx), z3.Int(f"{name}_steps", ctx)
    solver.add(low <= value, value <= high, z3.Or(value == low, value == step * multiple))
    return value


def add_memories(solver: z3.Solver, loop: Loop, ii: int, start: list[z3.ArithRef], ring: list[z3.ArithRef | None],
                 role: list[z3.ArithRef]) -> None:
    """Rules 9 and 10: tensor-memory rings; shared memory as ``twill.model.joint.smem_bytes`` counts
    it: per op, its channel's slots C(v) = max(D(v), the distance of each edge that crosses roles),
    whole SLOT_ALIGN blocks of its data (an smem value's C(v) slots, a register value's staging ring
    when it crosses), two mbarriers per slot when it crosses; and the order tokens' (token_barriers)."""
    ctx = solver.ctx
    smem = [z3.IntVal(0, ctx)]
    for v, op in enumerate(loop.ops):
        if ring[v] is None:
            continue
        out = [e for e in loop.edges if e.src == v and e.dst != v]
        crossing = z3.Or([z3.BoolVal(False, ctx)] + [role[e.dst] != role[v] for e in out])
        channel = ring[v]
        for e in out:
            channel = z3.If(z3.And(role[e.dst] != role[v], channel < e.distance), e.distance, channel)
        for size, slots, name in ((op.smem, channel, "ring"), (register_bytes(op), z3.If(crossing, channel, 0), "staging")):
            if size and size % SLOT_ALIGN:
                whole = z3.Int(f"blocks_{name}_{op.name}", ctx)
                solver.add(SLOT_ALIGN * whole >= size * slots, SLOT_ALIGN * whole < size * slots + SLOT_ALIGN)
                smem.append(SLOT_ALIGN * whole)
            elif size:
                smem.append(size * slots)
        smem.append(z3.If(crossing, 2 * MBARRIER_BYTES * channel, 0))
    solver.add(z3.Sum(smem + token_barriers(solver, loop, ii, start, role)) <= loop.warps.smem)
    tmem = [op.tmem * ring[v] for v, op in enumerate(loop.ops) if op.tmem]
    if tmem:
        solver.add(z3.Sum(tmem) <= loop.warps.tmem)


def token_barriers(solver: z3.Solver, loop: Loop, ii: int, start: list[z3.ArithRef],
                   role: list[z3.ArithRef]) -> list[z3.ArithRef]:
    """Rule 9's order-token barriers as ``twill.model.joint.order_tokens`` finds them: per one-instance
    unit, its uses a (ops holding it once) at ``t(a) + offset = II·s(a) + r(a)``; b follows a when no
    use lies between them in the cyclic order of (r, s, op); a token on different roles, its barrier's
    cycles apart (``t(b) + d·II - t(a) >= named``, d = s(a) - s(b) + [r(a) >= r(b)]), takes 2·max(1, d)."""
    ctx, found = solver.ctx, []
    for unit, (holds, _) in token_uses(loop).items():
        if len(holds) < 2:
            continue
        r = [z3.Int(f"r_{unit}_{i}", ctx) for i in range(len(holds))]
        k = [z3.Int(f"s_{unit}_{i}", ctx) for i in range(len(holds))]
        for i, (v, offset) in enumerate(holds):
            solver.add(start[v] + offset == ii * k[i] + r[i], 0 <= r[i], r[i] < ii)

        def before(i: int, j: int) -> z3.BoolRef:
            return z3.Or(r[i] < r[j], z3.And(r[i] == r[j], z3.Or(k[i] < k[j], z3.And(k[i] == k[j], i < j))))

        for i, (a, _) in enumerate(holds):
            for j, (b, _) in enumerate(holds):
                if i == j:
                    continue
                others = [c for c in range(len(holds)) if c not in (i, j)]
                follows = z3.If(before(i, j), z3.And([z3.BoolVal(True, ctx)] + [z3.Not(z3.And(before(i, c), before(c, j)))
                                                                             for c in others]),
                                z3.And([z3.BoolVal(True, ctx)] + [z3.And(z3.Not(before(i, c)), z3.Not(before(c, j)))
                                                                  for c in others]))
                d = k[i] - k[j] + z3.If(r[i] >= r[j], 1, 0)
                token = z3.And(follows, role[a] != role[b], start[b] + ii * d - start[a] >= loop.warps.named)
                found.append(z3.If(token, 2 * MBARRIER_BYTES * z3.If(d > 1, d, 1), 0))
    return found


def dense(roles: list[int]) -> tuple[int, ...]:
    """Role ids renumbered 0, 1, ... in order of their first op."""
    ids: dict[int, int] = {}
    return tuple(ids.setdefault(r, len(ids)) for r in roles)


def difference_constraints(loop: Loop, schedule: Schedule) -> list[tuple[int, int, int]]:
    """(u, v, c) with ``t(v) - t(u) >= c``: every joint rule on the stages once the slots, roles,
    ring depths and register lifetimes of ``schedule`` are held (docs/joint-model.md, "Stage bound"):
    edges with their hand-offs, blocking rules, lifetimes within the schedule's depths, register
    lifetimes within the schedule's own (registers follow them), and each order token's distance
    within its slots (``t(a) + offset(a) - t(b) - offset(b) < max(1, d)·II``)."""
    ii, t, roles = schedule.ii, schedule.starts, schedule.roles
    found = [(e.src, e.dst, e.delay - ii * e.distance
              + (handoff_cost(loop, e) if roles[e.src] != roles[e.dst] else 0)) for e in loop.edges]
    for e in loop.edges:
        if e.blocking:
            found += [(e.src, e.dst, op.duration - ((t[e.src] - t[o] - 1) % ii + 1) - ii * e.distance)
                      for o, op in enumerate(loop.ops) if o != e.dst and roles[o] == roles[e.dst]]
    for unit, a, b, distance in order_tokens(loop, schedule)[0]:  # no token's slots grow
        offset = {v: r.offset for v, op in enumerate(loop.ops) for r in op.reservations if r.unit == unit}
        found.append((a, b, offset[a] - offset[b] + 1 - max(1, distance) * ii))
    for v, op in enumerate(loop.ops):
        if has_ring(loop, v):
            held = depth(loop, schedule, v) * ii
            found += [(e.dst, v, ii * e.distance + released_after_issue(loop, e, roles[v] != roles[e.dst]) - held)
                      for e in lifetime_edges(loop, v)]
        if op.own_registers and op.depth is None:
            held = register_lifetime(loop, schedule, v)
            found += [(e.dst, v, ii * e.distance + held_after_issue(loop, e) - held)
                      for e in lifetime_edges(loop, v) if roles[v] == roles[e.dst]]
    return found


def joint_lower_bound(loop: Loop, ii: int, objective: str) -> int:
    """Cheap proven bounds: no bytes; rings as deep as each value's nearest consumer needs; a
    producer role apart from the rest."""
    if objective == "handoff_bytes":
        return 0
    if objective == "roles":
        producers = sum(op.variable_latency for op in loop.ops)
        return 1 + (0 < producers < len(loop.ops))
    least = 0
    for v, op in enumerate(loop.ops):
        if op.smem or op.tmem:
            live = max([op.duration] + [e.delay + held_after_issue(loop, e) for e in loop.edges if e.src == v])
            least += op.depth if op.depth is not None else max(1, ceil_div(live, ii))
    return least
