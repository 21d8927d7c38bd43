"""The design review of a hand schedule, without any solver (docs/hand-schedules.md).

Place a structured schedule at its II (or find the smallest II at which its earliest placement is
valid), run the independent verifier, check the file's ``expect`` claims, and explain what binds
the schedule's II: the critical cycle of its constraint graph (the structure held fixed), a unit or
role it saturates, or what the verifier rejects one II lower. Optimality against twill's own search
is added by the report (twill/report_verify.py), which is the only part that runs a solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twill.model.hand_schedule import HandSchedule
from twill.model.joint import carries_registers, ceil_div, depth, layout, smem_bytes, tmem_columns
from twill.model.loop import Loop
from twill.model.placement import (Arc, Placement, Range, Structure, cycle_weight, feasible_range,
                                   longest_from_zero, place, schedule_of, structure_arcs)
from twill.model.schedule import Schedule
from twill.solver.bounds import Bounds, compute_bounds
from twill.solver.verify import Violation, verify

# The scan for the smallest valid II tries at most this many IIs.
MAX_PROBES = 4000


@dataclass(frozen=True)
class Claim:
    what: str           # depth | setmaxnreg | registers | warps | stages | length | ii
    subject: str | None  # op or role name (None for whole-schedule claims)
    expected: int
    derived: int | None  # None: not checked (no schedule)

    @property
    def agree(self) -> bool | None:
        return None if self.derived is None else self.expected == self.derived


@dataclass(frozen=True)
class Binding:
    """Why the schedule's structure needs its II."""

    kind: str                     # cycle | bound | saturated | violation
    text: str
    cycle: tuple[Arc, ...] = ()
    const: int = 0                # cycle: const + coef*II <= 0
    coef: int = 0


@dataclass
class Review:
    loop: Loop
    hand: HandSchedule
    bounds: Bounds
    range: Range
    ii: int | None = None                 # the II reviewed
    ii_source: str = "file"               # file | scan
    schedule: Schedule | None = None
    placement: Placement | None = None
    violations: list[Violation] = field(default_factory=list)
    contradiction: tuple[Arc, ...] = ()   # a positive cycle ruling out the reviewed II (or every II)
    impossible: bool = False              # the structure is invalid at every II
    best_ii: int | None = None            # smallest II where the structure's earliest placement is valid
    scanned: tuple[int, int] | None = None  # IIs probed by the scan, inclusive
    claims: list[Claim] = field(default_factory=list)
    earliest: tuple[int, ...] | None = None  # explicit form: a valid placement of its structure that differs
    binding: list[Binding] = field(default_factory=list)

    @property
    def best_proven(self) -> bool:
        """No schedule of this structure exists below ``best_ii``: every smaller II is below MII or
        below the least II at which the structure's difference constraints can hold (an interval)."""
        return self.best_ii is not None and (self.best_ii <= self.bounds.mii or self.best_ii == self.range.low)

    @property
    def valid(self) -> bool:
        return self.schedule is not None and not self.violations and not self.contradiction


def review(loop: Loop, hand: HandSchedule) -> Review:
    s = hand.structure
    arcs = structure_arcs(loop, s)
    bounds = compute_bounds(loop)
    rng = feasible_range(loop, s, arcs)
    r = Review(loop, hand, bounds, rng)
    if hand.form == "explicit":
        r.ii, r.schedule = hand.ii, hand.schedule
        r.violations = verify(loop, hand.schedule)
        if not r.violations:
            p = place(loop, s, hand.ii, arcs)
            if p.starts is not None and p.starts != hand.schedule.starts \
                    and not verify(loop, schedule_of(s, p)):
                r.earliest = p.starts
        _scan(r, arcs, stop=hand.ii if r.valid else None)
    elif rng.empty:
        r.impossible, r.contradiction = True, rng.cycles[0]
        r.ii, r.ii_source = hand.ii, "file" if hand.ii is not None else "scan"
    elif hand.ii is not None:
        r.ii = hand.ii
        _place_at(r, hand.ii, arcs)
        _scan(r, arcs, stop=hand.ii if r.valid else None)
    else:
        r.ii_source = "scan"
        _scan(r, arcs, stop=None)
        if r.best_ii is not None:
            _place_at(r, r.best_ii, arcs)
        else:
            last = r.scanned[1] if r.scanned else (rng.low or 1)
            r.ii = last
            _place_at(r, last, arcs)
    r.claims = _claims(r)
    if r.valid:
        r.binding = _binding(r, arcs)
    return r


def _place_at(r: Review, ii: int, arcs: list[Arc]) -> None:
    r.ii = ii
    p = place(r.loop, r.hand.structure, ii, arcs)
    r.placement = p
    if p.blocked is not None:
        r.violations = [Violation("placement", f"list placement failed: {p.blocked} (units are placed "
                                               "greedily; another placement of this structure may exist)")]
        return
    if p.starts is None:
        r.contradiction = tuple(p.cycle)
        return
    r.schedule = schedule_of(r.hand.structure, p)
    r.violations = verify(r.loop, r.schedule)


def _scan(r: Review, arcs: list[Arc], stop: int | None) -> None:
    """Smallest II >= max(MII, the structure's least feasible II) whose earliest placement verifies."""
    if r.range.empty:
        return
    start = max(r.range.low, r.bounds.mii)
    end = r.range.high if r.range.high is not None else start + MAX_PROBES - 1
    end = min(end, start + MAX_PROBES - 1)
    if stop is not None:
        end = min(end, stop)
    ii = start
    while ii <= end:
        p = place(r.loop, r.hand.structure, ii, arcs)
        if p.starts is None:
            ii += 1
            continue
        schedule = schedule_of(r.hand.structure, p)
        if not _quick_reject(r.loop, schedule) and not verify(r.loop, schedule):
            r.best_ii = ii
            break
        ii += 1
    r.scanned = (start, min(ii, end)) if start <= end else None


def _quick_reject(loop: Loop, s: Schedule) -> bool:
    """Rules the verifier would reject that cost no per-slot table (warps, registers, memories, the
    producer role, the ban): a cheap filter before the full verifier, never a verdict of its own."""
    if not loop.joint:
        return False
    w, ops = loop.warps, loop.ops
    plan = layout(loop, s)
    if plan.warps > w.max_warps or not plan.fits or any(role.registers > w.max_registers for role in plan.roles):
        return True
    if smem_bytes(loop, s).total > w.smem or tmem_columns(loop, s) > w.tmem:
        return True
    producers = {s.roles[i] for i, op in enumerate(ops) if op.variable_latency}
    if len(producers) > 1 or any(not op.variable_latency and s.roles[i] in producers for i, op in enumerate(ops)):
        return True
    return not w.cross_role and any(carries_registers(loop, e) and s.roles[e.src] != s.roles[e.dst]
                                    for e in loop.edges)


def _claims(r: Review) -> list[Claim]:
    loop, want, s = r.loop, r.hand.expect, r.schedule
    ok = s is not None and not r.contradiction
    claims = []
    names = {op.name: i for i, op in enumerate(loop.ops)}
    for op, value in want.get("depth", {}).items():
        claims.append(Claim("depth", op, value, depth(loop, s, names[op]) if ok else None))
    if loop.joint and ok:
        plan = {role.id: role for role in layout(loop, s).roles}
        ids = {name: i for i, name in enumerate(r.hand.role_names)}
        if r.hand.form == "explicit":
            ids = {name: sorted(set(s.roles))[i] for i, name in enumerate(r.hand.role_names)}
    for key, attr in (("setmaxnreg", "setmaxnreg"), ("registers", "registers"), ("warps", "warps")):
        for role, value in want.get(key, {}).items():
            claims.append(Claim(key, role, value, getattr(plan[ids[role]], attr) if ok else None))
    if "stages" in want:
        claims.append(Claim("stages", None, want["stages"], s.stages if ok else None))
    if "length" in want:
        claims.append(Claim("length", None, want["length"], s.length(loop) if ok else None))
    if "ii" in want:
        found = r.best_ii if r.hand.form == "structured" and r.hand.ii is None else (r.ii if r.valid else None)
        claims.append(Claim("ii", None, want["ii"], found))
    return claims


def explain_cycle(loop: Loop, cycle: tuple[Arc, ...]) -> str:
    """One line: what each step of the cycle is."""
    return "; ".join(a.text for a in cycle)


def cycle_ops(loop: Loop, cycle: tuple[Arc, ...]) -> list[str]:
    """The ops along the cycle, in order, without the zero node."""
    seen = []
    for a in cycle:
        if a.src >= 0 and loop.ops[a.src].name not in seen:
            seen.append(loop.ops[a.src].name)
    return seen


def forced_ii(const: int, coef: int) -> str:
    """What ``const + coef*II <= 0`` says about II."""
    if coef == 0:
        return "holds at no II" if const > 0 else "holds at every II"
    if coef < 0:
        return f"needs II >= {ceil_div(const, -coef)}"
    return f"needs II <= {(-const) // coef}"


def _binding(r: Review, arcs: list[Arc]) -> list[Binding]:
    """What keeps this structure from II - 1 (for the best II of the structure)."""
    loop, s, found = r.loop, r.hand.structure, []
    target = r.best_ii if r.best_ii is not None else r.ii
    if target is None:
        return []
    if target <= r.bounds.mii:
        b = r.bounds
        if b.rec_mii >= b.res_mii and b.recurrence is not None:
            found.append(Binding("bound", f"RecMII: {b.recurrence.explain()}"))
        elif b.binding_unit is not None:
            found.append(Binding("bound", f"ResMII: {b.binding_unit.explain()}"))
        return found
    for u in r.bounds.units:
        if u.ii == target:
            found.append(Binding("saturated", f"unit {u.unit} is saturated: {u.usage} cycles of work "
                                              f"on {u.capacity} instance(s) fill II {target}"))
    if s.joint:
        for name, ops in zip(s.role_names, s.role_ops):
            busy = sum(loop.ops[o].issue for o in ops)
            if busy == target:
                found.append(Binding("saturated", f"role {name} is saturated: its ops issue for "
                                                  f"{busy} cycles of II {target}"))
    below = target - 1
    cycle = longest_from_zero(len(loop.ops), arcs, below)[1] if below >= 1 else None
    if cycle is not None:
        const, coef = cycle_weight(cycle)
        found.insert(0, Binding("cycle", explain_cycle(loop, tuple(cycle)), tuple(cycle), const, coef))
    elif below >= 1:
        p = place(loop, s, below, arcs)
        if p.blocked is not None:
            found.append(Binding("violation", f"at II {below} the list placement fails: {p.blocked}"))
        elif p.starts is None:
            const, coef = cycle_weight(p.cycle)
            found.insert(0, Binding("cycle", explain_cycle(loop, tuple(p.cycle)), tuple(p.cycle), const, coef))
        else:
            v = verify(loop, schedule_of(s, p))
            if v:
                found.append(Binding("violation", f"at II {below} the earliest placement breaks "
                                                  f"{v[0].constraint}: {v[0].message}"))
    return found
