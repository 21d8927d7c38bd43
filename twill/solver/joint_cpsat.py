"""The joint problem (docs/joint-model.md, constraints 1 and 3-11) on top of the CP-SAT modulo model.

Roles are candidate slots: a fixed producer role 0 holding exactly the variable-latency ops (if any),
then ``min(#other ops, max_warps - producer)`` roles, at most ``joint.max_roles`` in all (no assignment
that rule 5 allows uses more), with a boolean ``x[v][r]`` per op and role
(exactly one per op) and value precedence among the non-producer roles (op v may take role r only if
an earlier op took r - 1), which keeps one assignment per partition of the ops. Every other quantity
is bounded from the side the rules need, so its least value is what the verifier computes: a role
is used or wide exactly when it holds such an op, ``differ(a, b)`` is exactly ``role(a) != role(b)``,
a ring depth ``D(v)`` satisfies ``D(v)·II >= L(v)``, setmaxnreg values are legal values at least the
need. Registers, memories and the objectives only grow with these, so lowering each to its least value
keeps any solution feasible: the model is exact, and an INFEASIBLE is a proof.
"""

from __future__ import annotations

from dataclasses import dataclass

from ortools.sat.python import cp_model

from twill.model.joint import (MBARRIER_BYTES, SLOT_ALIGN, THREADS_PER_WARP, carries_registers, ceil_div,
                               handoff_cost, has_ring, lifetime_terms, max_roles, register_bytes,
                               register_lifetime_terms, same_role_pairs, token_uses, transfer_cycles)
from twill.model.loop import Loop


@dataclass
class JointModel:
    """The role booleans ``x[op][role]`` and the joint objectives, as CP-SAT expressions."""

    x: list[list[cp_model.IntVar]]
    objectives: dict[str, cp_model.LinearExpr]

    def decode(self, solver: cp_model.CpSolver) -> tuple[int, ...]:
        """Role per op, renumbered densely in order of first op."""
        chosen = [next(r for r, b in enumerate(row) if solver.boolean_value(b)) for row in self.x]
        return dense(chosen)

    def add_hint(self, model: cp_model.CpModel, loop: Loop, roles: tuple[int, ...]) -> None:
        """Hint ``roles`` (any numbering), mapped onto this model's canonical role slots."""
        canonical = {roles[v]: 0 for v, op in enumerate(loop.ops) if op.variable_latency}
        for role in roles:
            canonical.setdefault(role, len(canonical))
        for v, row in enumerate(self.x):
            for r, b in enumerate(row):
                model.add_hint(b, canonical[roles[v]] == r)


def dense(roles: list[int] | tuple[int, ...]) -> tuple[int, ...]:
    """Role ids 0, 1, ... in order of first appearance."""
    ids: dict[int, int] = {}
    return tuple(ids.setdefault(r, len(ids)) for r in roles)


def add_joint(model: cp_model.CpModel, loop: Loop, ii: int, slot, start, stages_max: int,
              tokens: bool = True) -> JointModel | None:
    """Add the joint rules at ``ii``; None when they cannot hold at this II whatever the schedule.
    Without ``tokens`` the order tokens' barriers are left out of rule 9: a relaxation."""
    w, ops = loop.warps, loop.ops
    legal = legal_setmaxnreg(loop)
    if any(op.issue > ii for op in ops) or not legal:
        return None
    x, count = add_roles(model, loop)
    differ = RoleDiffer(model, x)

    add_issue(model, loop, ii, slot, x)
    for a, b, _ in same_role_pairs(loop):  # rules 7 and 8: one issuer, or the role holding the registers
        model.add(differ(a, b) == 0)
    crossing = add_edges(model, loop, ii, start, differ)
    add_blocking(model, loop, ii, slot, start, differ)
    reach = lifetime_reach(loop, ii, stages_max)
    depth = add_depths(model, loop, ii, start, reach, differ)
    used = [flag(model, [x[v][r] for v in range(len(ops))], f"used_{r}") for r in range(count)]
    wide = [flag(model, [x[v][r] for v, op in enumerate(ops) if op.warps > 1], f"wide_{r}") for r in range(count)]
    add_registers(model, loop, register_needs(model, loop, ii, slot, start, x, reach, differ), used, wide, legal)
    model.add(smem_terms(model, loop, depth, differ)
              + (token_terms(model, loop, ii, start, stages_max, differ) if tokens else 0) <= w.smem)
    model.add(sum(op.tmem * depth[v] for v, op in enumerate(ops) if op.tmem) <= w.tmem)

    objectives = {
        "handoff_bytes": cp_model.LinearExpr.sum([register_bytes(ops[v]) * crossing[v] for v in crossing]),
        "ring_slots": cp_model.LinearExpr.sum([depth[v] for v, op in enumerate(ops) if op.smem or op.tmem]),
        "roles": cp_model.LinearExpr.sum(used),
    }
    return JointModel(x, objectives)


def smem_terms(model: cp_model.CpModel, loop: Loop, depth, differ: RoleDiffer) -> cp_model.LinearExpr:
    """Rule 9 as ``twill.model.joint.smem_bytes`` counts it, less the order tokens' barriers
    (``token_terms``): per op with a ring depth D(v) (``depth``), its channel's slots C(v) >= D(v) and
    >= the distance of each out-edge that crosses roles; whole SLOT_ALIGN blocks of its data (an smem
    value's C(v) slots, a register value's staging ring when it crosses); a full and an empty mbarrier
    per slot when some out-edge crosses. Every term only grows with C(v) and the blocks, so their
    least values are the exact ones."""
    terms = []
    for v, op in enumerate(loop.ops):
        if v not in depth:
            continue
        out = [e for e in loop.edges if e.src == v and e.dst != v]
        domain = list(model.proto.variables[depth[v].index].domain)   # read afresh: a variable's own proto goes stale
        high = max([domain[-1]] + [e.distance for e in out])
        crosses = flag(model, [differ(v, e.dst) for e in out], f"crosses_{op.name}")
        channel = model.new_int_var(domain[0], high, f"channel_{op.name}")
        model.add(channel >= depth[v])
        for e in out:
            model.add(channel >= e.distance).only_enforce_if(differ(v, e.dst))
        crossing_slots = model.new_int_var(0, high, f"crossing_slots_{op.name}")  # C(v) when some edge crosses
        model.add(crossing_slots >= channel).only_enforce_if(crosses)
        for size, slots, name in ((op.smem, channel, "ring"), (register_bytes(op), crossing_slots, "staging")):
            if size and size % SLOT_ALIGN:
                whole = model.new_int_var(0, ceil_div(size * high, SLOT_ALIGN), f"blocks_{name}_{op.name}")
                model.add(SLOT_ALIGN * whole >= size * slots)
                terms.append(SLOT_ALIGN * whole)
            elif size:
                terms.append(size * slots)
        terms.append(2 * MBARRIER_BYTES * crossing_slots)
    return cp_model.LinearExpr.sum(terms)


def token_terms(model: cp_model.CpModel, loop: Loop, ii: int, start, stages_max: int,
                differ: RoleDiffer) -> cp_model.LinearExpr:
    """Rule 9's order-token barriers, exactly as ``twill.model.joint.order_tokens`` finds them: per
    one-instance unit, the uses a (ops holding it once, at ``at(a) = t(a) + offset = II·s(a) + r(a)``)
    in the cyclic order of the key (r, s, op), as a circuit whose arcs all ascend the key but one;
    an arc a -> b on different roles with the token's barrier between them (gap
    ``t(b) + d·II - t(a) >= named``, d = s(a) - s(b) + [r(a) >= r(b)]) takes 2·max(1, d) mbarriers.
    A token's slots are at least that on such an arc; a gap too short is only allowed when it is."""
    terms = []
    latency, horizon = loop.warps.named, ii * (stages_max + 1) - 1
    for unit, (holds, _) in token_uses(loop).items():
        if len(holds) < 2:
            continue
        m = len(holds)
        low = min(offset // ii for _, offset in holds)
        high = max((horizon + offset) // ii for _, offset in holds)
        spread = high - low + 1
        residue, turn, key = [], [], []
        for i, (v, offset) in enumerate(holds):
            r = model.new_int_var(0, ii - 1, f"r_{unit}_{i}")
            k = model.new_int_var(offset // ii, (horizon + offset) // ii, f"s_{unit}_{i}")
            model.add(start[v] + offset == ii * k + r)
            residue.append(r)
            turn.append(k)
            key.append(r * (spread * m) + (k - low) * m + i)
        arcs, descending = [], []
        for i, (a, _) in enumerate(holds):
            for j, (b, _) in enumerate(holds):
                if i == j:
                    continue
                succ, desc = model.new_bool_var(f"next_{unit}_{i}_{j}"), model.new_bool_var(f"wrap_{unit}_{i}_{j}")
                arcs.append((i, j, succ))
                descending.append(desc)
                model.add_implication(desc, succ)
                model.add(key[i] < key[j]).only_enforce_if([succ, ~desc])
                model.add(key[i] > key[j]).only_enforce_if(desc)
                at_least = model.new_bool_var(f"geq_{unit}_{i}_{j}")
                model.add(residue[i] >= residue[j]).only_enforce_if(at_least)
                model.add(residue[i] < residue[j]).only_enforce_if(~at_least)
                distance = turn[i] - turn[j] + at_least
                apart = model.new_bool_var(f"apart_{unit}_{i}_{j}")
                model.add(start[b] + ii * distance - start[a] <= latency - 1).only_enforce_if(~apart)
                slots = model.new_int_var(0, spread + 1, f"token_{unit}_{i}_{j}")
                model.add(slots >= 1).only_enforce_if([succ, differ(a, b), apart])
                model.add(slots >= distance).only_enforce_if([succ, differ(a, b), apart])
                terms.append(2 * MBARRIER_BYTES * slots)
        model.add_circuit(arcs)
        model.add(sum(descending) == 1)
    return cp_model.LinearExpr.sum(terms)


def add_roles(model: cp_model.CpModel, loop: Loop) -> tuple[list[list[cp_model.IntVar]], int]:
    """The role booleans ``x[op][role]``: the producer role 0 (if any) holds exactly the
    variable-latency ops, the other roles are taken in order (value precedence)."""
    ops = loop.ops
    producer = any(op.variable_latency for op in ops)
    others = [v for v, op in enumerate(ops) if not op.variable_latency]
    count = max(1, min(producer + max(0, min(len(others), loop.warps.max_warps - producer)), max_roles(loop)))
    x = [[model.new_bool_var(f"x_{op.name}_{r}") for r in range(count)] for op in ops]
    for v, op in enumerate(ops):
        model.add_exactly_one(x[v])
        if producer:
            model.add(x[v][0] == int(op.variable_latency))
    add_value_precedence(model, x, others, producer)
    return x, count


def legal_setmaxnreg(loop: Loop) -> list[int]:
    """Every value setmaxnreg can take: the minimum or a multiple of the step, up to the maximum."""
    low, high, step = loop.warps.setmaxnreg
    return [v for v in sorted({low, *range(ceil_div(low, step) * step, high + 1, step)}) if v <= high]


def add_value_precedence(model: cp_model.CpModel, x, others: list[int], producer: bool) -> None:
    """Among non-producer ops in order, role r is taken only after role r - 1 (roles are anonymous)."""
    for k, v in enumerate(others):
        for r in range(producer + 1, len(x[v])):
            model.add(x[v][r] <= sum(x[u][r - 1] for u in others[:k]))


class RoleDiffer:
    """One boolean per pair of ops, true exactly when they are on different roles."""

    def __init__(self, model: cp_model.CpModel, x):
        self.model, self.x, self.pairs = model, x, {}

    def __call__(self, a: int, b: int) -> cp_model.IntVar:
        key = (min(a, b), max(a, b))
        if key not in self.pairs:
            d = self.pairs[key] = self.model.new_bool_var(f"differ_{key[0]}_{key[1]}")
            for xa, xb in zip(self.x[a], self.x[b]):
                self.model.add(d >= xa - xb)
                self.model.add(xa + xb + d <= 2)
        return self.pairs[key]


def flag(model: cp_model.CpModel, literals: list, name: str) -> cp_model.IntVar:
    """A boolean that is exactly the OR of ``literals``."""
    f = model.new_bool_var(name)
    if literals:
        model.add_max_equality(f, literals)
    else:
        model.add(f == 0)
    return f


def gated(model: cp_model.CpModel, value: cp_model.IntVar, on, name: str) -> cp_model.IntVar:
    """At least ``value`` when the literal ``on`` holds, else at least 0 (for sums that only must not grow)."""
    g = model.new_int_var(0, max(value.proto.domain), name)
    model.add(g >= value).only_enforce_if(on)
    return g


def add_issue(model: cp_model.CpModel, loop: Loop, ii: int, slot, x) -> None:
    """Rule 3: per role, issue windows disjoint modulo II (copies at p and p + II, present if on the role)."""
    for r in range(len(x[0])):
        windows = [model.new_optional_fixed_size_interval_var(slot[v] + copy * ii, op.issue, x[v][r],
                                                               f"issue_{op.name}_{r}@{copy}")
                   for v, op in enumerate(loop.ops) if op.issue > 0 for copy in (0, 1)]
        if len(windows) > 2:
            model.add_no_overlap(windows)


def add_edges(model: cp_model.CpModel, loop: Loop, ii: int, start, differ: RoleDiffer) -> dict[int, cp_model.IntVar]:
    """Rules 1 and 11; returns, per op with a register result, the flag that it is read on another role."""
    readers: dict[int, list] = {}
    for e in loop.edges:
        if e.src == e.dst:
            continue
        cross = differ(e.src, e.dst)
        model.add(start[e.dst] - start[e.src] >= e.delay + handoff_cost(loop, e) * cross - ii * e.distance)
        if carries_registers(loop, e):
            readers.setdefault(e.src, []).append(cross)
            if not loop.warps.cross_role:
                model.add(cross == 0)
    return {v: flag(model, crosses, f"crossing_{loop.ops[v].name}") for v, crosses in readers.items()}


def add_blocking(model: cp_model.CpModel, loop: Loop, ii: int, slot, start, differ: RoleDiffer) -> None:
    """Rule 6: for blocking u -> v and o != v on v's role, o's latest instance before u is done when v
    (of the iteration ``distance`` later) issues.

    That instance issued d = ((p(u) - p(o) - 1) mod II) + 1 cycles before u: d = p(u) - p(o) + II·(1 - b)
    with d in [1, II] fixes the boolean b (b: p(o) < p(u)).
    """
    for e in (e for e in loop.edges if e.blocking):
        for o, op in enumerate(loop.ops):
            if o == e.dst:
                continue
            if o == e.src:
                d = ii
            else:
                d, b = model.new_int_var(1, ii, f"d_{op.name}_{e.src}"), model.new_bool_var(f"b_{op.name}_{e.src}")
                model.add(d == slot[e.src] - slot[o] + ii - ii * b)
            model.add(start[e.src] - d + op.duration <= start[e.dst] + ii * e.distance).only_enforce_if(
                ~differ(o, e.dst))


def lifetime_reach(loop: Loop, ii: int, stages_max: int) -> int:
    """Turns of II that bound every lifetime when stages are at most ``stages_max``: a consumer's
    hold, or a value's copy into its staging buffer, is at most the longest duration plus a
    release's barrier or the longest transfer."""
    w = loop.warps
    longest = max(op.duration for op in loop.ops) + max(
        w.mbarrier, w.named, *(transfer_cycles(w, register_bytes(op)) for op in loop.ops))
    return stages_max + 1 + max((e.distance for e in loop.edges), default=0) + ceil_div(longest, ii)


def add_depths(model: cp_model.CpModel, loop: Loop, ii: int, start, reach: int,
               differ: RoleDiffer) -> dict[int, cp_model.IntVar]:
    """Rule 7: ring depth D(v)·II >= L(v) for ops with a result, a fixed depth (then D(v) = depth) or
    an out-edge to another op (its channel's slots when that crosses roles: ``has_ring``)."""
    depth = {}
    for v, op in enumerate(loop.ops):
        if not has_ring(loop, v):
            continue
        low, high = (op.depth, op.depth) if op.depth is not None else (1, reach)
        d = depth[v] = model.new_int_var(low, high, f"depth_{op.name}")
        for term in lifetime_terms(loop, ii, start, v, differ):
            model.add(ii * d >= term)
    return depth


def register_needs(model: cp_model.CpModel, loop: Loop, ii: int, slot, start, x, reach: int,
                   differ: RoleDiffer) -> list:
    """Rule 8's need per role: the overhead, the full turns floor(L/II) of its register values'
    register lifetimes L_reg (their fixed depths for fixed rings), and the peak of the remainders: a
    cumulative over the modulo timeline of ``[p, p + L_reg mod II)`` and of each op's scratch over
    ``[p, p + 1)``, copies at p and p + II (as in add_issue), present when the op is on the role. L_reg is at least every term that counts; a
    longer one only holds more."""
    ops = loop.ops
    free = [v for v, op in enumerate(ops) if op.own_registers and op.depth is None]
    scratch = [v for v, op in enumerate(ops) if op.scratch]
    full, rest = {}, {}
    for v in free:
        name = ops[v].name
        life = model.new_int_var(0, reach * ii, f"life_{name}")
        add_at_least(model, life, register_lifetime_terms(loop, ii, start, v, differ))
        full[v], rest[v] = model.new_int_var(0, reach, f"full_{name}"), model.new_int_var(0, ii - 1, f"rest_{name}")
        model.add(life == ii * full[v] + rest[v])
    ends = {v: model.new_int_var(0, 2 * ii - 2, f"rest_end_{ops[v].name}") for v in free}
    for v in free:
        model.add(ends[v] == slot[v] + rest[v])
    needs = []
    for r in range(len(x[0])):
        turns = [op.own_registers * (op.depth * x[v][r] if op.depth is not None
                                     else gated(model, full[v], x[v][r], f"turns_{op.name}_{r}"))
                 for v, op in enumerate(ops) if op.own_registers]
        peak = model.new_int_var(0, sum(ops[v].own_registers for v in free) + sum(op.scratch for op in ops),
                                 f"peak_{r}")
        remainders = [model.new_optional_interval_var(slot[v] + copy * ii, rest[v], ends[v] + copy * ii,
                                                      x[v][r], f"rest_{ops[v].name}_{r}@{copy}")
                      for v in free for copy in (0, 1)]
        issues = [model.new_optional_fixed_size_interval_var(slot[v] + copy * ii, 1, x[v][r],
                                                             f"scratch_{ops[v].name}_{r}@{copy}")
                  for v in scratch for copy in (0, 1)]
        if remainders or issues:
            model.add_cumulative(remainders + issues, [ops[v].own_registers for v in free for _ in (0, 1)]
                                 + [ops[v].scratch for v in scratch for _ in (0, 1)], peak)
        needs.append(loop.warps.overhead + sum(turns) + peak)
    return needs


def add_at_least(model: cp_model.CpModel, life, terms: list[tuple]) -> None:
    """``life >= term`` for each of joint.register_lifetime_terms' pairs, unless its ``apart`` holds."""
    for term, apart in terms:
        if isinstance(apart, int):
            model.add(life >= term)
        else:
            model.add(life >= term).only_enforce_if(~apart)


def add_registers(model: cp_model.CpModel, loop: Loop, needs: list, used, wide, legal: list[int]) -> None:
    """Rules 5 and 8: per-role ``needs`` within the limit, setmaxnreg per warpgroup role, one shared
    value for the packed single-warp roles, warps launched and the register file."""
    w = loop.warps
    values = cp_model.Domain.from_values(legal)
    count = len(used)
    allocated = []
    shared = model.new_int_var_from_domain(values, "setmaxnreg_shared")
    packed = model.new_int_var(0, ceil_div(count, w.warpgroup), "packed_warpgroups")
    for r, need in enumerate(needs):
        model.add(need <= w.max_registers)
        rounded = model.new_int_var_from_domain(values, f"setmaxnreg_{r}")
        model.add(rounded >= need)
        alone = model.new_int_var(0, legal[-1], f"allocated_{r}")
        model.add(alone >= rounded).only_enforce_if(wide[r])
        allocated.append(alone)
        single = model.new_bool_var(f"single_{r}")
        model.add(single == used[r] - wide[r])
        model.add(shared >= rounded).only_enforce_if(single)
    model.add(w.warpgroup * packed >= sum(used) - sum(wide))
    model.add(w.warpgroup * (sum(wide) + packed) <= w.max_warps)
    packed_registers = model.new_int_var(0, legal[-1] * ceil_div(count, w.warpgroup), "packed_registers")
    model.add_multiplication_equality(packed_registers, [packed, shared])
    model.add(w.warpgroup * THREADS_PER_WARP * (sum(allocated) + packed_registers) <= w.register_file)
