"""Quantities of the joint problem derived from a schedule: hand-off costs, lifetimes, ring depths,
role widths and register allocation. Pure functions shared by the verifier, the solvers' decoding
and the report; the rules are stated in docs/joint-model.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction

from twill.model.loop import Dependence, Loop, Op, Warps
from twill.model.schedule import Schedule

BYTES_PER_REGISTER = 4
THREADS_PER_WARP = 32

# The emitted kernel's shared memory (twill/emit/kernel.py lays it out; docs/joint-model.md, rule 9).
SLOT_ALIGN = 1024        # a 128-byte-swizzled TMA box repeats every 8 rows of 128 bytes (PTX ISA, "Tensor copy:
                         # swizzling modes"): every data array (a ring's slots, a resident tile) starts on a
                         # 1024-byte block and takes whole blocks
BASE_SLACK = 1024        # the dynamic shared-memory base is only 16-byte aligned (CUDA C++ Programming Guide,
                         # "Shared Memory"); the kernel rounds it up to SLOT_ALIGN at run time
MBARRIER_BYTES = 8       # an mbarrier object is 64 bits, 8-byte aligned (PTX ISA, "Size and alignment of
                         # mbarrier object")
TMEM_ADDRESS_BYTES = 4   # tcgen05.alloc writes the 32-bit tensor-memory address to shared memory (PTX ISA,
                         # "tcgen05.alloc")
COMPLETION_BARRIER_ARCHS = ("sm100",)  # tcgen05.commit signals an MMA's completion on an mbarrier (PTX ISA,
                                       # "tcgen05.commit"): one per MMA its own role waits for


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def register_bytes(op: Op) -> int:
    """Size of an op's register result over all threads that issue it (also of one written over an
    input's registers: it allocates none, but a reader on another role still needs it moved)."""
    return op.registers * BYTES_PER_REGISTER * THREADS_PER_WARP * op.warps


def transfer_cycles(warps: Warps, nbytes: int) -> int:
    """Cycles to move ``nbytes`` of registers to another role through shared memory, rounded up
    exactly (the per-KiB rate is taken as the decimal number written in the machine file)."""
    if not nbytes:
        return 0
    return math.ceil(warps.transfer_base + Fraction(str(warps.transfer_per_kb)) * nbytes / 1024)


def release_cost(loop: Loop, edge: Dependence) -> int:
    """Cycles a consumer's release (an mbarrier arrive, no data) takes to reach the producer's role."""
    warps = loop.warps
    return warps.mbarrier if edge.barrier == "mbarrier" else warps.named


def handoff_cost(loop: Loop, edge: Dependence) -> int:
    """Extra delay of ``edge`` when its ends are on different roles: barrier, plus the register trip."""
    return release_cost(loop, edge) + transfer_cycles(loop.warps, register_bytes(loop.ops[edge.src]))


def carries_registers(loop: Loop, edge: Dependence) -> bool:
    return loop.ops[edge.src].registers > 0


# Why two ops a and b must be on one role, by the verifier's constraint name.
ONE_ROLE = {"release": "{a} -> {b} releases at issue, which needs one issuing role (in-order issue)",
            "overwrites": "{b} writes over the registers of {a}, which only {a}'s role holds"}


def same_role_pairs(loop: Loop) -> list[tuple[int, int, str]]:
    """(a, b, why) for ops that one role must issue, ``why`` a key of ONE_ROLE: the ends of a
    ``release: issue`` edge (rule 7) and an op with the input whose registers it overwrites (rule 8)."""
    return ([(e.src, e.dst, "release") for e in loop.edges if e.release == "issue"]
            + [(op.overwrites, v, "overwrites") for v, op in enumerate(loop.ops) if op.overwrites is not None])


def held_after_issue(loop: Loop, edge: Dependence) -> int:
    """Cycles the consumer of ``edge`` keeps the value after it issues: until it completes, or none
    for an op reading its own earlier result (an accumulator updated in place, O += PV) and for an
    edge with ``release: issue`` (the next writer runs behind the consumer on the same in-order unit)."""
    return 0 if edge.src == edge.dst or edge.release == "issue" else loop.ops[edge.dst].duration


def released_after_issue(loop: Loop, edge: Dependence, cross) -> int:
    """Cycles from the consumer's issue until the producer's role may reuse the value's storage: the
    hold, plus the release's barrier when ``cross`` (1, or a solver literal: the ends' roles differ)."""
    return held_after_issue(loop, edge) + release_cost(loop, edge) * cross


def lifetime_edges(loop: Loop, op: int) -> list[Dependence]:
    """The out-edges whose consumers keep the op's value live: all but an accumulator's own self edge
    (its next instance writes the same storage in place), and those of every op whose result is
    written over this one's registers (``overwrites``, transitively): P written over S is S's
    storage, so a reader of P keeps S's registers live."""
    acc = loop.ops[op].accumulator
    own = [e for e in loop.edges if e.src == op and not (acc and e.dst == op)]
    over = [w for w, other in enumerate(loop.ops) if other.overwrites == op]
    return own + [dataclasses.replace(e, src=op) for w in over for e in lifetime_edges(loop, w) if e.dst != op]


def lifetime_terms(loop: Loop, ii, start, op: int, cross) -> list:
    """Rule 7: what L(op) covers, from its issue: its own duration (II for an accumulator, whose one
    storage is live all the time) and each consumer's release reaching op's role. ``start`` and
    ``ii`` are numbers or solver expressions, ``cross(a, b)`` is 1 (or a literal) when a and b are on
    different roles; the encodings state L >= every term."""
    own = ii if loop.ops[op].accumulator else loop.ops[op].duration
    return [own] + [start[e.dst] + ii * e.distance - start[op]
                    + released_after_issue(loop, e, 0 if e.dst == op else cross(op, e.dst))
                    for e in lifetime_edges(loop, op)]


def register_lifetime_terms(loop: Loop, ii, start, op: int, cross) -> list[tuple]:
    """Rule 8: what L_reg(op), the op's register lifetime, covers, as pairs (term, apart): the term
    counts unless ``apart`` (0, or ``cross(op, c)``) holds. Its own duration; for each consumer c,
    that duration plus the copy into the staging buffer when c is on another role (the registers are
    free once the value is in shared memory), or c's hold when c is on op's role. An accumulator: II.
    ``start``, ``ii`` and ``cross`` as in lifetime_terms."""
    if loop.ops[op].accumulator:
        return [(ii, 0)]
    own = loop.ops[op].duration
    staging = transfer_cycles(loop.warps, register_bytes(loop.ops[op]))
    terms = [(own, 0)]
    for e in lifetime_edges(loop, op):
        apart = 0 if e.dst == op else cross(op, e.dst)
        terms += [(own + staging * apart, 0),
                  (start[e.dst] + ii * e.distance - start[op] + held_after_issue(loop, e), apart)]
    return terms


def lifetime(loop: Loop, schedule: Schedule, op: int) -> int:
    """Cycles from the op's issue until its own completion and every consumer's release reached its
    role. An accumulator: II, unless another consumer holds item j past the issue of the next
    instance (which rule 7 forbids)."""
    roles = schedule.roles
    return max(lifetime_terms(loop, schedule.ii, schedule.starts, op, lambda a, b: int(roles[a] != roles[b])))


def register_lifetime(loop: Loop, schedule: Schedule, op: int) -> int:
    """Cycles from the op's issue while its value holds registers on its role: L_reg (rule 8)."""
    roles = schedule.roles
    return max(term for term, apart in register_lifetime_terms(
        loop, schedule.ii, schedule.starts, op, lambda a, b: int(roles[a] != roles[b])) if not apart)


def depth(loop: Loop, schedule: Schedule, op: int) -> int:
    """Ring slots the op's result needs: one per iteration whose copy is live at once."""
    fixed = loop.ops[op].depth
    if fixed is not None:
        return fixed
    return max(1, ceil_div(lifetime(loop, schedule, op), schedule.ii))


def register_depth(loop: Loop, schedule: Schedule, op: int) -> int:
    """Copies of the op's register value kept at once (its register ring): the fixed depth, else
    ceil(L_reg / II), the most live_copies reaches."""
    fixed = loop.ops[op].depth
    if fixed is not None:
        return fixed
    return max(1, ceil_div(register_lifetime(loop, schedule, op), schedule.ii))


def live_copies(loop: Loop, schedule: Schedule, op: int, residue: int) -> int:
    """Copies of the op's register value live at ``residue`` of the modulo timeline: its fixed depth
    (the user fixed the ring; one for an accumulator), else floor(L_reg/II), plus one while the last
    copy's remainder runs."""
    fixed = loop.ops[op].depth
    if fixed is not None:
        return fixed
    ii = schedule.ii
    full, rest = divmod(register_lifetime(loop, schedule, op), ii)
    return full + ((residue - schedule.starts[op]) % ii < rest)


def register_peak(loop: Loop, schedule: Schedule, ops: list[int]) -> int:
    """The most registers per thread ``ops`` hold at once, over the modulo timeline: their register
    values' live copies, plus at each op's issue slot the scratch of the ops issued there. The sum
    is a step function of the residue that rises only where some value's copy begins or some op
    with scratch issues, so those slots are the only candidates for the peak."""
    holders = [v for v in ops if loop.ops[v].own_registers]
    ii = schedule.ii

    def held(residue: int) -> int:
        live = sum(loop.ops[v].own_registers * live_copies(loop, schedule, v, residue) for v in holders)
        return live + sum(loop.ops[v].scratch for v in ops if schedule.starts[v] % ii == residue)

    slots = {schedule.starts[u] % ii for u in ops if loop.ops[u].own_registers or loop.ops[u].scratch}
    return max((held(c) for c in slots), default=0)


def max_roles(loop: Loop) -> int:
    """The most roles any assignment satisfying rules 4 and 5 can use. A role holds at least one op,
    the variable-latency ops share one of their own, a warpgroup role holds at least one warpgroup op
    and a single-warp role only single-warp ops; rule 5 allows ``a`` warpgroup roles with at most
    ``warpgroup·(G - a)`` single-warp ones, G = max_warps // warpgroup, and ``a`` is at least one per
    kind (producer, other) with a warpgroup op. So the solvers need no more candidate roles than this
    (roles are anonymous)."""
    w = loop.warps
    groups = w.max_warps // w.warpgroup
    producer = [op.warps > 1 for op in loop.ops if op.variable_latency]
    others = [op.warps > 1 for op in loop.ops if not op.variable_latency]
    units = others + ([any(producer)] if producer else [])  # the producer role counts as one op
    wide, single = sum(units), len(units) - sum(units)
    least = any(producer) + any(others)
    return max((a + min(single, w.warpgroup * (groups - a)) for a in range(least, min(groups, wide) + 1)), default=0)


def crossing_register_values(loop: Loop, roles: tuple[int, ...]) -> list[int]:
    """Ops whose register result is read on another role (it travels through shared memory)."""
    return sorted({e.src for e in loop.edges if carries_registers(loop, e) and roles[e.src] != roles[e.dst]})


def blocks(nbytes: int) -> int:
    """Bytes of the whole SLOT_ALIGN blocks a data array of ``nbytes`` takes."""
    return ceil_div(nbytes, SLOT_ALIGN) * SLOT_ALIGN


def value_memory(op: Op) -> tuple[str, int]:
    """Where the op's result lives and its size per slot (registers per thread, bytes or columns):
    the first of registers, smem and tmem it has, else ("none", 0)."""
    return next(((memory, size) for memory, size in
                 (("registers", op.registers), ("smem", op.smem), ("tmem", op.tmem)) if size), ("none", 0))


def fixed_smem(ops: list[Op] | tuple[Op, ...], resident_tiles: int, completions: int) -> int:
    """Shared memory every schedule's kernel takes besides its rings and their barriers (rule 9): the
    base's alignment slack, a full mbarrier per resident tile, ``completions`` MMA completion
    barriers and, when a value of ``ops`` lives in tensor memory, the accumulators' barrier and the
    tensor-memory address (the resident tiles' own bytes are the spec's ``resident_smem``)."""
    tmem = any(value_memory(op)[0] == "tmem" for op in ops)
    return (BASE_SLACK + MBARRIER_BYTES * (resident_tiles + completions)
            + (MBARRIER_BYTES + TMEM_ADDRESS_BYTES) * tmem)


def has_ring(loop: Loop, op: int) -> bool:
    """Whether the op's ring depth D(v) is charged: it has a result, a fixed depth, or an out-edge to
    another op (its channel's slots, value or not, when that edge crosses roles)."""
    return (loop.ops[op].has_value or loop.ops[op].depth is not None
            or any(e.src == op and e.dst != op for e in loop.edges))


def crossing_edges(loop: Loop, roles: tuple[int, ...], op: int) -> list[Dependence]:
    """The out-edges of ``op`` whose consumer is on another role: they make its channel."""
    return [e for e in loop.edges if e.src == op and roles[e.dst] != roles[op]]


def channel_depth(loop: Loop, schedule: Schedule, op: int) -> int:
    """Slots of the op's channel: its ring depth, or more when a consumer on another role reads an
    item from further back (distance) than the ring keeps."""
    return max([depth(loop, schedule, op)] + [e.distance for e in crossing_edges(loop, schedule.roles, op)])


def token_uses(loop: Loop) -> dict[str, tuple[list[tuple[int, int]], list[int]]]:
    """Per one-instance unit used by two ops or more: the (op, offset) of each op holding it once,
    and the ops holding it more than once (those get no token)."""
    found = {}
    for unit, capacity in sorted(loop.capacity.items()):
        holds = [(v, r.offset) for v, op in enumerate(loop.ops) for r in op.reservations if r.unit == unit]
        if capacity != 1 or len({v for v, _ in holds}) < 2:
            continue
        repeated = sorted({v for v, _ in holds if sum(w == v for w, _ in holds) > 1})
        found[unit] = ([(v, offset) for v, offset in holds if v not in repeated], repeated)
    return found


def order_tokens(loop: Loop, schedule: Schedule) -> tuple[list[tuple[str, int, int, int]], list[str]]:
    """The order tokens of a schedule (docs/pipeline.md, "Order tokens") and the unordered notes.

    For a unit with one instance used by several roles, the uses of ops holding it once, sorted by
    (residue, time, op), pass a token between each cyclically consecutive pair (a, b) on different
    roles when the schedule leaves the token's barrier between them: (unit, a, b, distance), b of
    iteration i + distance using the unit right after a of iteration i. Ops holding the unit more
    than once, and pairs closer than the barrier, are noted, not ordered."""
    s, latency = schedule, loop.warps.named
    names = lambda v: loop.ops[v].name  # noqa: E731
    tokens, unordered = [], []
    for unit, (holds, repeated) in token_uses(loop).items():
        if len({s.roles[v] for v, _ in holds} | {s.roles[v] for v in repeated}) < 2:
            continue
        if repeated:
            unordered.append(f"unit {unit}: {', '.join(map(names, repeated))} hold it more than once (no token)")
        uses = sorted(((s.starts[v] + offset) % s.ii, s.starts[v] + offset, v) for v, offset in holds)
        for (_, at_a, a), (_, at_b, b) in zip(uses, uses[1:] + uses[:1]):
            if s.roles[a] == s.roles[b]:
                continue
            distance = (at_a - at_b) // s.ii + 1
            gap = s.starts[b] + distance * s.ii - s.starts[a]
            if gap >= latency:
                tokens.append((unit, a, b, distance))
            else:
                unordered.append(f"unit {unit}: {names(a)} then {names(b)} issue {gap} cycles apart on "
                                 f"roles {s.roles[a]} and {s.roles[b]}, less than a {latency}-cycle token")
    return tokens, unordered


@dataclass(frozen=True)
class SharedMemory:
    """Rule 9's count of a schedule's rings, in bytes: ``data`` (whole blocks per ring), the channels'
    and the order tokens' mbarriers."""

    data: int
    channel_barriers: int
    token_barriers: int

    @property
    def total(self) -> int:
        return self.data + self.channel_barriers + self.token_barriers


def smem_bytes(loop: Loop, schedule: Schedule) -> SharedMemory:
    """Rule 9, what the schedule's rings take of the loop's shared memory, as the emitter lays them
    out: whole SLOT_ALIGN blocks per ring (an smem value's ring, with its channel's slots when it
    crosses roles, and the staging ring of a register value read on another role), a full and an empty
    mbarrier per slot of every channel (each op with an out-edge to another role) and of every order
    token (max(1, distance) slots)."""
    roles = schedule.roles
    data = channels = 0
    for v, op in enumerate(loop.ops):
        crossing = bool(crossing_edges(loop, roles, v))
        slots = channel_depth(loop, schedule, v) if crossing else depth(loop, schedule, v)
        data += blocks(op.smem * slots) + blocks(register_bytes(op) * slots * crossing)
        channels += 2 * MBARRIER_BYTES * slots * crossing
    tokens = 2 * MBARRIER_BYTES * sum(max(1, d) for _, _, _, d in order_tokens(loop, schedule)[0])
    return SharedMemory(data, channels, tokens)


def tmem_columns(loop: Loop, schedule: Schedule) -> int:
    return sum(op.tmem * depth(loop, schedule, i) for i, op in enumerate(loop.ops))


@dataclass(frozen=True)
class Role:
    id: int
    warps: int
    ops: tuple[int, ...]
    registers: int     # per thread: overhead plus the peak of its live register values
    setmaxnreg: int    # allocated: at least ``registers``, a legal setmaxnreg value


@dataclass(frozen=True)
class Layout:
    roles: tuple[Role, ...]
    warps: int               # warps launched (single-warp roles packed into warpgroups)
    registers: int           # register file used by the allocation
    fits: bool               # allocation within the register file and every setmaxnreg range


def _round_up(warps: Warps, need: int) -> int:
    """The least legal setmaxnreg value (a multiple of step, at least min) holding ``need``."""
    low, _, step = warps.setmaxnreg
    return ceil_div(max(need, low), step) * step


def layout(loop: Loop, schedule: Schedule) -> Layout:
    """Roles with their widths and registers; single-warp roles share warpgroups and one setmaxnreg.

    The minimal allocation decides feasibility; what is left of the register file is then handed
    to the warpgroup roles ``step`` at a time, to all of them at once (as FA3 gives its consumers 240).
    """
    w = loop.warps
    members: dict[int, list[int]] = {}
    for i, r in enumerate(schedule.roles):
        members.setdefault(r, []).append(i)
    need, wide = {}, {}
    for r, ops in members.items():
        wide[r] = any(loop.ops[i].warps > 1 for i in ops)
        need[r] = w.overhead + register_peak(loop, schedule, ops)
    small = [r for r in members if not wide[r]]
    groups = ceil_div(len(small), w.warpgroup)
    setting = {r: _round_up(w, need[r]) for r in members if wide[r]}
    shared = _round_up(w, max((need[r] for r in small), default=0))
    setting.update({r: shared for r in small})
    per_group = w.warpgroup * THREADS_PER_WARP
    used = per_group * (sum(setting[r] for r in members if wide[r]) + groups * shared)
    _, high, step = w.setmaxnreg
    fits = used <= w.register_file and all(s <= high for s in setting.values())
    wide_roles = [r for r in members if wide[r]]
    while fits and wide_roles and all(setting[r] + step <= high for r in wide_roles) \
            and used + per_group * step * len(wide_roles) <= w.register_file:
        for r in wide_roles:  # the same step for every warpgroup role, as FA3's 24/240/240
            setting[r] += step
        used += per_group * step * len(wide_roles)
    roles = tuple(Role(r, w.warpgroup if wide[r] else 1, tuple(ops), need[r], setting[r])
                  for r, ops in sorted(members.items()))
    return Layout(roles, w.warpgroup * (sum(wide.values()) + groups), used, fits)
