"""Start times of a structured hand schedule, derived without any solver (docs/hand-schedules.md).

A *structure* fixes what an expert decides: the role of every op, the op order within each role's
II window, and the stage (iteration offset) of every op. For a given II every rule of
docs/joint-model.md that reads differences of starts is then a difference constraint on the starts
``t(v) = II*k(v) + p(v)``:

* stage window: ``II*k(v) <= t(v) <= II*k(v) + II - 1``;
* dependence (rule 1), with the hand-off when its ends are on different roles;
* in-order issue (rule 3): consecutive ops of a role's list issue ``issue(o)`` apart within one
  window, and the last one's issue ends before the first one's next instance (it may wrap);
* blocking (rule 6): when the awaited op is on the waiting role, the list order says which
  instance of every other op of that role was issued before it, so the drain is a difference
  constraint too;
* fixed ring depths (rule 7): ``L(v) <= depth(v)*II`` bounds each consumer's start from above
  (with the release's barrier when the consumer is on another role; an accumulator has depth 1).

Each constraint ``t(b) - t(a) >= const + coef*II`` is an arc; the earliest solution is the longest
path from a zero node (Bellman-Ford), and a positive cycle is a named contradiction. Units are then
placed greedily (list placement: an op whose unit is busy waits, see ``place``); registers,
memories and warps are not placed: the independent verifier checks them afterwards.

One rule is not a difference constraint under a fixed structure: a blocking wait whose awaited op
is on *another* role drains the instances issued before it, which depends on the phases of two
roles. Those are enforced by a fixpoint (the instance is read off the current placement, the arc is
added, the placement recomputed); a placement that needed one is reported as not proven earliest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twill.model.joint import handoff_cost, held_after_issue, lifetime_edges, release_cost
from twill.model.loop import Loop
from twill.model.schedule import Schedule

ZERO = -1  # the node standing for cycle 0 (stage windows are arcs to and from it)
MAX_ROUNDS = 200  # placement gives up after this many rounds of cross-role blocking drains


@dataclass(frozen=True)
class Structure:
    """Roles with their ops in issue order, and the stage of every op.

    A loop without warps has one sequence (``joint`` false): its order is the phase order, ties
    allowed, and it implies no issue cycles.
    """

    role_names: tuple[str, ...]
    role_ops: tuple[tuple[int, ...], ...]   # per role, op indices in issue order
    stages: tuple[int, ...]                 # per op
    joint: bool = True

    @property
    def role_of(self) -> tuple[int, ...]:
        roles = [0] * len(self.stages)
        for r, ops in enumerate(self.role_ops):
            for o in ops:
                roles[o] = r
        return tuple(roles)


@dataclass(frozen=True)
class Arc:
    """``t(dst) - t(src) >= const + coef*II``; ``src``/``dst`` are op indices or ZERO."""

    src: int
    dst: int
    const: int
    coef: int
    kind: str      # window | window_end | dependence | issue | wrap | blocking | depth
    text: str      # what the constraint is, in words

    def weight(self, ii: int) -> int:
        return self.const + self.coef * ii


def _issue(loop: Loop, s: Structure, op: int) -> int:
    return loop.ops[op].issue if s.joint else 0


def structure_arcs(loop: Loop, s: Structure) -> list[Arc]:
    """Every constraint that is a difference constraint under the structure."""
    ops, k, role = loop.ops, s.stages, s.role_of
    name = lambda i: ops[i].name  # noqa: E731
    arcs = []
    for v in range(len(ops)):
        arcs.append(Arc(ZERO, v, 0, k[v], "window", f"{name(v)} is in stage {k[v]}: t >= {k[v]}*II"))
        arcs.append(Arc(v, ZERO, 1, -(k[v] + 1), "window_end",
                        f"{name(v)} is in stage {k[v]}: t <= {k[v] + 1}*II - 1"))
    for e in loop.edges:
        cross = s.joint and role[e.src] != role[e.dst]
        extra = handoff_cost(loop, e) if cross else 0
        how = f"delay {e.delay}" + (f" + hand-off {extra}" if cross else "")
        dist = f", distance {e.distance}" if e.distance else ""
        arcs.append(Arc(e.src, e.dst, e.delay + extra, -e.distance, "dependence",
                        f"{name(e.src)} -> {name(e.dst)} ({how}{dist})"))
    for r, seq in enumerate(s.role_ops):
        for a, b in zip(seq, seq[1:]):
            arcs.append(Arc(a, b, _issue(loop, s, a), k[b] - k[a], "issue",
                            f"{s.role_names[r]} issues {name(b)} after {name(a)}"
                            + (f" (issue {_issue(loop, s, a)})" if s.joint else "")))
        if s.joint and len(seq) > 1:
            first, last = seq[0], seq[-1]
            arcs.append(Arc(last, first, _issue(loop, s, last), k[first] - k[last] - 1, "wrap",
                            f"{s.role_names[r]} issues the next {name(first)} after {name(last)} "
                            f"(issue {_issue(loop, s, last)}, next window)"))
        elif s.joint and seq:  # one op alone: its issue fits in II
            v = seq[0]
            arcs.append(Arc(v, v, _issue(loop, s, v), -1, "wrap",
                            f"{s.role_names[r]} issues {name(v)} once per II (issue {_issue(loop, s, v)})"))
    if s.joint:
        for e in (e for e in loop.edges if e.blocking):
            for o, kind, coef in _blocking_pairs(loop, s, e):
                arcs.append(Arc(o, e.dst, ops[o].duration, coef - e.distance, "blocking",
                                f"blocking {name(e.src)} -> {name(e.dst)}: {name(o)} issued before "
                                f"{name(e.src)} ({kind}) is done (duration {ops[o].duration})"))
    for v, op in enumerate(ops):
        if op.depth is None:
            continue
        for e in lifetime_edges(loop, v):
            cross = s.joint and role[v] != role[e.dst]
            hold = held_after_issue(loop, e) + (release_cost(loop, e) if cross else 0)
            arcs.append(Arc(e.dst, v, hold, e.distance - op.depth, "depth",
                            f"{name(v)} has {op.depth} ring slot(s): its consumer {name(e.dst)} "
                            f"releases it within {op.depth}*II" + (" (its release crosses roles)" if cross else "")))
        if not op.accumulator:  # an accumulator's storage is its own: rewritten in place, whenever it completes
            arcs.append(Arc(v, v, op.duration, -op.depth, "depth",
                            f"{name(v)} has {op.depth} ring slot(s): it completes within {op.depth}*II"))
    return arcs


def _blocking_pairs(loop: Loop, s: Structure, e) -> list[tuple[int, str, int]]:
    """(o, which instance, coef) for every op o on the waiting role whose drained instance the
    structure fixes: t(inst of o) = t(o) + coef*II. Pairs it does not fix are left to the fixpoint."""
    role = s.role_of
    if role[e.src] != role[e.dst]:
        return []
    seq = s.role_ops[role[e.dst]]
    at = {o: i for i, o in enumerate(seq)}
    k, u = s.stages, e.src
    pairs = []
    for o in seq:
        if o == e.dst:
            continue
        if o == u:
            pairs.append((o, "its previous instance", -1))
        elif at[o] < at[u] and sum(_issue(loop, s, x) for x in seq[at[o]:at[u]]) > 0:
            pairs.append((o, "same window", k[u] - k[o]))
        elif at[o] > at[u]:
            pairs.append((o, "previous window", k[u] - k[o] - 1))
    return pairs


def dynamic_blocking(loop: Loop, s: Structure) -> list[tuple[object, int]]:
    """(edge, o) pairs of rule 6 whose drained instance depends on the placement."""
    role, pairs = s.role_of, []
    for e in (e for e in loop.edges if e.blocking):
        fixed = {o for o, _, _ in _blocking_pairs(loop, s, e)}
        for o in s.role_ops[role[e.dst]]:
            if o != e.dst and o not in fixed:
                pairs.append((e, o))
    return pairs


class _Graph:
    """The constraint graph at one II; arcs may be added and the least solution resumed from the
    previous one (adding constraints only raises it)."""

    NONE = -(1 << 62)

    def __init__(self, n: int, arcs: list[Arc], ii: int, dist: list[int] | None = None):
        self.n, self.ii, self.arcs = n, ii, []
        self.out: list[list[tuple[int, int]]] = [[] for _ in range(n + 1)]
        self.dist: list[int] | None = None
        self.pending: list[int] = []
        for a in arcs:
            self.add(a)
        if dist is not None:  # an already solved copy: nothing pending
            self.dist, self.pending = list(dist), []

    def add(self, a: Arc) -> None:
        n = self.n
        u, v = (n if a.src == ZERO else a.src), (n if a.dst == ZERO else a.dst)
        self.arcs.append(a)
        self.out[u].append((v, a.const + a.coef * self.ii))
        self.pending.append(u)

    def solve(self) -> list[Arc] | None:
        """Bring ``dist`` up to the least solution; a positive cycle if there is none."""
        n, NONE = self.n, self.NONE
        if self.dist is None:
            self.dist = [NONE] * (n + 1)
            self.dist[n] = 0
            work = [n]
        else:
            work = list(dict.fromkeys(self.pending))
        self.pending = []
        dist, out = self.dist, self.out
        queued = [False] * (n + 1)
        for u in work:
            queued[u] = True
        count = [0] * (n + 1)
        head = 0
        while head < len(work):
            u = work[head]
            head += 1
            queued[u] = False
            du = dist[u]
            if du == NONE:
                continue
            for v, w in out[u]:
                if du + w > dist[v]:
                    dist[v] = du + w
                    if v == n:
                        return _cycle(n, self.arcs, self.ii)
                    if not queued[v]:
                        count[v] += 1
                        if count[v] > n + 2:
                            return _cycle(n, self.arcs, self.ii)
                        queued[v] = True
                        work.append(v)
        return None


def longest_from_zero(n: int, arcs: list[Arc], ii: int) -> tuple[list[int] | None, list[Arc] | None]:
    """Least starts with t(ZERO) = 0 (longest paths), or a positive cycle (arcs in order)."""
    g = _Graph(n, arcs, ii)
    cycle = g.solve()
    return (None, cycle) if cycle is not None else (g.dist[:n], None)


def _cycle(n: int, arcs: list[Arc], ii: int) -> list[Arc]:
    """One positive cycle, by rounds of Bellman-Ford from the zero node (called once one exists)."""
    index = lambda v: n if v == ZERO else v  # noqa: E731
    NONE = -(1 << 62)
    dist = [NONE] * (n + 1)
    dist[n] = 0
    pred: list[Arc | None] = [None] * (n + 1)
    last = None
    for _ in range(n + 2):
        last = None
        for a in arcs:
            u, v = index(a.src), index(a.dst)
            if dist[u] != NONE and dist[u] + a.weight(ii) > dist[v]:
                dist[v] = dist[u] + a.weight(ii)
                pred[v] = a
                last = a
        if last is None:
            raise AssertionError("no positive cycle")
    node = index(last.dst)
    for _ in range(n + 1):
        node = index(pred[node].src)
    cycle, current = [], node
    while True:
        a = pred[current]
        cycle.append(a)
        current = index(a.src)
        if current == node:
            break
    cycle.reverse()
    return rotate(cycle)


def rotate(cycle: list[Arc]) -> list[Arc]:
    """Start a cycle at the zero node if it passes there (it then reads as a path from one stage
    window to another), else at its first op."""
    at = next((i for i, a in enumerate(cycle) if a.src == ZERO), None)
    if at is None:
        at = min(range(len(cycle)), key=lambda i: cycle[i].src)
    return cycle[at:] + cycle[:at]


def cycle_weight(cycle: list[Arc]) -> tuple[int, int]:
    """(const, coef): the cycle forces ``const + coef*II <= 0``."""
    return sum(a.const for a in cycle), sum(a.coef for a in cycle)


@dataclass
class Placement:
    ii: int
    starts: tuple[int, ...] | None       # None: a contradiction (``cycle``) or no free unit (``blocked``)
    cycle: list[Arc] | None = None
    guessed: list[Arc] = field(default_factory=list)  # blocking arcs taken from the placement
    delays: list[Arc] = field(default_factory=list)   # ops delayed for a busy unit
    blocked: str | None = None           # why list placement failed (units placed greedily, so a
                                         # placement of the structure may still exist)

    @property
    def earliest(self) -> bool:
        """The least solution of the structure's constraints (nothing guessed or delayed for a unit)."""
        return self.starts is not None and not self.guessed and not self.delays


def _segments(start: int, offset: int, cycles: int, amount: int, ii: int) -> list[tuple[int, int, int]]:
    """Residues [a, b) of [0, ii) held by one reservation, with the amount held there."""
    wraps, rest = divmod(cycles, ii)
    out = [(0, ii, amount * wraps)] if wraps else []
    a = (start + offset) % ii
    if rest:
        out += [(a, a + rest, amount)] if a + rest <= ii else [(a, ii, amount), (0, a + rest - ii, amount)]
    return out


def _fits(held: list[tuple[int, int, int]], capacity: int) -> bool:
    events = sorted([(a, amount) for a, _, amount in held] + [(b, -amount) for _, b, amount in held],
                    key=lambda e: (e[0], e[1]))
    level = 0
    for _, change in events:
        level += change
        if level > capacity:
            return False
    return True


class _Table:
    """The modulo reservation table of the ops placed so far, as segments per unit."""

    def __init__(self, loop: Loop, ii: int):
        self.loop, self.ii = loop, ii
        self.held: dict[str, list[tuple[int, int, int, int]]] = {u: [] for u in loop.capacity}

    def _mine(self, op: int, start: int) -> dict[str, list[tuple[int, int, int]]]:
        mine: dict[str, list[tuple[int, int, int]]] = {}
        for r in self.loop.ops[op].reservations:
            mine.setdefault(r.unit, []).extend(_segments(start, r.offset, r.cycles, r.amount, self.ii))
        return mine

    def fits(self, op: int, start: int) -> bool:
        return all(_fits([h[:3] for h in self.held[u]] + segs, self.loop.capacity[u])
                   for u, segs in self._mine(op, start).items())

    def add(self, op: int, start: int) -> None:
        for u, segs in self._mine(op, start).items():
            self.held[u] += [seg + (op,) for seg in segs]

    def first_fit(self, op: int, low: int, high: int) -> int | None:
        """The first start in [low, high] where the op's reservations fit: ``low`` or a start that
        lines one of its reservations up with the end of a held segment (only there can a clash end)."""
        candidates = {low}
        for r in self.loop.ops[op].reservations:
            for _, b, _, _ in self.held[r.unit]:
                candidates.add(low + (b - r.offset - low) % self.ii)
        for t in sorted(c for c in candidates if c <= high):
            if self.fits(op, t):
                return t
        return None

    def holders(self, op: int) -> list[int]:
        units = {r.unit for r in self.loop.ops[op].reservations}
        return sorted({h[3] for u in units for h in self.held[u]})


def _undrained(loop: Loop, t: list[int], ii: int, e, o: int) -> bool:
    m = (t[e.src] - 1 - t[o]) // ii  # the latest instance of o issued before src
    return t[o] + m * ii + loop.ops[o].duration > t[e.dst] + e.distance * ii  # dst: distance iterations later


def _drain_choices(loop: Loop, s: Structure, t: list[int], ii: int, e, o: int) -> list[list[Arc]]:
    """Arcs for rule 6 on (e, o) when o and e.src are on different roles: the instance of o issued
    before src in this placement; and, if that is the same window's, the alternative where o issues
    after src (its previous window's instance is then the one drained)."""
    name = lambda i: loop.ops[i].name  # noqa: E731
    u, v, dur = e.src, e.dst, loop.ops[o].duration
    m = (t[u] - 1 - t[o]) // ii
    text = (f"blocking {name(u)} -> {name(v)}: {name(o)} issued before {name(u)} "
            f"(instance {m:+d} in this placement) is done (duration {dur})")
    choices = [[Arc(o, v, dur, m - e.distance, "blocking", text)]]
    if t[o] % ii < t[u] % ii:
        k = s.stages
        choices.append([
            Arc(u, o, 0, k[o] - k[u], "blocking", f"{name(o)} issues after {name(u)} in the window "
                                                   f"(so blocking {name(u)} -> {name(v)} drains its previous instance)"),
            Arc(o, v, dur, m - 1 - e.distance, "blocking", f"blocking {name(u)} -> {name(v)}: {name(o)} issued before "
                                              f"{name(u)} (instance {m - 1:+d}) is done (duration {dur})")])
    return choices


def place(loop: Loop, s: Structure, ii: int, arcs: list[Arc] | None = None) -> Placement:
    """Starts of the structure at ``ii``: the least solution of its difference constraints, then
    list placement on the units (see the module docstring).

    List placement takes the ops holding a unit one at a time, earliest current start first (ties:
    role order in the file, then list position), puts each at the first start where its units are
    free, and pins it there; the others' least starts are recomputed after every pin. When the
    result leaves a cross-role blocking drain unmet, its arc is added and the placement redone.
    """
    arcs = list(structure_arcs(loop, s) if arcs is None else arcs)
    dynamic = dynamic_blocking(loop, s) if s.joint else []
    guessed: list[Arc] = []
    n = len(loop.ops)
    for _ in range(MAX_ROUNDS):
        graph = _Graph(n, arcs + guessed, ii)
        cycle = graph.solve()
        if cycle is not None:
            return _failed(ii, cycle, guessed, [])
        snapshot = list(graph.dist)
        starts, delays, blocked = _bump_place(loop, s, ii, _Graph(n, arcs + guessed, ii, snapshot))
        if starts is None:
            starts, delays, blocked = _list_place(loop, s, ii, graph)
        if starts is None:
            if isinstance(blocked, list):
                return _failed(ii, blocked, guessed, delays)
            return Placement(ii, None, None, guessed, delays, blocked)
        pair = next(((e, o) for e, o in dynamic if _undrained(loop, starts, ii, e, o)), None)
        if pair is None:
            return Placement(ii, tuple(starts), None, guessed, delays)
        trials = _drain_choices(loop, s, starts, ii, *pair)
        for trial in trials:
            if _Graph(n, arcs + guessed + trial, ii).solve() is None:
                guessed += trial
                break
        else:  # every choice of the drained instance contradicts the structure: report the first's cycle
            guessed += trials[0]
    return Placement(ii, None, None, guessed, [],
                     f"cross-role blocking drains did not settle within {MAX_ROUNDS} rounds at II {ii}")


def _failed(ii: int, cycle: list[Arc], guessed: list[Arc], delays: list[Arc]) -> Placement:
    """A positive cycle: a contradiction of the structure, or a failure of what placement chose."""
    chosen = [a for a in cycle if a.kind == "unit" or a in guessed]
    if not chosen:  # only constraints the structure implies
        return Placement(ii, None, cycle, guessed, delays)
    return Placement(ii, None, cycle, guessed, delays,
                     f"after {chosen[0].text}, the structure's constraints cannot be met at II {ii} "
                     f"({'; '.join(a.text for a in cycle)})")


def _bump_place(loop: Loop, s: Structure, ii: int, graph: "_Graph"):
    """First strategy: check the table in order of start; the first op that clashes waits until its
    units are free, everything is re-solved, and the table is checked again from scratch."""
    n = len(loop.ops)
    name = lambda i: loop.ops[i].name  # noqa: E731
    position = {o: (r, j) for r, ops in enumerate(s.role_ops) for j, o in enumerate(ops)}
    delays: list[Arc] = []
    for _ in range(4 * n + 16):
        cycle = graph.solve()
        if cycle is not None:
            return None, delays, cycle
        starts = graph.dist[:n]
        table, clash = _Table(loop, ii), None
        for v in sorted(range(n), key=lambda v: (starts[v], position[v], v)):
            if not loop.ops[v].reservations:
                continue
            if not table.fits(v, starts[v]):
                clash = v
                break
            table.add(v, starts[v])
        if clash is None:
            return starts, delays, None
        v = clash
        t = table.first_fit(v, starts[v], (s.stages[v] + 1) * ii - 1)
        units = "/".join(sorted({r.unit for r in loop.ops[v].reservations}))
        others = ", ".join(name(o) for o in table.holders(v))
        if t is None:
            return None, delays, (f"{name(v)} finds no free {units} in stage {s.stages[v]}'s window at II {ii} "
                                  f"(held by {others})")
        delays.append(Arc(ZERO, v, t, 0, "unit", f"{name(v)} waits for {units} (held by {others}) until cycle {t}"))
        graph.add(delays[-1])
    return None, delays, f"list placement did not settle within {4 * n + 16} waits at II {ii}"


def _list_place(loop: Loop, s: Structure, ii: int, graph: "_Graph"):
    """Second strategy (when the first fails): pin the unit-holding ops one by one. Returns (starts, delays, None), or (None, delays, why)
    where ``why`` is a message or a positive cycle."""
    n = len(loop.ops)
    name = lambda i: loop.ops[i].name  # noqa: E731
    position = {o: (r, j) for r, ops in enumerate(s.role_ops) for j, o in enumerate(ops)}
    table, delays = _Table(loop, ii), []
    todo = {v for v in range(n) if loop.ops[v].reservations}
    while todo:
        v = min(todo, key=lambda v: (graph.dist[v], position[v], v))
        todo.discard(v)
        low = graph.dist[v]
        t = low if table.fits(v, low) else table.first_fit(v, low, (s.stages[v] + 1) * ii - 1)
        units = "/".join(sorted({r.unit for r in loop.ops[v].reservations}))
        if t is None:
            others = ", ".join(name(o) for o in table.holders(v))
            return None, delays, (f"{name(v)} finds no free {units} in stage {s.stages[v]}'s window at II {ii} "
                                  f"(held by {others})")
        if t > low:
            others = ", ".join(name(o) for o in table.holders(v))
            delays.append(Arc(ZERO, v, t, 0, "unit", f"{name(v)} waits for {units} (held by {others}) "
                                                      f"until cycle {t}"))
            graph.add(delays[-1])
        graph.add(Arc(v, ZERO, -t, 0, "unit", f"{name(v)} is placed at cycle {t}"))
        table.add(v, t)
        cycle = graph.solve()
        if cycle is not None:
            return None, delays, cycle
    return graph.dist[:n], delays, None


def schedule_of(s: Structure, placement: Placement) -> Schedule:
    return Schedule(placement.ii, placement.starts, s.role_of if s.joint else None)


@dataclass(frozen=True)
class Range:
    """IIs at which the structure's difference constraints have a solution: [low, high] (high None:
    unbounded), or empty with the cycle(s) that rule every II out."""

    low: int | None
    high: int | None
    cycles: tuple[tuple[Arc, ...], ...] = ()

    @property
    def empty(self) -> bool:
        return self.low is None


def feasible_range(loop: Loop, s: Structure, arcs: list[Arc] | None = None) -> Range:
    """Every cycle weighs ``a + b*II``, so the IIs without a positive cycle form an interval.

    Above ``big`` (the sum of all |const|) a cycle's sign is that of ``b`` (or of ``a`` when b = 0):
    probe there, lower the ceiling on cycles with b > 0, stop on one with b = 0 (positive at every
    II), then binary-search the floor below a feasible probe.
    """
    arcs = structure_arcs(loop, s) if arcs is None else arcs
    n = len(loop.ops)
    probe, high, seen = sum(abs(a.const) for a in arcs) + 1, None, []
    while True:
        if probe < 1:
            return Range(None, None, tuple(seen))
        cycle = longest_from_zero(n, arcs, probe)[1]
        if cycle is None:
            break
        a, b = cycle_weight(cycle)
        if b == 0:  # positive at every II
            return Range(None, None, (tuple(cycle),))
        seen.append(tuple(cycle))
        if b < 0:   # needs a larger II than the ceiling already found
            return Range(None, None, tuple(seen))
        high = (-a) // b  # a + b*II <= 0
        probe = high
    lo, hi = 1, probe  # feasible at ``probe``; below it feasibility is monotone in II
    while lo < hi:
        mid = (lo + hi) // 2
        if longest_from_zero(n, arcs, mid)[1] is None:
            hi = mid
        else:
            lo = mid + 1
    return Range(hi, high, tuple(seen))
