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

``loop_to_spec`` turns a loop back into the dict a YAML spec file holds, so random loops can be written
to files and run through the command line.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

from twill.model.loop import Dependence, Loop, Op, Reservation

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
    table as ``reservations``; an op without reservations has neither.
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
        ops.append(entry)
    return {
        "name": loop.name,
        "machine": {"units": dict(loop.capacity)},
        "ops": ops,
        "edges": [{"src": loop.ops[e.src].name, "dst": loop.ops[e.dst].name, "delay": e.delay,
                   "distance": e.distance} for e in loop.edges],
    }
