"""The Twill paper's own encoding of the joint problem (sections 4-5, Figs. 4-6, Alg. 1), on Z3.

The baseline twill's compact formulation is benchmarked against (benchmarks/encodings.py). For a
fixed II ``I`` and length ``L``, the straight-line program Q overlaps ``N = ceil(L/I)`` copies of one
iteration, copy i shifted by ``i·I``, over ``T = (N-1)·I + L`` cycles. Booleans: ``op[v,i,t]``
(copy i of v issues at t), ``live[v,i,t]`` (its result is live during cycle t), ``opw[v,w]`` (role w
issues v). The query SWP-AND-WS(I, L) is pure feasibility, written as SMT-LIB text (pseudo-Boolean
sums, and linear integers for the register allocation) and solved by Z3 with twill's Z3 tuning.
Alg. 1 (``search_time_indexed``) sweeps I up from MII; at each I, twill's CP-SAT backend finds an
optimal modulo schedule M of the loop without roles (the paper's first ZLP), and SWP-AND-WS runs at
L = LEN(M), LEN(M)+1, ... while ``ceil(L/I)`` is unchanged; the first sat (I, L) is the answer. M
only sets where L starts: the SMT places every op afresh (as the paper's may). Costs are
normalized first (twill.solver.normalize, U = 300): the answer is in normalized units.

The paper's constraints, and how each is stated:

* UNIQUENESS, COMPLETION: one issue cycle per op in ``[0, L - dur(v)]``.
* CONSISTENCY holds by construction: copy i's issue booleans are copy 0's shifted by ``i·I`` (what
  the paper's implications and UNIQUENESS force), so only ``op[v,0,t]`` are variables.
* DEPENDENCE and CROSS-WARP SPILLS: ``op[u,t]`` implies that v issues at or after ``t + d - δ·I``,
  plus the hand-off when the roles differ; one clause per (edge, t) through "issued before t"
  prefix booleans rather than one per (t, t'), which is equivalent and also covers δ >= N (the
  paper's per-copy form has no pair of copies to check there). The hand-off is twill's per-edge
  ``handoff_cost`` (barrier plus register transfer), normalized.
* CAPACITY: per unit and cycle, the reservations of every copy in flight, on the steady-state
  cycles ``[(N-1)·I, N·I)``: there the copies cover every local time once, and at any other cycle
  the copies present are a subset, so the paper's other cycles add nothing.
* MEMORY CAPACITY (smem, tmem) and REGISTER LIMIT at every cycle of Q, from ``live``: a copy's
  result is live from its issue until it and every consumer copy in Q have *completed* (twill's
  rule 7: an async consumer keeps its input; an op reading its own earlier result, an accumulator
  updated in place, holds it only until it issues). The paper keeps the loop-carried results of
  the last copy live at T; here the rule is exact: a consumer copy beyond Q is copy 0 shifted, as
  inside Q, and a result it releases after T is live to T (the paper's rule over-counts a last
  copy released before T and under-counts an earlier copy read beyond Q). Liveness is forced
  backward (the paper's first two rules); the deadness rule is left out, since every use of
  ``live`` is an upper bound. Shared memory also
  holds the staging buffer of a live register value read on another role (twill's rule 9).

Adapted to twill's joint model (docs/joint-model.md):

* Roles are warps or warpgroups; W = min(#ops, max warps) candidates. WARP UNIQUENESS; VARIABLE
  LATENCY (role 0 holds exactly the variable-latency ops); twill's in-order issue (a role issues one
  op at a time, on the steady-state cycles); twill's warp count (single-warp roles packed into
  warpgroups). Roles are anonymous, so the k-th other op takes one of the first k+1 other roles
  (every assignment can be renamed into this form).
* REGISTER LIMIT becomes twill's allocation: a role's need is the overhead plus its live register
  values and the scratch of the ops it issues at its worst cycle; each warpgroup role gets a legal setmaxnreg value at least its need,
  single-warp roles share one, and all fit the register file.
* Blocking edges follow twill's rule 6, not the paper's literal CONCURRENCY (nothing at all in
  flight on the waiting role), so both encodings decide the same blocking semantics (FA3's "issue
  the next QK^T before the softmax" stays legal). For a blocking u -> v and each other op o:
  ``op[u,a]`` and o's slot ``(a-d) mod I`` on v's role imply that v issues at or after
  ``a - d + dur(o)``. The paper's elided blocking rule for spills is not added (twill has none).
* A fixed ring depth bounds the lifetime: every consumer completes within ``depth·I``.

Differences from twill's model, by the paper's design: memories and registers are charged by
instantaneous liveness, not by ring depth times size; at each I the stage count is that of M; and
costs are normalized. Measured on random joint loops with ample memories, SWP-AND-WS is sat at
twill's (II, length) and unsat at II-1, so the encodings agree where their models do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from math import ceil

import z3

from twill.model.joint import THREADS_PER_WARP, held_after_issue, register_bytes, same_role_pairs
from twill.model.loop import Loop
from twill.model.schedule import Schedule
from twill.solver.backend import Query, Settings
from twill.solver.bounds import compute_bounds
from twill.solver.cpsat import CpSatBackend
from twill.solver.normalize import UPPER, Normalized, normalize
from twill.solver.search import Budget
from twill.solver.z3backend import TUNING, Meter

# A literal: the name of a Boolean in the SMT-LIB text, a term, or a Python constant (folded away).
Lit = str | bool


def neg(lit: Lit) -> Lit:
    return (not lit) if isinstance(lit, bool) else f"(not {lit})"


def conj(*lits: Lit) -> Lit:
    if False in lits:
        return False
    rest = [lit for lit in lits if lit is not True]
    return True if not rest else rest[0] if len(rest) == 1 else f"(and {' '.join(rest)})"


def disj(lits: list[Lit]) -> Lit:
    if True in lits:
        return True
    rest = [lit for lit in lits if lit is not False]
    return False if not rest else rest[0] if len(rest) == 1 else f"(or {' '.join(rest)})"


def term(lit: Lit) -> str:
    return ("true" if lit else "false") if isinstance(lit, bool) else lit


class Smt:
    """SMT-LIB text of one query, handed to Z3 in one piece (the Python API is far slower to
    build 10^5 clauses than Z3 is to parse them)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def declare(self, name: str, sort: str = "Bool") -> str:
        self.lines.append(f"(declare-const {name} {sort})")
        return name

    def add(self, formula: Lit) -> None:
        if formula is not True:
            self.lines.append(f"(assert {term(formula)})")

    def clause(self, *lits: Lit) -> None:
        self.add(disj(list(lits)))

    def define(self, name: str, formula: Lit) -> Lit:
        """A Boolean equal to ``formula`` (constants stay constants)."""
        if isinstance(formula, bool):
            return formula
        self.declare(name)
        self.add(f"(= {name} {formula})")
        return name

    def pseudo_boolean(self, kind: str, terms: list[tuple[Lit, int]], bound: int) -> None:
        """``sum(k·lit) <= bound`` (kind "pble") or ``== bound`` ("pbeq"), folding constants."""
        bound -= sum(k for lit, k in terms if lit is True)
        rest = [(lit, k) for lit, k in terms if not isinstance(lit, bool)]
        if bound < 0 or not rest:
            self.add(bound == 0 if kind == "pbeq" else bound >= 0)
        elif kind == "pbeq" or sum(k for _, k in rest) > bound:
            weights = " ".join(str(k) for _, k in rest)
            self.add(f"((_ {kind} {bound} {weights}) {' '.join(lit for lit, _ in rest)})")


@dataclass(frozen=True)
class Answer:
    """One SWP-AND-WS query."""

    status: str                 # "sat" | "unsat" | "unknown"
    schedule: Schedule | None   # normalized units, with roles
    work: float                 # seconds (deterministic seconds in deterministic mode)


class Encoding:
    """SWP-AND-WS(G, I, L) for a normalized loop, as SMT-LIB text."""

    def __init__(self, norm: Normalized, ii: int, length: int):
        self.loop, self.handoff, self.smt = norm.loop, norm.handoff, Smt()
        self.ii, self.length = ii, length
        self.copies = ceil(length / ii)
        self.horizon = (self.copies - 1) * ii + length
        self.steady = range((self.copies - 1) * ii, min(self.copies * ii, self.horizon))
        self.dur = [op.duration for op in self.loop.ops]
        n = len(self.loop.ops)
        self.op = [[self.smt.declare(f"op_{v}_{t}") for t in range(length - self.dur[v] + 1)] for v in range(n)]
        self.prefix = [self._prefix(v) for v in range(n)]
        self.opw = self._roles()
        self._same: dict[tuple[int, int], Lit] = {}
        self._slot: dict[tuple[int, int], Lit] = {}
        self.live: dict[int, list[dict[int, str]]] = {}

    # --- copy-0 issue booleans and what is derived from them ------------------------------------

    def _prefix(self, v: int) -> list[str]:
        """UNIQUENESS, and ``pre_v_t``: issued at some cycle < t, for t in [1, last + 1]."""
        x = self.op[v]
        self.smt.pseudo_boolean("pbeq", [(b, 1) for b in x], 1)
        prefix = [self.smt.define(f"pre_{v}_1", x[0])] if x else []
        for t in range(1, len(x)):
            prefix.append(self.smt.define(f"pre_{v}_{t + 1}", f"(or {prefix[-1]} {x[t]})"))
        return prefix

    def issued(self, v: int, copy: int, t: int) -> Lit:
        t -= copy * self.ii
        return self.op[v][t] if 0 <= t < len(self.op[v]) else False

    def before(self, v: int, copy: int, t: int) -> Lit:
        """Copy ``copy`` of v has issued at some cycle < t."""
        t -= copy * self.ii
        if t <= 0:
            return False
        return self.prefix[v][t - 1] if t <= len(self.prefix[v]) else True

    def within(self, v: int, copy: int, first: int, last: int) -> Lit:
        """Copy ``copy`` of v issues in [first, last]."""
        return conj(self.before(v, copy, last + 1), neg(self.before(v, copy, first)))

    def slot(self, v: int, residue: int) -> Lit:
        """v issues at a cycle congruent to ``residue`` modulo I."""
        key = (v, residue)
        if key not in self._slot:
            hits = [b for t, b in enumerate(self.op[v]) if t % self.ii == residue]
            self._slot[key] = self.smt.define(f"slot_{v}_{residue}", disj(hits))
        return self._slot[key]

    # --- roles ----------------------------------------------------------------------------------

    def _roles(self) -> list[dict[int, Lit]]:
        """WARP UNIQUENESS and VARIABLE LATENCY over the candidate roles (at most one per warp),
        with first-use symmetry breaking: the k-th other op takes one of the first k+1 other roles."""
        ops = self.loop.ops
        self.role_ids = range(min(len(ops), self.loop.warps.max_warps))
        first = 1 if any(op.variable_latency for op in ops) else 0
        opw: list[dict[int, Lit]] = []
        k = 0
        for v, op in enumerate(ops):
            if op.variable_latency:
                opw.append({0: True})
                continue
            candidates = range(first, min(first + k + 1, len(self.role_ids)))
            k += 1
            opw.append({w: self.smt.declare(f"opw_{v}_{w}") for w in candidates})
            self.smt.pseudo_boolean("pbeq", [(b, 1) for b in opw[v].values()], 1)
        return opw

    def on(self, v: int, w: int) -> Lit:
        return self.opw[v].get(w, False)

    def same(self, v: int, o: int) -> Lit:
        """v and o are issued by the same role."""
        key = (min(v, o), max(v, o))
        if key not in self._same:
            together = True if v == o else disj([conj(self.on(v, w), self.on(o, w)) for w in self.opw[v]])
            self._same[key] = self.smt.define(f"same_{key[0]}_{key[1]}", together)
        return self._same[key]

    # --- constraints ----------------------------------------------------------------------------

    def build(self) -> str:
        self.add_dependences()
        self.add_capacity()
        self.add_issue_order()
        self.add_blocking()
        self.add_depths()
        self.live = {v: self._liveness(v) for v, op in enumerate(self.loop.ops) if op.has_value}
        self.add_memories()
        self.add_registers_and_warps()
        return "\n".join(self.smt.lines)

    def add_dependences(self) -> None:
        """DEPENDENCE and CROSS-WARP SPILLS (plus twill's ban on crossing register values and its ops
        that one role must issue: a release at issue, an op writing over its input's registers)."""
        for u, v, _ in same_role_pairs(self.loop):
            self.smt.add(self.same(u, v))
        for n, e in enumerate(self.loop.edges):
            u, v = e.src, e.dst
            differ = neg(self.same(u, v))
            handoff = self.handoff[n] if u != v else 0
            if not self.loop.warps.cross_role and self.loop.ops[u].registers:
                self.smt.add(neg(differ))  # the ban
            for t, x in enumerate(self.op[u]):
                earliest = t + e.delay - self.ii * e.distance
                self.smt.clause(neg(x), neg(self.before(v, 0, earliest)))
                if handoff:
                    self.smt.clause(neg(x), neg(differ), neg(self.before(v, 0, earliest + handoff)))

    def add_capacity(self) -> None:
        """CAPACITY on the steady-state cycles, summing every copy in flight."""
        for unit, capacity in self.loop.capacity.items():
            for t in self.steady:
                terms = [(self.within(v, c, t - r.offset - r.cycles + 1, t - r.offset), r.amount)
                         for v, op in enumerate(self.loop.ops) for r in op.reservations if r.unit == unit
                         for c in range(self.copies)]
                self.smt.pseudo_boolean("pble", terms, capacity)

    def add_issue_order(self) -> None:
        """Twill's in-order issue: on the steady-state cycles a role issues one op at a time."""
        ops = self.loop.ops
        if any(op.issue > self.ii for op in ops):  # it would overlap its own next copy on its role
            self.smt.add(False)
            return
        busy = [v for v, op in enumerate(ops) if op.issue > 0]
        issuing = {v: {t: self.smt.define(f"iss_{v}_{t}", disj(
            [self.within(v, c, t - ops[v].issue + 1, t) for c in range(self.copies)])) for t in self.steady}
            for v in busy}
        for a, v in enumerate(busy):
            for o in busy[a + 1:]:
                together = self.same(v, o)
                for t in self.steady if together is not False else ():
                    self.smt.clause(neg(issuing[v][t]), neg(issuing[o][t]), neg(together))

    def add_blocking(self) -> None:
        """Twill's rule 6: before a blocking consumer issues, older work on its role has completed."""
        ii = self.ii
        for e in (e for e in self.loop.edges if e.blocking):
            u, v = e.src, e.dst
            for o, op in enumerate(self.loop.ops):
                together = self.same(o, v)
                if o == v or together is False:
                    continue
                gaps = [ii] if o == u else range(1, ii + 1)
                for d in (d for d in gaps if op.duration - d > e.delay):  # else the edge implies it
                    for a, x in enumerate(self.op[u]):
                        self.smt.clause(neg(x), neg(self.slot(o, (a - d) % ii)), neg(together),
                                        neg(self.before(v, 0, a - d + op.duration - ii * e.distance)))

    def add_depths(self) -> None:
        """A fixed ring depth bounds the lifetime: consumers complete within depth·I of the issue."""
        for v, op in enumerate(self.loop.ops):
            if op.depth is None:
                continue
            span = op.depth * self.ii
            self.smt.add(op.duration <= span)
            for e in (e for e in self.loop.edges if e.src == v):
                latest = span - self.ii * e.distance - held_after_issue(self.loop, e)
                for t, x in enumerate(self.op[v]):
                    self.smt.clause(neg(x), self.before(e.dst, 0, t + latest + 1))

    def _liveness(self, v: int) -> list[dict[int, str]]:
        """live[v,i,t] for each copy i, forced from the last release backward to the issue. A
        consumer copy beyond Q is copy 0 shifted, like those inside; released after T: live to T."""
        ii, horizon, loop = self.ii, self.horizon, self.loop
        out = [(e.dst, e.distance, held_after_issue(loop, e)) for e in loop.edges if e.src == v]
        lives = []
        for copy in range(self.copies):
            live = {t: self.smt.declare(f"live_{v}_{copy}_{t}") for t in range(copy * ii, horizon)}
            for c, distance, held in out:
                self.smt.clause(neg(self.before(v, copy, horizon)), self.before(c, copy + distance, horizon - held + 1),
                                live[horizon - 1])
            for t in live:
                self.smt.clause(neg(live[t]), self.issued(v, copy, t), live.get(t - 1, False))
                ends = [self.issued(v, copy, t + 1 - self.dur[v])] if self.dur[v] else []
                ends += [conj(self.issued(c, copy + distance, t + 1 - held), self.before(v, copy, t + 1))
                         for c, distance, held in out]
                for end in ends:
                    self.smt.clause(neg(end), live[t])
            lives.append(live)
        return lives

    def live_at(self, v: int, copy: int, t: int) -> Lit:
        return self.live[v][copy].get(t, False)

    def add_memories(self) -> None:
        """MEMORY CAPACITY per cycle of Q: values in smem and tmem, and staged register values."""
        ops, w = self.loop.ops, self.loop.warps
        staged = {v: self.smt.define(f"crosses_{v}", disj([neg(self.same(v, e.dst)) for e in self.loop.edges
                                                            if e.src == v and e.dst != v]))
                  for v in self.live if ops[v].registers}
        for t in range(self.horizon):
            smem, tmem = [], []
            for v in self.live:
                for c in range(self.copies):
                    alive = self.live_at(v, c, t)
                    smem += [(alive, ops[v].smem)] if ops[v].smem else []
                    tmem += [(alive, ops[v].tmem)] if ops[v].tmem else []
                    if v in staged:
                        smem.append((conj(alive, staged[v]), register_bytes(ops[v])))
            self.smt.pseudo_boolean("pble", smem, w.smem)
            self.smt.pseudo_boolean("pble", tmem, w.tmem)

    def add_registers_and_warps(self) -> None:
        """REGISTER LIMIT as twill's allocation, and twill's warp count."""
        ops, w, smt = self.loop.ops, self.loop.warps, self.smt
        holders = [v for v in self.live if ops[v].own_registers]
        scratch = [v for v, op in enumerate(ops) if op.scratch]
        shared = self.setting("shared")
        wide_cost, wide_count, single_count = [], [], []
        for r in self.role_ids:
            members = [v for v in range(len(ops)) if r in self.opw[v]]
            used = term(disj([self.on(v, r) for v in members]))
            wide = term(disj([self.on(v, r) for v in members if ops[v].warps > 1]))
            single = f"(and {used} (not {wide}))"
            need = smt.declare(f"need_{r}", "Int")
            smt.add(f"(>= {need} {w.overhead})")
            smt.add(f"(=> {used} (<= {need} {w.max_registers}))")
            for t in range(self.horizon):
                held = [(conj(self.live_at(v, c, t), self.on(v, r)), ops[v].own_registers)
                        for v in holders if r in self.opw[v] for c in range(self.copies)]
                held += [(conj(self.issued(v, c, t), self.on(v, r)), ops[v].scratch)
                         for v in scratch if r in self.opw[v] for c in range(self.copies)]
                terms = [f"(ite {term(lit)} {k} 0)" for lit, k in held if lit is not False]
                if terms:
                    smt.add(f"(>= {need} (+ {w.overhead} {' '.join(terms)}))")
            setting = self.setting(f"set_{r}")
            smt.add(f"(=> {wide} (>= {setting} {need}))")
            smt.add(f"(=> {single} (>= {shared} {need}))")
            wide_cost.append(f"(ite {wide} {setting} 0)")
            wide_count.append(f"(ite {wide} 1 0)")
            single_count.append(f"(ite {single} 1 0)")
        groups, singles = smt.declare("packed_groups", "Int"), f"(+ 0 {' '.join(single_count)})"
        smt.add(f"(>= (* {w.warpgroup} {groups}) {singles})")
        smt.add(f"(< (* {w.warpgroup} {groups}) (+ {singles} {w.warpgroup}))")
        smt.add(f"(<= (* {w.warpgroup} (+ {groups} {' '.join(wide_count)})) {w.max_warps})")
        packed = [f"(ite (= {groups} {g}) (* {g} {shared}) 0)"
                  for g in range(1, ceil(len(self.role_ids) / w.warpgroup) + 1)]
        per_group = w.warpgroup * THREADS_PER_WARP
        smt.add(f"(<= (* {per_group} (+ 0 {' '.join(wide_cost + packed)})) {w.register_file})")

    def setting(self, name: str) -> str:
        """A legal setmaxnreg value: the minimum or a multiple of the step, within [min, max]."""
        low, high, step = self.loop.warps.setmaxnreg
        value, steps = self.smt.declare(name, "Int"), self.smt.declare(f"{name}_steps", "Int")
        self.smt.add(f"(and (<= {low} {value} {high}) (or (= {value} {low}) (= {value} (* {step} {steps}))))")
        return value

    # --- reading a model ------------------------------------------------------------------------

    def read(self, model: z3.ModelRef) -> Schedule:
        ctx = model.ctx
        true = lambda lit: lit is True or (isinstance(lit, str) and z3.is_true(  # noqa: E731
            model.eval(z3.Bool(lit, ctx), model_completion=True)))
        starts = tuple(next(t for t, b in enumerate(x) if true(b)) for x in self.op)
        roles = [next(w for w, b in opw.items() if true(b)) for opw in self.opw]
        ids: dict[int, int] = {}
        return Schedule(self.ii, starts, tuple(ids.setdefault(r, len(ids)) for r in roles))


def swp_and_ws(norm: Normalized, ii: int, length: int, seconds: float | None, settings: Settings) -> Answer:
    """Is there a schedule and role assignment at (I, L)? Z3, limited by wall seconds or rlimit."""
    solver = z3.Solver(ctx=z3.Context())
    solver.set("random_seed", settings.seed)
    for key, setting in TUNING.items():
        solver.set(key, setting)
    meter = Meter(solver, seconds, settings.deterministic)
    encoding = Encoding(norm, ii, length)
    solver.from_string(encoding.build())
    result = meter.check()
    if result == z3.sat:
        return Answer("sat", encoding.read(solver.model()), meter.used())
    return Answer("unsat" if result == z3.unsat else "unknown", None, meter.used())


@dataclass(frozen=True)
class Step:
    ii: int
    length: int | None   # None: the modulo-scheduling step at this II
    result: str          # modulo step: a backend status; SWP-AND-WS: "sat" | "unsat" | "unknown"
    seconds: float


@dataclass
class TimeIndexedResult:
    """Alg. 1's answer; II and schedule in normalized units, ``real_ii`` converted back."""

    normalized: Normalized
    status: str = "unknown"    # "found" | "infeasible" (unsat up to the II cap) | "unknown" (budget)
    schedule: Schedule | None = None
    length: int | None = None
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0       # wall seconds in all, normalization included

    @property
    def ii(self) -> int | None:
        return None if self.schedule is None else self.schedule.ii

    @property
    def real_ii(self) -> int | None:
        """The II in real cycles: normalized units times the normalization's cycles per unit."""
        return None if self.ii is None else self.normalized.to_real(self.ii)

    def phase_seconds(self, ws: bool) -> float:
        """Seconds in the modulo-scheduling steps (``ws`` False) or in SWP-AND-WS (True)."""
        return sum(s.seconds for s in self.steps if (s.length is not None) == ws)


def interaction_cap(norm: Normalized) -> int:
    """An II beyond which iterations cannot interact (twill.solver.bounds.every_ii_cap, with the
    normalized hand-offs): Alg. 1 unsat there, for every length of one iteration, is unsat for all."""
    ops, edges = norm.loop.ops, norm.loop.edges
    window = [op.duration for op in ops]
    for e, handoff in zip(edges, norm.handoff):
        window[e.src] = max(window[e.src], e.delay + handoff)
    delays = [e.delay + h for e, h in zip(edges, norm.handoff)]
    return sum(window) + max(op.duration for op in ops) + max(delays, default=0) + 1


def search_time_indexed(loop: Loop, seconds: float | None = None, settings: Settings = Settings(),
                        upper: int = UPPER) -> TimeIndexedResult:
    """Alg. 1 on the normalized joint loop: I from MII; at each I an optimal modulo schedule M
    (twill's CP-SAT backend on the loop without roles), then SWP-AND-WS at L = LEN(M), LEN(M)+1, ...
    while ceil(L/I) is unchanged. The first sat (I, L) is the answer."""
    began = time.perf_counter()
    budget = Budget(seconds, settings.deterministic)
    norm = normalize(loop, upper, seed=settings.seed)
    budget.charge(norm)
    result = TimeIndexedResult(norm)
    pure = replace(norm.loop, warps=None)
    phase1 = CpSatBackend(settings)
    ii, cap = compute_bounds(pure).mii, interaction_cap(norm)
    while result.status == "unknown" and not budget.exhausted:
        if ii > cap:
            result.status = "infeasible"
            break
        modulo = phase1.solve(pure, Query(ii, "length"), budget.remaining())
        budget.charge(modulo)
        result.steps.append(Step(ii, None, modulo.status, modulo.work))
        if modulo.status == "unknown":
            break
        if modulo.status != "infeasible" and _lengths(result, norm, ii, modulo.value, budget, settings) == "unknown":
            break
        ii += 1
    result.seconds = time.perf_counter() - began
    return result


def _lengths(result: TimeIndexedResult, norm: Normalized, ii: int, shortest: int, budget: Budget,
             settings: Settings) -> str:
    """SWP-AND-WS at L = LEN(M), LEN(M)+1, ... while ceil(L/I) is unchanged; records the first sat.
    Returns the last answer's status ("unknown" also when the budget ran out first)."""
    length, status = shortest, "unsat"
    while status == "unsat" and ceil(length / ii) == ceil(shortest / ii):
        if budget.exhausted:
            return "unknown"
        answer = swp_and_ws(norm, ii, length, budget.remaining(), settings)
        budget.charge(answer)
        result.steps.append(Step(ii, length, answer.status, answer.work))
        status = answer.status
        if status == "sat":
            result.status, result.schedule, result.length = "found", answer.schedule, length
        length += 1
    return status
