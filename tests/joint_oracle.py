"""A brute-force exact solver of the joint problem (docs/joint-model.md) for tiny loops.

It enumerates everything the solvers decide except the stages, derives the least stages exactly, and
accepts a schedule only if the independent verifier (``twill.solver.verify``) does. It imports no
solver backend and not ``twill.model.joint`` or ``twill.solver.bounds``: durations, hand-off costs,
ring charges and the register layout are recomputed here from the ``Loop`` value and the document.

Why this is exact
-----------------
At a fixed II write every start ``t(v) = II*k(v) + p(v)`` with slot ``p(v)`` in ``[0, II)``.

* Units (rule 2), in-order issue (3), variable latency (4), warps (5) and the ban (11) depend on the
  roles and slots only, so they are checked while roles and slots are enumerated. Roles are anonymous:
  only canonical assignments are visited (restricted growth strings: op 0 on role 0, every op on a
  role already used or on the next new one), which lists each partition of the ops once.
* Shifting every start by the same amount keeps every rule (they all read differences of starts or
  residues modulo II) and only changes the length, so some optimal schedule has an op at cycle 0,
  hence at slot 0: only slot vectors containing a 0 are visited.
* Given roles and slots, rules 1 (with its hand-off), 6 (``d`` reads slots only) and a lifetime
  bound are difference constraints on the stages ``k``: ``L(v) <= D(v)*II`` for a chosen ring depth
  ``D(v)`` (for a register value without a fixed depth only where its ring is charged: a staging
  buffer, shared or tensor memory), and, for such a register value, ``L_reg(v) <= lam(v)`` for a
  chosen register lifetime ``lam(v)`` (its registers follow it: its own duration, plus the transfer
  into the staging buffer when it crosses roles, and the holds of its same-role consumers only).
  Their least non-negative solution
  ``k*`` (longest paths, Bellman-Ford) is below every other solution. Shared (9) and tensor memory
  (10) grow with the depths; registers (8) are the peak over the residues of the live copies (plus
  each op's scratch at its slot)
  (``floor(L/II)`` plus one over the remainder), which grow with the lifetimes at fixed slots.
* Take any feasible schedule s, with depths ``D_s`` and lifetimes ``L_s``. The least solution for
  (roles(s), slots(s), ``D_s`` or ``L_s``) has starts <= those of s and lifetimes within the bounds,
  so its own depths and lifetimes are <= those of s (registers and memories still fit, ring slots do
  not grow), its length is <= that of s, and its roles and hand-offs are the same: it is at least as
  good on every objective. Its stages are at most ``K``, the sum of the ``n-1`` largest stage
  weights of the document's "Stage bound" (recomputed below), so its depths and lifetimes are at
  most ``cap(v)`` (what a start <= ``K*II+II-1`` allows). So enumerating, for each op with a value
  and no fixed depth, ``D(v)`` from the least its own duration allows up to ``cap(v)`` (and
  ``lam(v)`` from its floor up to ``cap(v)``, only where the least solution can change: at its
  floor and at each same-role consumer's ``II*delta + hold + p(c) - p(v)`` modulo II, the lifetimes
  a consumer can set), keeping only vectors whose charges fit the register, shared and tensor memory budgets (they
  only grow with the depths and lifetimes, so the enumeration prunes there), misses no objective
  value, and the lexicographic minimum over the verified least solutions is the optimum.
* Order tokens (rule 9): with the roles and slots fixed, which uses of a one-instance unit pass a
  token (the next use around the modulo timeline, on another role, the named barrier's cycles
  later) is fixed; only each token's distance d reads the stages. A token's slots ``m >= max(1, d)``
  are one more enumerated charge, with the arc ``t(b) - t(a) >= offset(a) - offset(b) + 1 - m*II``,
  from 1 up to the distance of the least solution without token limits (a larger limit keeps it).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

from oracle import least_stages
from twill.model.loop import Dependence, Loop
from twill.model.objectives import JOINT_LEVELS, objective_value
from twill.model.schedule import Schedule
from twill.solver.verify import verify

THREADS_PER_WARP = 32


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def duration(op) -> int:
    return max([op.latency] + [r.offset + r.cycles for r in op.reservations])


def issue_of(op) -> int:
    return duration(op) if op.issue_cycles is None else op.issue_cycles


def blocks(nbytes: int) -> int:
    """A ring's bytes on whole 1024-byte blocks (rule 9)."""
    return ceil_div(nbytes, 1024) * 1024


def value_bytes(op) -> int:
    """Bytes a reader on another role needs moved (a result written over an input's registers too)."""
    return op.registers * 4 * THREADS_PER_WARP * op.warps


def barrier(loop: Loop, edge) -> int:
    """Cycles of the edge's barrier: all a consumer's release (an arrive, no data) costs across roles."""
    return loop.warps.mbarrier if edge.barrier == "mbarrier" else loop.warps.named


def allocated(op) -> int:
    """Registers per thread the result takes while live: none when written over an input's."""
    return 0 if op.overwrites is not None else op.registers


def transfer(loop: Loop, op) -> int:
    """ceil(transfer_base + transfer_per_kb * bytes / 1024) for a register value (0 without one),
    exactly, with the per-KiB rate read as the decimal number it is written as (16.1, not the float)."""
    w = loop.warps
    nbytes = value_bytes(op)
    if not nbytes:
        return 0
    exact = Fraction(w.transfer_base) + Fraction(str(w.transfer_per_kb)) * nbytes / 1024
    return ceil_div(exact.numerator, exact.denominator)


def handoff(loop: Loop, edge) -> int:
    """Barrier cycles plus the register value's transfer."""
    return barrier(loop, edge) + transfer(loop, loop.ops[edge.src])


def canonical_roles(n: int) -> Iterator[tuple[int, ...]]:
    """Every partition of ``n`` ops into roles once: restricted growth strings."""
    def grow(prefix: list[int], top: int):
        if len(prefix) == n:
            yield tuple(prefix)
            return
        for r in range(top + 2):
            prefix.append(r)
            yield from grow(prefix, max(top, r))
            prefix.pop()
    if n:
        yield from grow([0], 0)


@dataclass(frozen=True)
class JointOptimum:
    ii: int
    values: tuple[int, ...]   # per twill.model.objectives.JOINT_LEVELS: handoff_bytes, length, ring_slots, roles
    schedule: Schedule

    def value(self, name: str) -> int:
        return self.values[JOINT_LEVELS.index(name)]


class _Instance:
    """Per-II data of one loop, and the enumeration."""

    def __init__(self, loop: Loop, ii: int):
        self.loop, self.ii, self.w = loop, ii, loop.warps
        ops = loop.ops
        self.n = len(ops)
        self.dur = [duration(op) for op in ops]
        self.issue = [issue_of(op) for op in ops]
        self.handoff = [handoff(loop, e) for e in loop.edges]
        self.transfer = [transfer(loop, op) for op in ops]
        # Consumers that keep v's value live: an accumulator's own next instance writes it in place.
        self.out = [[e for e in loop.edges if e.src == v and not (ops[v].accumulator and e.dst == v)]
                    for v in range(self.n)]
        self.units = list(loop.capacity)
        self.pattern = [[self._load(op, p) for p in range(ii)] for op in ops]
        # Stage bound K (docs/joint-model.md, "Stage bound"), recomputed.
        weights = [ceil_div(e.delay + h - ii * e.distance + ii - 1, ii) for e, h in zip(loop.edges, self.handoff)]
        for e in loop.edges:
            if e.blocking:
                weights.append(ceil_div(max((d for o, d in enumerate(self.dur) if o != e.dst), default=0) + ii - 2, ii))
        for e in (e for out in self.out for e in out):
            if self.timed(e.src):  # D(v)*II and lam(v) are >= L(v) or a same-role term >= hold (delays >= 0)
                weights.append(e.distance + 1)
            elif self._has_ring(e.src):
                weights.append(e.distance + ceil_div(self.hold(e, self.may_cross(e)) + ii - 1, ii) - 1)
        # Order tokens (rule 9): uses of a one-instance unit by ops holding it once; a token from a to b
        # with m slots keeps t(a) + offset(a) - t(b) - offset(b) < m*II (m >= 1): an arc a -> b.
        self.token_units = []
        for unit, capacity in loop.capacity.items():
            held = [(v, r.offset) for v, op in enumerate(ops) for r in op.reservations if r.unit == unit]
            once = [(v, off) for v, off in held if [u for u, _ in held].count(v) == 1]
            if capacity == 1 and len(once) > 1:
                self.token_units.append(once)
                weights += [ceil_div(off_a - off_b, ii) for a, off_a in once for b, off_b in once if a != b]
        weights = sorted((max(0, x) for x in weights), reverse=True)
        self.stage_bound = sum(weights[: max(self.n - 1, 0)])
        latest = self.stage_bound * ii + ii - 1
        # Index v: the ring depth D(v); index n + v: the register lifetime lam(v) of a timed value.
        self.depth_range = []
        for v, op in enumerate(ops):
            low = max(1, ceil_div(self.dur[v], ii))
            if op.depth is not None:
                self.depth_range.append((op.depth, op.depth))
            elif not self._has_ring(v):
                self.depth_range.append(None)  # charged nowhere: no lifetime constraint
            else:
                life = max([self.dur[v]] + [latest + ii * e.distance + self.hold(e, self.may_cross(e))
                                            for e in self.out[v]])
                self.depth_range.append((low, max(low, ceil_div(life, ii))))
        for v in range(self.n):
            own = self.dur[v] + self.transfer[v]
            life = max([own] + [latest + ii * e.distance + self.hold(e, False) for e in self.out[v]])
            self.depth_range.append((self.dur[v], life) if self.timed(v) else None)

    def hold(self, e, cross: bool) -> int:
        """Cycles after the consumer issues until the producer's role may reuse the value (rule 7): none
        for an in-place self update or ``release: issue``, else until it completes, plus the release's
        barrier when it is on another role (``cross``)."""
        kept = 0 if e.src == e.dst or e.release == "issue" else self.dur[e.dst]
        return kept + (barrier(self.loop, e) if cross else 0)

    @staticmethod
    def may_cross(e) -> bool:
        """Whether the ends of ``e`` may be on different roles (not a self edge nor ``release: issue``)."""
        return e.src != e.dst and e.release != "issue"

    def timed(self, v: int) -> bool:
        """A register value without a fixed depth: its registers follow its register lifetime (rule 8)."""
        op = self.loop.ops[v]
        return allocated(op) > 0 and op.depth is None

    def _has_value(self, v: int) -> bool:
        op = self.loop.ops[v]
        return op.registers > 0 or op.smem > 0 or op.tmem > 0

    def _has_ring(self, v: int) -> bool:
        """A ring depth is charged: a value, a fixed depth, or an edge to another op (its channel's
        barriers when that edge crosses roles)."""
        return self._has_value(v) or self.loop.ops[v].depth is not None or any(
            e.src == v and e.dst != v for e in self.loop.edges)

    def tokens(self, roles: tuple[int, ...], p: list[int]) -> list[tuple[int, int, int, int]]:
        """(a, b, offset(a), offset(b)) per order token these roles and slots make: b's use of the unit
        is the next one after a's around the modulo timeline, on another role, with the named barrier's
        cycles between a's issue and b's (that gap reads the slots only)."""
        ii, found = self.ii, []
        for once in self.token_units:
            for a, off_a in once:
                # the other use whose residue comes next after a's, going round (distinct residues)
                b, off_b = min(((b, off_b) for b, off_b in once if b != a),
                               key=lambda use: ((p[use[0]] + use[1] - p[a] - off_a - 1) % ii, use[0]))
                ahead = (p[b] + off_b - p[a] - off_a - 1) % ii + 1    # cycles from a's use to b's
                if roles[a] != roles[b] and ahead - off_b + off_a >= self.w.named:
                    found.append((a, b, off_a, off_b))
        return found

    def _load(self, op, p: int) -> list[tuple[int, int, int]]:
        load: dict[tuple[int, int], int] = {}
        for res in op.reservations:
            u = self.units.index(res.unit)
            for c in range(res.cycles):
                key = (u, (p + res.offset + c) % self.ii)
                load[key] = load.get(key, 0) + res.amount
        return [(u, r, a) for (u, r), a in load.items()]

    # --- role-level rules (4, 5, 11) -----------------------------------------------------------

    def roles_ok(self, roles: tuple[int, ...]) -> bool:
        ops, w = self.loop.ops, self.w
        producers = {roles[v] for v, op in enumerate(ops) if op.variable_latency}
        if len(producers) > 1:
            return False
        if any(roles[v] in producers and not op.variable_latency for v, op in enumerate(ops)):
            return False
        wide = {roles[v] for v, op in enumerate(ops) if op.warps > 1}
        small = set(roles) - wide
        if w.warpgroup * (len(wide) + ceil_div(len(small), w.warpgroup)) > w.max_warps:
            return False
        if not w.cross_role and any(ops[e.src].registers > 0 and roles[e.src] != roles[e.dst]
                                    for e in self.loop.edges):
            return False
        if any(e.release == "issue" and roles[e.src] != roles[e.dst] for e in self.loop.edges):
            return False
        if any(op.overwrites is not None and roles[op.overwrites] != roles[v] for v, op in enumerate(ops)):
            return False  # an op writes over its input's registers on the input's role
        return all(i <= self.ii for i in self.issue)

    # --- charges of a depth/lifetime vector (rules 8-10), monotone in it --------------------------

    def copies(self, v: int, depth: list[int], p: int) -> list[int]:
        """Per residue, the copies of v's register value live there: its fixed depth everywhere, or,
        walking its register lifetime cycle by cycle from the issue slot p, one per cycle that lands on it."""
        if not self.timed(v):
            return [depth[v]] * self.ii
        live = [0] * self.ii
        for cycle in range(p, p + depth[self.n + v]):
            live[cycle % self.ii] += 1
        return live

    def crossing(self, roles: tuple[int, ...]) -> set[int]:
        """Register values read on another role: staged in shared memory (rule 9)."""
        return {e.src for e in self.loop.edges if self.loop.ops[e.src].registers > 0 and roles[e.src] != roles[e.dst]}

    def charges_fit(self, roles: tuple[int, ...], p: list[int], depth: list[int]) -> bool:
        """Registers (8), shared memory (9: 1024-byte blocks per ring, two 8-byte mbarriers per slot of
        each channel and token; ``depth[2n + j]`` is token j's slots) and tensor memory (10)."""
        ops, w = self.loop.ops, self.w
        need: dict[int, int] = {}
        wide: dict[int, bool] = {}
        for v, op in enumerate(ops):
            wide[roles[v]] = wide.get(roles[v], False) or op.warps > 1
        for r in wide:  # the peak over every residue of the registers live at once
            live = [0] * self.ii
            for v, op in enumerate(ops):
                if roles[v] == r and allocated(op):
                    for x, n in enumerate(self.copies(v, depth, p[v])):
                        live[x] += allocated(op) * n
                if roles[v] == r:
                    live[p[v] % self.ii] += op.scratch  # held while it issues, on top of the live values
            need[r] = w.overhead + max(live)
        if any(x > w.max_registers for x in need.values()):
            return False
        low, high, step = w.setmaxnreg
        # A legal setmaxnreg value: the minimum, or a multiple of the step above it (rule 8).
        legal = lambda x: low if x <= low else ceil_div(x, step) * step  # noqa: E731
        small = [r for r in need if not wide[r]]
        shared = legal(max((need[r] for r in small), default=0))
        values = [legal(need[r]) for r in need if wide[r]] + ([shared] if small else [])
        used = w.warpgroup * THREADS_PER_WARP * (sum(legal(need[r]) for r in need if wide[r])
                                                 + ceil_div(len(small), w.warpgroup) * shared)
        if used > w.register_file or any(x > high for x in values):
            return False
        smem = 16 * sum(depth[2 * self.n:])
        for v, op in enumerate(ops):
            if self.depth_range[v] is None:
                continue
            apart = [e.distance for e in self.loop.edges if e.src == v and roles[e.dst] != roles[v]]
            slots = max([depth[v]] + apart)
            smem += blocks(op.smem * slots) + (blocks(value_bytes(op) * slots) + 16 * slots if apart else 0)
        tmem = sum(op.tmem * depth[v] for v, op in enumerate(ops))
        return smem <= w.smem and tmem <= w.tmem

    # --- enumeration ----------------------------------------------------------------------------

    def slot_vectors(self, roles: tuple[int, ...]) -> Iterator[list[int]]:
        """Slots that fit every unit (rule 2) and every role's issue windows (rule 3), one op at a time."""
        n, ii = self.n, self.ii
        load = [[0] * ii for _ in self.units]
        cap = [self.loop.capacity[u] for u in self.units]
        busy: dict[int, list[bool]] = {r: [False] * ii for r in set(roles)}
        slots = [0] * n

        def place(v: int):
            if v == n:
                if 0 in slots:
                    yield slots
                return
            mine = busy[roles[v]]
            for p in range(ii):
                window = [(p + c) % ii for c in range(self.issue[v])]
                if any(mine[s] for s in window):
                    continue
                pattern = self.pattern[v][p]
                fits = True
                for u, r, a in pattern:
                    load[u][r] += a
                    fits = fits and load[u][r] <= cap[u]
                if fits:
                    for s in window:
                        mine[s] = True
                    slots[v] = p
                    yield from place(v + 1)
                    for s in window:
                        mine[s] = False
                for u, r, a in pattern:
                    load[u][r] -= a

        yield from place(0)

    def base_arcs(self, roles: tuple[int, ...], p: list[int]) -> list[tuple[int, int, int]]:
        """Stage arcs of rule 1 (with hand-offs) and rule 6 for these roles and slots."""
        ii, arcs = self.ii, []
        for e, h in zip(self.loop.edges, self.handoff):
            need = e.delay + (h if roles[e.src] != roles[e.dst] else 0) - ii * e.distance
            arcs.append((e.src, e.dst, ceil_div(need - p[e.dst] + p[e.src], ii)))
            if e.blocking:
                u, v = e.src, e.dst
                for o in range(self.n):
                    if o != v and roles[o] == roles[v]:
                        d = (p[u] - p[o] - 1) % ii + 1   # t(u) - (latest start of o strictly before t(u))
                        arcs.append((u, v, ceil_div(self.dur[o] - d - ii * e.distance - p[v] + p[u], ii)))
        return arcs

    def depth_arcs(self, roles: tuple[int, ...], p: list[int], i: int, bound: int) -> list[tuple[int, int, int]]:
        """For a ring depth (i = v), L(v) <= bound * II: for each consumer c, t(v) - t(c) >= II*delta +
        hold - bound * II. For a register lifetime (i = n + v), L_reg(v) <= bound: the same for each
        consumer c on v's role, without a release (the others hold the staging slot, not registers)."""
        ii, v = self.ii, i % self.n
        if i >= 2 * self.n:  # token j with ``bound`` slots
            a, b, off_a, off_b = self.token_list[i - 2 * self.n]
            return [(a, b, ceil_div(off_a - off_b + 1 - bound * ii - p[b] + p[a], ii))]
        if i < self.n:
            return [(e.dst, v, ceil_div(ii * e.distance + self.hold(e, roles[v] != roles[e.dst]) - bound * ii
                                        - p[v] + p[e.dst], ii)) for e in self.out[v]]
        return [(e.dst, v, ceil_div(ii * e.distance + self.hold(e, False) - bound - p[v] + p[e.dst], ii))
                for e in self.out[v] if roles[e.dst] == roles[v]]

    def register_floor(self, roles: tuple[int, ...], v: int) -> int:
        """L_reg(v) is at least v's duration, plus the copy into its staging buffer when it crosses."""
        return self.dur[v] + (self.transfer[v] if v in self.crossing(roles) else 0)

    def bounds_to_try(self, roles: tuple[int, ...], p: list[int], i: int, high: int) -> list[int]:
        """The depths up to ``high``; for a register lifetime, the lifetimes where its arcs change (its
        floor, and each same-role consumer's II*delta + hold + p(c) - p(v) modulo II), the least of each
        run of lifetimes giving the same arcs, hence the same least solution, with the least registers."""
        if i >= 2 * self.n:
            return list(range(1, high + 1))
        if i < self.n:
            return list(range(self.depth_range[i][0], high + 1))
        v = i - self.n
        low = self.register_floor(roles, v)
        marks = {(self.ii * e.distance + self.hold(e, False) + p[e.dst] - p[v]) % self.ii
                 for e in self.out[v] if roles[e.dst] == roles[v]}
        return [b for b in range(low, high + 1) if b == low or b % self.ii in marks]

    def candidates(self) -> Iterator[Schedule]:
        """Least-stage schedules of every (roles, slots, depths) that pass the rules checked here."""
        ii, n = self.ii, self.n
        for roles in canonical_roles(n):
            if not self.roles_ok(roles):
                continue
            crossing = self.crossing(roles)
            # A timed value's ring is charged only for its staging buffer or its shared/tensor memory.
            # A ring without a value (nor a fixed depth) is charged only as a channel: an edge crossing roles.
            channels = {e.src for e in self.loop.edges if roles[e.src] != roles[e.dst]}
            charged = [v for v in range(n) if self.depth_range[v] is not None and (
                not self.timed(v) or v in crossing or self.loop.ops[v].smem or self.loop.ops[v].tmem) and (
                self._has_value(v) or self.loop.ops[v].depth is not None or v in channels)]
            charged += [n + v for v in range(n) if self.timed(v)]
            floor = [r[0] if r else 1 for r in self.depth_range[:n]] + [
                self.register_floor(roles, v) if self.timed(v) else 0 for v in range(n)]
            for p in self.slot_vectors(roles):
                self.token_list = self.tokens(roles, p)
                tokens = [2 * n + j for j in range(len(self.token_list))]
                depth_floor = floor + [1] * len(tokens)
                fits: dict[tuple[int, ...], bool] = {}  # charges depend on the roles, slots and depths only

                def charges_fit(depth: list[int]) -> bool:
                    key = tuple(depth)
                    if key not in fits:
                        fits[key] = self.charges_fit(roles, p, depth)
                    return fits[key]

                if not charges_fit(depth_floor):
                    continue
                base = self.base_arcs(roles, p)
                fixed = [i for i in charged if i < n and self.depth_range[i][0] == self.depth_range[i][1]]
                base += [a for i in fixed for a in self.depth_arcs(roles, p, i, floor[i])]
                if least_stages(n, base) is None:
                    continue  # depth limits only add arcs
                free = [i for i in charged if i not in fixed] + tokens
                # This instance's own stage bound: arcs only get lighter as depths and lifetimes grow.
                heaviest = base + [a for i in free for a in self.depth_arcs(roles, p, i, depth_floor[i])]
                weights = sorted((w for _, _, w in heaviest if w > 0), reverse=True)
                latest = [sum(weights[: n - 1]) * ii + p[v] for v in range(n)]
                tries = {}
                for i in free:
                    v = i % n
                    if i >= 2 * n:
                        continue  # set once the other items are chosen (below)
                    if i < n:
                        life = max([self.dur[v]] + [latest[e.dst] + ii * e.distance
                                                    + self.hold(e, roles[v] != roles[e.dst]) - p[v] for e in self.out[v]])
                        high = max(floor[i], ceil_div(life, ii))
                    else:
                        high = max([floor[i]] + [latest[e.dst] + ii * e.distance + self.hold(e, False) - p[v]
                                                 for e in self.out[v] if roles[e.dst] == roles[v]])
                    tries[i] = self.bounds_to_try(roles, p, i, min(self.depth_range[i][1], high))
                depth = list(depth_floor)

                def choose(j: int, arcs: list):
                    if tokens and j == len(free) - len(tokens):
                        # A token's slots up to its distance without any token limit suffice: a larger
                        # limit keeps that least solution (its arcs hold there already).
                        k = least_stages(n, arcs)
                        if k is None:
                            return
                        for i in tokens:
                            a, b, off_a, off_b = self.token_list[i - 2 * n]
                            reach = (ii * (k[a] - k[b]) + p[a] + off_a - p[b] - off_b) // ii + 1
                            tries[i] = self.bounds_to_try(roles, p, i, max(1, reach))
                    if j == len(free):
                        k = least_stages(n, arcs)
                        if k is not None:
                            yield Schedule(ii, tuple(ii * k[v] + p[v] for v in range(n)), roles)
                        return
                    i = free[j]
                    for d in tries[i]:
                        depth[i] = d
                        if not charges_fit(depth):
                            break  # charges only grow with d
                        yield from choose(j + 1, arcs + self.depth_arcs(roles, p, i, d))
                    depth[i] = depth_floor[i]

                yield from choose(0, base)


def feasible_at(loop: Loop, ii: int) -> Schedule | None:
    """A verified schedule at ``ii``, or None when the joint problem has none there."""
    for schedule in _Instance(loop, ii).candidates():
        if not verify(loop, schedule):
            return schedule
    return None


def optimum_at(loop: Loop, ii: int) -> JointOptimum | None:
    """The lexicographic optimum (twill.model.objectives.JOINT_LEVELS) at ``ii``, or None."""
    best: tuple | None = None
    for schedule in _Instance(loop, ii).candidates():
        key = tuple(objective_value(loop, schedule, name) for name in JOINT_LEVELS)
        if best is not None and key >= best[0]:
            continue
        if verify(loop, schedule):
            continue
        best = (key, schedule)
    return None if best is None else JointOptimum(ii, best[0], best[1])


def stage_bound(loop: Loop, ii: int) -> int:
    """The oracle's own recomputation of the stage bound K at ``ii``."""
    return _Instance(loop, ii).stage_bound


def minimal_ii(loop: Loop, max_ii: int, start: int = 1) -> int | None:
    """The least feasible II in ``[start, max_ii]``, or None."""
    for ii in range(start, max_ii + 1):
        if feasible_at(loop, ii) is not None:
            return ii
    return None


def joint_oracle(loop: Loop, max_ii: int, start: int = 1) -> JointOptimum | None:
    """The least II in ``[start, max_ii]`` and the lexicographic optimum there, or None."""
    ii = minimal_ii(loop, max_ii, start)
    return None if ii is None else optimum_at(loop, ii)


# --- the tiny random family shared by the joint tests ------------------------------------------

def tiny_loop(seed: int) -> Loop:
    """2-4 ops with small latencies, hand-offs and capacities, so that the oracle is fast; knobs by seed."""
    from twill.model.generate import random_joint_loop
    knobs = random.Random(f"tiny-joint-{seed}")
    return random_joint_loop(
        knobs.choice((2, 3, 3, 4)), seed,
        units=knobs.randint(1, 3), max_latency=3, max_occupancy=2, max_offset=1, max_distance=1,
        carried=knobs.randint(0, 2), p_multi=0.1,
        max_issue=2, max_registers=16, max_handoff=2, transfer_per_kb=(0.0, 0.5),
        p_blocking=knobs.choice((0.0, 0.3)), p_variable=knobs.choice((0.0, 0.25)),
        p_depth=knobs.choice((0.0, 0.2)), p_ban=0.25, tightness=knobs.choice((0.8, 1.0, 1.5)), p_release=0.15)


def optimum_near_mii(loop: Loop, span: int) -> JointOptimum | None:
    """The oracle on ``loop`` over II in [MII, MII + span] (MII from twill.solver.bounds)."""
    from twill.solver.bounds import compute_bounds
    mii = compute_bounds(loop).mii
    return joint_oracle(loop, mii + span, mii)


@functools.lru_cache(maxsize=None)
def tiny_optimum(seed: int, span: int = 6) -> JointOptimum | None:
    """The oracle on ``tiny_loop(seed)`` over II in [MII, MII + span] (MII from twill.solver.bounds)."""
    return optimum_near_mii(tiny_loop(seed), span)


def register_loop(seed: int) -> Loop:
    """``tiny_loop(seed)`` with a register value on most ops and few registers per thread (one to three
    values at once), so that the peak of live values, not their sum, decides where values fit."""
    from dataclasses import replace
    knobs = random.Random(f"register-joint-{seed}")
    base = tiny_loop(seed)
    ops = tuple(replace(op, registers=knobs.choice((0, 8, 8, 16))) for op in base.ops)
    warps = replace(base.warps, max_registers=knobs.choice((16, 24, 32)), setmaxnreg=(8, 32, 8),
                    register_file=32 * 4 * 32 * 3, max_warps=knobs.choice((4, 8)), cross_role=True)
    return replace(base, ops=ops, warps=warps)


@functools.lru_cache(maxsize=None)
def register_optimum(seed: int, span: int = 6) -> JointOptimum | None:
    """The oracle on ``register_loop(seed)`` over II in [MII, MII + span]."""
    return optimum_near_mii(register_loop(seed), span)


def scratch_loop(seed: int) -> Loop:
    """``register_loop(seed)`` with scratch registers on some ops (held while the op issues, on top of
    the live values), so that where an op issues relative to the live values decides what fits."""
    from dataclasses import replace
    knobs = random.Random(f"scratch-joint-{seed}")
    base = register_loop(seed)
    return replace(base, ops=tuple(replace(op, scratch=knobs.choice((0, 8, 8, 16))) for op in base.ops))


@functools.lru_cache(maxsize=None)
def scratch_optimum(seed: int, span: int = 6) -> JointOptimum | None:
    """The oracle on ``scratch_loop(seed)`` over II in [MII, MII + span]."""
    return optimum_near_mii(scratch_loop(seed), span)


def accumulator_loop(seed: int) -> Loop:
    """``tiny_loop(seed)`` with one op made an accumulator (rule 7): its value (8 registers if it had
    none) is updated in place, a self edge of distance 1 whose delay is its issue, one storage."""
    from dataclasses import replace
    base = tiny_loop(seed)
    v = random.Random(f"accumulator-joint-{seed}").randrange(len(base.ops))
    op = base.ops[v]
    acc = replace(op, registers=op.registers or (0 if op.smem or op.tmem else 8), depth=1, accumulator=True)
    ops = base.ops[:v] + (acc,) + base.ops[v + 1:]
    edge = Dependence(v, v, issue_of(op), 1)
    return replace(base, ops=ops, edges=base.edges + (edge,))


@functools.lru_cache(maxsize=None)
def accumulator_optimum(seed: int, span: int = 6) -> JointOptimum | None:
    """The oracle on ``accumulator_loop(seed)`` over II in [MII, MII + span]."""
    return optimum_near_mii(accumulator_loop(seed), span)


def overwrite_loop(seed: int) -> Loop:
    """``register_loop(seed)`` where about half the ops read a register value write their result over
    it (``overwrites``): no registers of their own, the input's role, and the data size of their
    result (their own registers, else the input's, as the loader fills it) for readers elsewhere."""
    from dataclasses import replace
    knobs = random.Random(f"overwrite-joint-{seed}")
    base = register_loop(seed)
    ops = list(base.ops)
    for e in base.edges:
        src, dst = ops[e.src], ops[e.dst]
        if e.src != e.dst and src.registers and dst.overwrites is None and knobs.random() < 0.5:
            ops[e.dst] = replace(dst, overwrites=e.src, registers=dst.registers or src.registers)
    return replace(base, ops=tuple(ops))


@functools.lru_cache(maxsize=None)
def overwrite_optimum(seed: int, span: int = 6) -> JointOptimum | None:
    """The oracle on ``overwrite_loop(seed)`` over II in [MII, MII + span]."""
    return optimum_near_mii(overwrite_loop(seed), span)


def staging_loop(seed: int) -> Loop:
    """``register_loop(seed)`` with a register value read on another role: the consumer of one of its
    edges made variable-latency (so alone on the producer role), with a duration of at least 4 and
    few registers per thread, so that the value's registers, freed at the staging copy (rule 8),
    decide what fits."""
    from dataclasses import replace
    base = register_loop(seed)
    edges = [e for e in base.edges if e.src != e.dst and not base.ops[e.src].variable_latency]
    if not edges:
        return base
    e = random.Random(f"staging-joint-{seed}").choice(edges)
    ops = list(base.ops)
    ops[e.src] = replace(ops[e.src], registers=8, depth=None, accumulator=False)
    ops[e.dst] = replace(ops[e.dst], variable_latency=True, latency=max(4, ops[e.dst].latency), registers=0)
    warps = replace(base.warps, max_registers=16)
    return replace(base, ops=tuple(ops), warps=warps)


@functools.lru_cache(maxsize=None)
def staging_optimum(seed: int, span: int = 6) -> JointOptimum | None:
    """The oracle on ``staging_loop(seed)`` over II in [MII, MII + span]."""
    return optimum_near_mii(staging_loop(seed), span)
