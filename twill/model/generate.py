"""Random loops for tests and benchmarks: GPU-flavoured units, occupancies, offsets and recurrences.

``random_loop(n, seed)`` is deterministic (one ``random.Random(seed)``, no global state). A loop has

* units drawn from ``tc`` (tensor core), ``tma`` (bulk copy engine), ``sfu`` (special functions) and
  ``alu``, with capacities 1 or 2;
* ops that hold one unit for one or more cycles (occupancy), a few ops with a multi-unit reservation
  table at offsets (say a copy engine cycle, then the tensor core two cycles later), and a few ops that
  need no unit at all (address arithmetic, barriers);
* same-iteration (distance 0) edges only from a lower to a higher op index, so there is never a
  zero-distance cycle and every loop has a schedule at some II;
* loop-carried edges (distance 1 to ``max_distance``), mostly back edges to a nearby earlier op or to
  the op itself, which close recurrences through the forward edges.

``random_joint_loop(n, seed)`` decorates such a loop with the joint problem of docs/joint-model.md
(roles, registers, memories, hand-offs, blocking edges) on a small machine (``random_warps``) whose
capacities are drawn relative to the loop's own footprints, so that the limits actually bind.

``loop_to_spec`` turns a loop back into the dict a YAML spec file holds, so random loops can be written
to files and run through the command line.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, Mapping

from twill.model.joint import fixed_smem
from twill.model.loop import Dependence, Loop, Op, Reservation, Warps

# Unit name -> a verb for op names, so generated specs read like kernels.
UNIT_POOL: dict[str, str] = {"tc": "mma", "tma": "copy", "sfu": "exp", "alu": "add"}


def random_loop(n_ops: int, seed: int, *,
                units: int | Mapping[str, int] | None = None,
                max_capacity: int = 2,
                max_latency: int = 8,
                max_occupancy: int = 4,
                max_offset: int = 2,
                max_distance: int = 2,
                p_no_unit: float = 0.15,
                p_multi: float = 0.15,
                p_wide: float = 0.2,
                p_short_delay: float = 0.2,
                extra_forward: float = 0.5,
                carried: int | None = None,
                p_back: float = 0.75,
                recurrence_span: int = 4,
                name: str | None = None) -> Loop:
    """A random loop of ``n_ops`` ops; the same arguments always give the same loop.

    ``units``: how many units of the pool to use (1-4), or an explicit ``{unit: capacity}``; by default
    all four, each with a capacity drawn from ``1..max_capacity``. Unit ops get a latency in
    ``1..max_latency`` and an occupancy in ``1..max_occupancy``; ops without a unit a latency in
    ``0..max(1, max_latency // 2)``. With probability ``p_no_unit`` an op needs no unit, with
    ``p_multi`` it reserves two units at offsets in ``0..max_offset``, and a reservation on a unit with
    capacity >= 2 is wide (amount >= 2) with probability ``p_wide``. Each op after the first gets one
    distance-0 predecessor among the previous three ops, plus ``extra_forward * (n - 1)`` more
    distance-0 edges at random (low to high index). ``carried`` loop-carried edges (default about
    n/4, at least one) with distance in ``1..max_distance``: with probability ``p_back`` a back edge
    from an op to itself or to one at most ``recurrence_span`` ops before it, else a forward one. An
    edge's delay is the latency of its source, or with probability ``p_short_delay`` a smaller one.
    """
    if n_ops < 1:
        raise ValueError("n_ops must be at least 1")
    rng = random.Random(seed)
    capacity = _units(rng, units, max_capacity)
    names = list(capacity)

    ops: list[Op] = []
    for i in range(n_ops):
        roll = rng.random()
        if roll < p_no_unit:
            ops.append(Op(f"idx{i}", rng.randint(0, max(1, max_latency // 2)), ()))
            continue
        latency = rng.randint(1, max_latency)
        if roll < p_no_unit + p_multi and len(names) >= 2:
            first, second = rng.sample(names, 2)
            table = []
            offset = rng.randint(0, max_offset)
            for unit in (first, second):
                cycles = rng.randint(1, max(1, max_occupancy // 2 + 1))
                table.append(Reservation(unit, offset, cycles, _amount(rng, capacity[unit], p_wide)))
                offset += rng.randint(0, max_offset)
            ops.append(Op(f"fused{i}", latency, tuple(table)))
            continue
        unit = rng.choice(names)
        reservation = Reservation(unit, 0, rng.randint(1, max_occupancy), _amount(rng, capacity[unit], p_wide))
        ops.append(Op(f"{UNIT_POOL.get(unit, unit)}{i}", latency, (reservation,)))

    seen: set[tuple[int, int, int]] = set()
    edges: list[Dependence] = []

    def add(src: int, dst: int, distance: int) -> None:
        if (src, dst, distance) in seen:
            return
        seen.add((src, dst, distance))
        delay = ops[src].latency
        if delay > 0 and rng.random() < p_short_delay:
            delay = rng.randint(0, delay - 1)
        edges.append(Dependence(src, dst, delay, distance))

    for dst in range(1, n_ops):
        add(rng.randint(max(0, dst - 3), dst - 1), dst, 0)
    if n_ops >= 2:
        for _ in range(round(extra_forward * (n_ops - 1))):
            src, dst = sorted(rng.sample(range(n_ops), 2))
            add(src, dst, 0)
    for _ in range(max(1, round(n_ops / 4)) if carried is None else carried):
        distance = rng.randint(1, max_distance)
        if rng.random() < p_back or n_ops == 1:
            src = rng.randrange(n_ops)
            dst = rng.randint(max(0, src - recurrence_span), src)
        else:
            src, dst = sorted(rng.sample(range(n_ops), 2))
        add(src, dst, distance)

    return Loop(name or f"random-{n_ops}-{seed}", capacity, tuple(ops), tuple(edges))


def _units(rng: random.Random, units: int | Mapping[str, int] | None, max_capacity: int) -> dict[str, int]:
    if isinstance(units, Mapping):
        if not units or any(cap < 1 for cap in units.values()):
            raise ValueError("units needs at least one unit, each with capacity >= 1")
        return dict(units)
    count = len(UNIT_POOL) if units is None else units
    if not 1 <= count <= len(UNIT_POOL):
        raise ValueError(f"units must be between 1 and {len(UNIT_POOL)}")
    return {unit: rng.randint(1, max(1, max_capacity)) for unit in list(UNIT_POOL)[:count]}


def _amount(rng: random.Random, capacity: int, p_wide: float) -> int:
    return rng.randint(2, capacity) if capacity >= 2 and rng.random() < p_wide else 1


def loop_to_spec(loop: Loop) -> dict[str, Any]:
    """The YAML-shaped spec of ``loop`` (inline machine, every delay and distance written out).

    An op holding one unit from issue with amount 1 is written as ``unit``/``occupancy``, any other
    table as ``reservations``; an op without reservations has neither. A joint loop also gets the
    machine's ``warps``/``registers``/``memories``/``handoff`` sections, its ``cross_role`` and every
    op and edge field that differs from its default, so that ``load_spec`` gives the same loop back.
    """
    ops = []
    for op in loop.ops:
        entry: dict[str, Any] = {"name": op.name, "latency": op.latency}
        table = op.reservations
        if len(table) == 1 and table[0].offset == 0 and table[0].amount == 1:
            entry["unit"], entry["occupancy"] = table[0].unit, table[0].cycles
        elif table:
            entry["reservations"] = [{"unit": r.unit, "offset": r.offset, "cycles": r.cycles, "amount": r.amount}
                                     for r in table]
        if loop.joint:
            for field, default in (("issue_cycles", None), ("warps", 1), ("variable_latency", False),
                                   ("registers", 0), ("smem", 0), ("tmem", 0), ("depth", None), ("scratch", 0)):
                if getattr(op, field) != default:
                    entry["issue" if field == "issue_cycles" else field] = getattr(op, field)
            if op.overwrites is not None:
                entry["overwrites"] = loop.ops[op.overwrites].name
        if op.work:
            entry["work"] = op.work
        ops.append(entry)
    edges = []
    for e in loop.edges:
        entry = {"src": loop.ops[e.src].name, "dst": loop.ops[e.dst].name, "delay": e.delay,
                 "distance": e.distance}
        if loop.joint and e.blocking:
            entry["blocking"] = True
        if loop.joint and e.barrier != "mbarrier":
            entry["barrier"] = e.barrier
        edges.append(entry)
    spec: dict[str, Any] = {"name": loop.name, "machine": {"units": dict(loop.capacity)}, "ops": ops,
                            "edges": edges}
    if loop.joint:
        w = loop.warps
        spec["machine"].update({
            "warps": {"max": w.max_warps, "warpgroup": w.warpgroup},
            "registers": {"file": w.register_file, "per_thread": w.max_registers,
                          "setmaxnreg": list(w.setmaxnreg), "overhead": w.overhead},
            # the loader takes what every kernel needs besides its rings off the capacity (rule 9): an
            # inline machine names no arch and the spec no resident tiles
            "memories": {"smem": {"capacity": w.smem + fixed_smem(loop.ops, 0, 0) if w.smem else 0},
                         "tmem": {"capacity": w.tmem}},
            "handoff": {"mbarrier": w.mbarrier, "named": w.named, "transfer_base": w.transfer_base,
                        "transfer_per_kb": w.transfer_per_kb},
        })
        if not w.cross_role:
            spec["cross_role"] = False
    return spec


# --- the joint problem -------------------------------------------------------------------------

WARPGROUP = 4
SMEM_QUANTUM = 512   # bytes: smem footprints are multiples of this
TMEM_QUANTUM = 32    # columns
REGISTER_QUANTUM = 8  # registers per thread


def random_joint_loop(n_ops: int, seed: int, *,
                      p_async: float = 0.5,
                      max_issue: int = 2,
                      p_warpgroup: float = 0.3,
                      p_variable: float = 0.15,
                      p_registers: float = 0.4,
                      max_registers: int = 32,
                      p_smem: float = 0.3,
                      max_smem: int = 4096,
                      p_tmem: float = 0.15,
                      max_tmem: int = 128,
                      p_depth: float = 0.1,
                      max_depth: int = 3,
                      p_blocking: float = 0.15,
                      p_named: float = 0.3,
                      p_release: float = 0.0,
                      p_scratch: float = 0.0,
                      cross_role: bool | None = None,
                      p_ban: float = 0.2,
                      max_warps: int | None = None,
                      warps: Warps | None = None,
                      tightness: float = 1.0,
                      max_handoff: int = 3,
                      transfer_per_kb: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0),
                      name: str | None = None,
                      **loop_knobs: Any) -> Loop:
    """A random joint loop: ``random_loop(n_ops, seed, **loop_knobs)`` plus roles' data and a machine.

    Deterministic in its arguments (its own ``random.Random``, no global state). Per op, with the
    given probabilities: asynchronous issue (``issue_cycles`` in ``1..max_issue``, capped by the
    duration; otherwise synchronous: busy for the whole duration), issued by a warpgroup
    (``p_warpgroup``), variable latency (``p_variable``: a load with an async issue, often into
    shared memory), a register result (multiples of 8 up to ``max_registers`` per thread), a
    shared-memory result (multiples of 512 bytes up to ``max_smem``), a tensor-memory result
    (multiples of 32 columns up to ``max_tmem``), and for a value a fixed ring depth
    (``p_depth``, ``1..max_depth``). Per edge: blocking (``p_blocking``) and a named barrier
    (``p_named``), and, between ops sharing a unit, ``release: issue`` (``p_release``, drawn from a
    separate stream so other draws do not change). Per op, scratch registers while it issues
    (``p_scratch``, multiples of 8 up to ``max_registers``, a separate stream too). ``cross_role`` None bans cross-role register values with probability ``p_ban``.

    ``warps`` fixes the machine; by default ``random_warps`` draws one whose register, shared and
    tensor memory capacities are ``tightness`` times a random fraction of the loop's footprints
    (never below what the largest single op needs), and ``max_warps`` (default: drawn from 4, 8,
    12, 16) caps the CTA. Hand-off barriers cost up to ``max_handoff`` cycles.
    """
    base = random_loop(n_ops, seed, **loop_knobs)
    rng = random.Random(f"joint-{n_ops}-{seed}")
    ops = []
    for op in base.ops:
        duration = op.duration
        variable = rng.random() < p_variable
        wide = not variable and rng.random() < p_warpgroup
        if variable or rng.random() < p_async:
            issue: int | None = rng.randint(1, max(1, min(max_issue, duration))) if duration else 0
        else:
            issue = None
        registers = _quantum(rng, p_registers, max_registers, REGISTER_QUANTUM)
        smem = _quantum(rng, 0.7 if variable else p_smem, max_smem, SMEM_QUANTUM)
        tmem = _quantum(rng, p_tmem, max_tmem, TMEM_QUANTUM)
        depth = rng.randint(1, max_depth) if (registers or smem or tmem) and rng.random() < p_depth else None
        ops.append(Op(op.name, op.latency, op.reservations, issue, WARPGROUP if wide else 1, variable,
                      registers, smem, tmem, depth))
    edges = tuple(replace(e, blocking=rng.random() < p_blocking,
                          barrier="named" if rng.random() < p_named else "mbarrier") for e in base.edges)
    scratches = random.Random(f"scratch-{n_ops}-{seed}")
    ops = [replace(op, scratch=_quantum(scratches, p_scratch, max_registers, REGISTER_QUANTUM)) if p_scratch else op
           for op in ops]
    releases = random.Random(f"release-{n_ops}-{seed}")
    edges = tuple(replace(e, release="issue") if ops[e.src].shares_unit(ops[e.dst]) and releases.random() < p_release
                  else e for e in edges)
    if cross_role is None:
        cross_role = rng.random() >= p_ban
    if warps is None:
        warps = random_warps(rng, ops, edges, max_warps=max_warps, tightness=tightness, max_handoff=max_handoff,
                             transfer_per_kb=transfer_per_kb)
    warps = replace(warps, cross_role=cross_role)
    return Loop(name or f"joint-{n_ops}-{seed}", base.capacity, tuple(ops), edges, warps)


def random_warps(rng: random.Random, ops: list[Op] | tuple[Op, ...], edges: tuple[Dependence, ...] = (), *,
                 max_warps: int | None = None, tightness: float = 1.0, max_handoff: int = 3,
                 transfer_per_kb: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)) -> Warps:
    """A small machine for ``ops``: capacities a random fraction (times ``tightness``) of their footprints.

    Each footprint is counted at the least ring depth it can have: its fixed depth, or for a value
    that its own later iteration reads in place (a self edge of distance d) d slots (docs/joint-model.md
    rule 7), else 1. Every op fits on its own (per-thread registers, setmaxnreg range, shared and
    tensor memory), so the loader accepts the loop, but the sums usually do not fit at every depth
    and role split.
    """
    least = [max([1] + [e.distance for e in edges if e.src == e.dst == i])
             if op.depth is None else op.depth for i, op in enumerate(ops)]
    if max_warps is None:
        max_warps = rng.choice((4, 8, 8, 12, 16))
    overhead = rng.choice((0, 8))
    regs = [op.own_registers * d for op, d in zip(ops, least)]
    producer = sum(r for r, op in zip(regs, ops) if op.variable_latency)  # all on one role
    largest = overhead + max([r + op.scratch for r, op in zip(regs, ops)] + [producer])
    total = overhead + sum(regs)
    per_thread = min(255, max(largest, _round(tightness * rng.uniform(0.75, 1.5) * total, REGISTER_QUANTUM)))
    per_thread = max(per_thread, REGISTER_QUANTUM)
    high = _round(per_thread, REGISTER_QUANTUM, up=True)
    groups = max(1, max_warps // WARPGROUP)
    per_group = WARPGROUP * 32
    file = per_group * max(_round(largest, REGISTER_QUANTUM, up=True) + REGISTER_QUANTUM,
                           _round(tightness * rng.uniform(0.4, 1.2) * groups * high, REGISTER_QUANTUM))
    staged = sum(op.registers * 4 * 32 * op.warps * d for op, d in zip(ops, least))
    smems = [op.smem * d for op, d in zip(ops, least)]
    tmems = [op.tmem * d for op, d in zip(ops, least)]
    smem = max(max(smems, default=0),
               _round(tightness * rng.uniform(0.75, 2.0) * (sum(smems) + staged), SMEM_QUANTUM))
    tmem = max(max(tmems, default=0), _round(tightness * rng.uniform(0.75, 2.0) * sum(tmems), TMEM_QUANTUM))
    return Warps(max_warps=max_warps, warpgroup=WARPGROUP, register_file=file, max_registers=per_thread,
                 setmaxnreg=(REGISTER_QUANTUM, high, REGISTER_QUANTUM), overhead=overhead, smem=smem, tmem=tmem,
                 mbarrier=rng.randint(1, max(1, max_handoff)), named=rng.randint(0, max(0, max_handoff - 1)),
                 transfer_base=rng.randint(0, 2), transfer_per_kb=rng.choice(transfer_per_kb))


def _quantum(rng: random.Random, p: float, largest: int, quantum: int) -> int:
    """0, or with probability ``p`` a multiple of ``quantum`` up to ``largest``."""
    if largest < quantum or rng.random() >= p:
        return 0
    return quantum * rng.randint(1, largest // quantum)


def _round(x: float, quantum: int, up: bool = False) -> int:
    steps = -(-int(x) // quantum) if up else round(x / quantum)
    return int(steps) * quantum
