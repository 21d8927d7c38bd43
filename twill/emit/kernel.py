"""Place a pipeline program on a target: the template context and the manifest (docs/emit.md).

Nothing here decides what the kernel does; the program did. This module only lays it out: warps per
role (single-warp roles packed into warpgroups, as rule 5 of the joint model counts them), the
shared-memory offset of every ring slot and mbarrier, the tensor-memory columns of every value, and
per step the facts a template prints: the item, slot and parity of each wait and signal, the local
waits, and what the op body reads and writes. The templates (twill/emit/templates/) print it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from twill.emit.defer import deferrable
from twill.emit.families import FAMILIES, Unsupported
from twill.emit.program import Channel, Program, RoleProgram, Signal, Step
from twill.emit.registers import Registers
from twill.errors import SpecError
from twill.model.joint import BASE_SLACK, MBARRIER_BYTES, SLOT_ALIGN, TMEM_ADDRESS_BYTES, blocks
from twill.model.loader import Instance
from twill.sim.semantics import part_counts, split_name

TARGETS = ("sm90a", "sm100a", "host")
ARCH = {"sm90a": "sm_90a", "sm100a": "sm_100a"}
DEFAULT_TARGET = {"sm90": "sm90a", "sm100": "sm100a"}   # the machine's ``arch`` constant
TMEM_MIN_COLUMNS = 32      # tcgen05.alloc takes a power of two >= 32 columns (PTX ISA, "tcgen05.alloc")
REGISTER_FILE = 65536      # 32-bit registers per SM (CUDA C++ Programming Guide, "Compute Capabilities")
MAX_LAUNCH_REGISTERS = 248  # with __launch_bounds__(T, 1) and setmaxnreg, ptxas pins 65536 / T registers per
                            # thread, at most 255 rounded down to a multiple of 8 (measured: ptxas -v, NVRTC 13.5)


class EmitError(SpecError):
    """A program this target cannot emit (bad input: exit 2)."""


@dataclass
class Buffer:
    name: str
    offset: int
    bytes: int
    kind: str                      # slot | mbarrier | tmem_address
    arrivals: int | None = None

    def manifest(self) -> dict[str, Any]:
        data = {"name": self.name, "offset": self.offset, "bytes": self.bytes, "kind": self.kind}
        if self.arrivals is not None:
            data["arrivals"] = self.arrivals
        return data


@dataclass
class Ring:
    """Where a channel lives: its slots (``data`` offset, bytes per slot) and its two barrier arrays.

    ``slots`` and ``flip`` are read off the program's own rules (``Channel.slot`` and
    ``Channel.parity``), so the emitted arithmetic is the program's: item q uses slot ``q % slots``
    and waits on parity ``((q / depth) & 1) ^ flip[barrier]``."""

    channel: Channel
    full: int
    empty: int
    data: int | None
    slot_bytes: int
    slots: int
    flip: dict[str, int]


def _ring(ch: Channel, full: int, empty: int, data: int | None, slot_bytes: int) -> Ring:
    items = range(4 * ch.depth)
    slots = len({ch.slot(q) for q in items})
    flip = {barrier: ch.parity(barrier, 0) for barrier in ("full", "empty")}
    for q in items:
        if ch.slot(q) != q % slots or any(ch.parity(b, q) != ((q // ch.depth) & 1) ^ f for b, f in flip.items()):
            raise EmitError(f"channel {ch.name!r}: item {q}'s slot or parity follows no ring rule", field="channels")
    return Ring(ch, full, empty, data, slot_bytes, slots, flip)


@dataclass
class Item:
    """A wait or signal for item q = i - distance of a channel's ``barrier`` (C expressions)."""

    ring: Ring
    barrier: str
    distance: int
    how: str = "wait"              # wait | arrive | tx (the TMA's bytes complete it) | complete (async op)

    @property
    def offset(self) -> int:
        return self.ring.full if self.barrier == "full" else self.ring.empty

    @property
    def depth(self) -> int:
        return self.ring.channel.depth

    @property
    def slots(self) -> int:
        return self.ring.slots

    @property
    def tail(self) -> int:
        return self.ring.channel.tail

    @property
    def parity_flip(self) -> int:
        return self.ring.flip[self.barrier]

    @property
    def label(self) -> str:
        return f"{self.ring.channel.name}.{self.barrier}"


@dataclass
class Operand:
    """An input tile of an op body: the ring (channel or value ring) slot of item i - distance."""

    offset: int
    slot_bytes: int
    depth: int
    distance: int


@dataclass
class LocalWait:
    """Wait until op ``name`` of iteration i - ``distance`` (same role, asynchronous) has completed.

    ``after``: the role's asynchronous issues between that instance and this step, as (kernel
    iterations back, stage) pairs; one counts when its own loop iteration k - back - stage is in
    [0, trips). sm90a waits for "at most that many wgmma groups pending" (in-order completion)."""

    name: str
    distance: int
    after: list[tuple[int, int]]
    kind: str = "mma"                     # the awaited op's kind
    barrier: int | None = None            # sm100a, an awaited MMA: its completion barrier (one commit an instance)
    fixed: int = 0                        # the issues of ``after`` that always count where the wait runs
    varying: list[tuple[int, int]] = field(default_factory=list)   # the others, counted at run time
    instance: str = ""                    # sm100a: C expression of the instance of ``barrier`` awaited (kernel.py,
                                          # _await_completion)
    via: tuple[int, str, str] | None = None   # sm100a: (barrier, instance, guard) of another MMA of the role awaited
                                              # instead where the guard holds

    @property
    def count(self) -> str:
        """C expression of the groups issued after the awaited one: an issue of loop iteration t between
        the awaited one, i - distance, and this step's i is in [0, trips) wherever both are (the wait's
        guard and the step's), so it counts as a constant; the rest by their guards."""
        terms = [f"in_range(k - {back + stage}, trips)" for back, stage in self.varying]
        return " + ".join(([str(self.fixed)] if self.fixed or not terms else []) + terms)


@dataclass
class StepContext:
    step: Step
    kind: str
    args: dict[str, Any]
    base: str
    part: int | None
    waits: list[Item]
    local_waits: list[LocalWait]
    signals: list[Item]
    binding: Any = None                  # the family's Load / Mma for this op
    operands: dict[str, Operand] = field(default_factory=dict)
    slot: Operand | None = None          # a result the body itself writes into shared memory (not a TMA's): its ring
    tmem_column: int | None = None       # tcgen05 accumulator column
    done_barrier: int | None = None      # sm100a: the barrier its completion is committed to (a local wait awaits it)
    deferred: bool = False               # sm90a: its completion signals wait for the role's next commit
    form: str = "ss"                     # mma: "rs" where A is a register value (sm90a wgmma), "ts" in tensor memory
    reads: list[dict[str, str]] = field(default_factory=list)   # per unrolled position: input -> its register copy
                                                                # (host: a C pointer to it) or a pointer into its slot
    writes: list[str | None] = field(default_factory=list)      # per unrolled position: the copy it writes
    boxed: set[str] = field(default_factory=set)                # inputs read from a slot as a 16-bit swizzled tile
    a_slots: list[str] = field(default_factory=list)            # sm90a, an MN-major A operand: each part's slot
    slotted: set[str] = field(default_factory=set)              # inputs read from a slot (staged by another role)
    stages: list[list["Stage"]] = field(default_factory=list)   # per unrolled position: copies into slots after the body
    fetches: list[list["Fetch"]] = field(default_factory=list)  # per unrolled position (device): slots read into
                                                                # registers before the body
    scratch_from: list[str | None] = field(default_factory=list)  # per unrolled position: the in-place input copied
                                                                   # into the scratch before the body


@dataclass
class Stage:
    """After the body, the role's copy of a register value (``source``, a C float pointer) goes into a
    channel's slot for item ``q = i - shift``: fp32 row-major, or, for a value an MMA reads from shared
    memory, 16-bit in the 128-byte-swizzled box layout of the operand tiles (``rows`` x ``cols``)."""

    source: str
    ring: Ring
    shift: int
    boxed: bool
    rows: int
    cols: int
    base: str = ""                      # the value's op base name (its family fragment)
    columns: tuple[int, int, int] | None = None   # the family's staged_columns: columns of the source's rows

    @property
    def elements(self) -> int:
        return self.rows * self.cols


@dataclass
class Fetch:
    """Device targets: before the body, a staged value of another role (``base``, item ``q = i - shift``
    of ``ring``) is read from its slot into the local register array ``local``, which the body reads
    like its own copies (the layout in the slot is the family's, ``staged_bytes``)."""

    local: str
    base: str
    ring: Ring
    shift: int


@dataclass
class Exchange:
    """After every role's loop, the final copy of ``name`` goes from ``source_role`` to the role that
    stores it, through shared memory at ``offset`` (the ring area, free once the loops are done)."""

    name: str
    base: str
    part: int | None
    source_role: int
    target_role: int
    offset: int
    elements: int


@dataclass
class Storage:
    """A register value's ring on its role: ``depth`` copies of the result of op ``base`` (part ``part``)."""

    name: str
    depth: int
    base: str
    part: int | None


@dataclass
class Resident:
    """A tile loaded once before the loop (the family's ``resident``): its slot and full barrier."""

    name: str
    load: Any
    offset: int
    barrier: int


@dataclass
class RoleContext:
    role: RoleProgram
    first_warp: int
    steps: list[StepContext]
    accumulators: list[StepContext]       # MMAs accumulating in this role's registers (stored by its epilogue)
    sync_barrier: int = 0                 # named barrier that syncs the role's warps (0 is __syncthreads)
    unroll: int = 1                       # the loop body is printed this many times (register rings)
    storages: list[Storage] = field(default_factory=list)
    loads_resident: bool = False          # issues the resident tiles' loads before its loop
    reads_resident: bool = False          # waits for them before its loop
    scratch: int = 0                      # fp32 elements of the scratch a body writes a staged value into
    exports: list[Exchange] = field(default_factory=list)   # final values this role hands to the storing role
    imports: list[Exchange] = field(default_factory=list)   # final values it receives

    def storage(self, base: str, part: int | None) -> Storage:
        return next(s for s in self.storages if (s.base, s.part) == (base, part))

    def final(self, base: str, part: int | None) -> str:
        """C float pointer to the value of ``base`` (part ``part``) after the last iteration, trips - 1
        (the initial values' copy when trips is 0): the role's own storage, or what another role
        exported to it after the loops."""
        imported = next((x for x in self.imports if (x.base, x.part) == (base, part)), None)
        if imported is not None:
            return f"((const float*)(smem + {imported.offset}))"
        s = self.storage(base, part)
        return f"{s.name}[((trips - 1) % {s.depth} + {s.depth}) % {s.depth}].data()"

    @property
    def deferred(self) -> list[StepContext]:
        return [sc for sc in self.steps if sc.deferred]

    @property
    def warps(self) -> tuple[int, int]:
        return self.first_warp, self.first_warp + self.role.warps


@dataclass
class WarpGroup:
    first_warp: int
    setmaxnreg: int
    roles: list[RoleContext]
    launch_registers: int = 0             # per thread at launch: setmaxnreg below it is a dec, above an inc


@dataclass
class Kernel:
    """Everything the templates and the manifest need."""

    name: str
    target: str
    instance: Instance
    program: Program
    family: Any
    warpgroups: list[WarpGroup]
    buffers: list[Buffer]
    rings: list[Ring]
    dynamic_smem: int
    tmem_columns: int
    tmem_map: list[dict[str, Any]]
    acc_barrier: int | None              # sm100a: the MMA role's commit after its last MMA (epilogue waits)
    tmem_address: int | None
    tmem_outputs: list[StepContext]
    resident: list[Resident]
    exchanges: list[Exchange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # host twin: what the device targets would refuse
    acc_arrivals: int = 1                # the accumulators barrier: one commit per role issuing tensor-memory MMAs
    done_barriers: list[int] = field(default_factory=list)   # sm100a: completion barriers of awaited MMAs

    def tmem_column(self, name: str) -> int:
        """The first tensor-memory column of value ``name`` (the layout's ``tmem_map``)."""
        return next(entry["column"] for entry in self.tmem_map if entry["name"] == name)

    def _value(self, name: str) -> Any:
        return next(value for value in self.program.values if self.program.loop.ops[value.op].name == name)

    def tmem_slot_columns(self, name: str) -> int:
        """Columns of one copy of value ``name`` in tensor memory: copy q % depth is at ``tmem_column(name)
        + (q % depth) * tmem_slot_columns(name)``."""
        return self._value(name).size

    def tmem_copy(self, name: str) -> str:
        """C offset, from value ``name``'s first column, of the copy that loop iteration ``i`` uses (empty
        where there is one copy)."""
        value = self._value(name)
        return f" + (i % {value.depth}) * {value.size}" if value.depth > 1 else ""

    def tmem_at(self, name: str) -> str:
        """C expression of the first column of value ``name``'s copy of loop iteration ``i``."""
        return f"{self.tmem_column(name)}{self.tmem_copy(name)}"

    @property
    def threads(self) -> int:
        return 128 * len(self.warpgroups)

    @property
    def exchange_sync(self) -> tuple[int, int] | None:
        """Device targets: the named barrier (id, threads) between the epilogue exchange's writes and
        reads, over the roles that export or import (ids 1 .. roles are the roles' own)."""
        taking = [rc for rc in self.roles if rc.exports or rc.imports]
        return (len(self.roles) + 1, 32 * sum(rc.role.warps for rc in taking)) if taking else None

    @property
    def roles(self) -> list[RoleContext]:
        return [role for group in self.warpgroups for role in group.roles]

    @property
    def wgmma_shapes(self) -> list[tuple[int, str, str, bool, bool]]:
        """The (n, dtype, form, B MN-major, A MN-major) of every MMA: one wgmma wrapper each (sm90a)."""
        return sorted({(s.args["n"], s.args["dtype"], s.form, s.binding.b_mn_major, s.binding.a_mn_major)
                       for r in self.roles for s in r.steps if s.kind == "mma"})

    @property
    def grid_c(self) -> tuple[str, ...]:
        """The family's grid as C expressions (``ceil(X / Y)`` -> ``(X + Y - 1) / Y``)."""
        return tuple(re.sub(r"ceil\((\w+) / (\d+)\)", lambda m: f"({m[1]} + {int(m[2]) - 1}) / {m[2]}", g)
                     for g in self.family.grid)

    @property
    def params(self) -> dict[str, Any]:
        return self.instance.params

    @property
    def uses_setmaxnreg(self) -> bool:
        """Only where warpgroups differ: one group keeps the launch allocation."""
        return self.target in ("sm90a", "sm100a") and len({g.setmaxnreg for g in self.warpgroups}) > 1


def family_of(instance: Instance) -> Any:
    """The kernel family of the spec (keyed by its ``name``) for the instance's parameters."""
    family_type = FAMILIES.get(instance.loop.name)
    if family_type is None:
        raise EmitError(f"no kernel family {instance.loop.name!r} to emit (known: {', '.join(FAMILIES)})",
                        field="name")
    return family_type(instance.params, part_counts(instance.loop))


def check_params(family: Any) -> None:
    """EmitError naming the parameter its op bodies cannot emit, if any (``twill emit`` checks before it solves)."""
    try:
        family.check()
    except Unsupported as error:
        raise EmitError(str(error), field=f"--set {error.param}") from None


def build_kernel(instance: Instance, program: Program, target: str, name: str) -> Kernel:
    loop = instance.loop
    parts = part_counts(loop)
    family = family_of(instance)
    if target not in family.targets:
        raise EmitError(f"kernel family {loop.name!r} has no op bodies for {target} yet (emitted: "
                        f"{', '.join(family.targets)})", field="--target")
    check_params(family)
    spec_ops = {op.name: op for op in instance.spec.ops}
    ops = {op.name: _spec_op(instance, spec_ops, parts, op.name) for op in loop.ops}
    for op_name, (kind, _, _, _) in ops.items():
        if kind not in family.kinds:
            raise EmitError(f"op {op_name!r}: kind {kind!r} has no op body for target {target}", field="ops")
    _check_shapes(instance, program, target, ops)
    if target == "sm100a":
        operands = {name for kind, _, base, part in ops.values() if kind == "mma"
                    for name in _binding_names(family, base, part)}
        for ch in program.channels:
            if ch.memory == "smem" and loop.ops[ch.producer].registers and \
                    split_name(loop.ops[ch.producer].name)[0] in operands:
                raise EmitError(f"channel {ch.name!r}: register values staged through shared memory as an MMA "
                                "operand are emitted for the host twin and sm90a so far", field="ops")
    return _Layout(instance, program, target, name, family, ops).kernel()


def _spec_op(instance: Instance, spec_ops: dict, parts: dict[str, int],
             name: str) -> tuple[str, dict[str, Any], str, int | None]:
    """(kind, arguments, base name, part) of loop op ``name``: part p of a sub-tiled op ``base.p`` has
    the split argument divided by the number of parts; arguments the spec omits take the kind's default."""
    base, part = (name, None) if name in spec_ops else split_name(name)
    op = spec_ops[base]
    args = {**instance.machine.kinds[op.kind].args, **op.args}
    if part is not None and isinstance(op.subtile, str):
        args[op.subtile] //= parts[base]
    return op.kind, args, base, part


def _check_shapes(instance: Instance, program: Program, target: str, ops: dict) -> None:
    """What the op bodies can issue: 128-byte K rows (one swizzle atom), wgmma's m64nNk16 shapes with
    N in {64, 128, 256}, tcgen05's M = 128 accumulator in tensor memory (or M = 64 in the .ws form, N in
    {64, 128, 256}), and on sm100a local waits only for what its bodies complete: MMAs (their own barriers),
    tensor-memory loads (tcgen05.wait::ld) and a TMA reduce (its body waits until the slot is read)."""
    for name, (kind, args, _, _) in ops.items():
        if kind != "mma":
            continue
        m, n = args["m"], args["n"]
        if target == "sm90a" and (m % 64 or n not in (64, 128, 256)):
            raise EmitError(f"op {name!r}: wgmma needs m a multiple of 64 and n in 64, 128, 256 (got m={m}, "
                            f"n={n})", field="ops")
        if target == "sm100a" and not (m == 128 and n % 32 == 0 and 32 <= n <= 256 or m == 64 and n in (64, 128, 256)):
            raise EmitError(f"op {name!r}: the tcgen05 body issues M = 128 and n a multiple of 32 up to 256, or "
                            f"M = 64 (.ws) and n in 64, 128, 256 (got m={m}, n={n})", field="ops")
    if target == "sm100a":
        for role in program.roles:
            for step in role.steps:
                for wait in step.local_waits:
                    name = program.loop.ops[wait.op].name
                    if ops[name][0] not in ("mma", "tmem_load", "tma_reduce"):
                        raise EmitError(f"op {step.name!r} on role {role.id} waits for its own {name!r}: sm100a "
                                        "waits for its own MMAs, tensor-memory loads and TMA reduces only", field="ops")


class _Layout:
    def __init__(self, instance: Instance, program: Program, target: str, name: str, family: Any, ops: dict):
        self.instance, self.program, self.target, self.name = instance, program, target, name
        self.family, self.ops = family, ops
        self.loop = program.loop
        self.twin_of = machine_target(instance)   # the device target whose release timing the host twin mirrors
        self.buffers: list[Buffer] = []
        self.offset = 0
        self.tmem_next = 0
        self.tmem_map: list[dict[str, Any]] = []

    def _take(self, name: str, size: int, kind: str, align: int, arrivals: int | None = None) -> int:
        self.offset = -(-self.offset // align) * align
        self.buffers.append(Buffer(name, self.offset, size, kind, arrivals))
        self.offset += size
        return self.buffers[-1].offset

    def kernel(self) -> Kernel:
        program, loop = self.program, self.loop
        data: dict[int, tuple[int, int]] = {}      # op -> (offset, bytes per slot) of its smem ring
        rings = []
        # Data first, each ring on whole SLOT_ALIGN blocks, then the resident tiles, then every mbarrier,
        # then the tensor-memory address: no padding between barriers and the next tile.
        for ch in program.value_channels:
            if ch.memory == "smem":
                data[ch.producer] = (self._slots(ch.name, ch.depth, ch.slot_size), ch.slot_size)
        for value in program.values:
            if value.memory == "smem" and value.op not in data:
                data[value.op] = (self._slots(loop.ops[value.op].name, value.depth, value.size), value.size)
        self.ring_end = self.offset
        tiles = {name: self._slots(name, 1, load.bytes) for name, load in self.family.resident.items()}
        for ch in program.channels:
            full = self._array(f"{ch.name}.full", ch.depth, MBARRIER_BYTES, "mbarrier", MBARRIER_BYTES, 1)
            empty = self._array(f"{ch.name}.empty", ch.depth, MBARRIER_BYTES, "mbarrier", MBARRIER_BYTES,
                                ch.empty_arrivals)
            where = data.get(ch.producer) if not ch.token else None
            rings.append(_ring(ch, full, empty, where[0] if where else None, where[1] if where else 0))
        tmem_column = {}
        for value in program.values:
            if value.memory == "tmem":
                tmem_column[value.op] = self.tmem_next
                self.tmem_map.append({"name": loop.ops[value.op].name, "column": self.tmem_next,
                                      "columns": value.size * value.depth})
                self.tmem_next += value.size * value.depth
        resident = [Resident(name, load, tiles[name],
                             self._take(f"{name}.full", MBARRIER_BYTES, "mbarrier", MBARRIER_BYTES, 1))
                    for name, load in self.family.resident.items()]
        done = {}
        if self.twin_of == "sm100a":
            # An MMA its own role waits for commits each instance to a barrier of its own (sm100a
            # only). Every asynchronous MMA has one, on the twin too: the size the model reserves
            # (rule 9: which MMAs are waited for depends on the roles).
            awaited = {w.op for r in program.roles for st in r.steps for w in st.local_waits}
            barriers = {v: self._take(f"{op.name}.done", MBARRIER_BYTES, "mbarrier", MBARRIER_BYTES, 1)
                        for v, op in enumerate(loop.ops) if self.ops[op.name][0] == "mma" and op.issue < op.duration}
            done = {v: offset for v, offset in barriers.items() if v in awaited} if self.target == "sm100a" else {}
        acc_arrivals = len({program.schedule.roles[v] for v in tmem_column})
        acc_barrier = tmem_address = None
        if tmem_column:
            acc_barrier = self._take("accumulators.full", MBARRIER_BYTES, "mbarrier", MBARRIER_BYTES, acc_arrivals)
            tmem_address = self._take("tmem_address", TMEM_ADDRESS_BYTES, "tmem_address", TMEM_ADDRESS_BYTES)
        self.rings = rings
        steps = {s.op: self._step(s, rings, data, tmem_column) for r in program.roles for s in r.steps}
        for sc in steps.values():
            sc.done_barrier = done.get(sc.step.op)
            for wait, awaited in zip(sc.local_waits, sc.step.local_waits):
                wait.kind, wait.barrier = self.ops[wait.name][0], done.get(awaited.op)
        groups = self._warpgroups(steps)
        exchanges = self._exchanges([rc for g in groups for rc in g.roles])
        tmem_outputs = [steps[v] for v in tmem_column if loop.ops[v].accumulator]
        columns = _tmem_allocation(self.tmem_next)
        smem = self.offset + BASE_SLACK
        limit = smem_capacity(self.instance)
        reserved = sum(blocks(tile.load.bytes) for tile in resident)
        warnings = []
        spec = self.instance.spec
        if reserved > spec.resident_smem or len(resident) > spec.resident_tiles:
            raise EmitError(f"the kernel keeps {len(resident)} tiles of {reserved} bytes resident "
                            f"({', '.join(self.family.resident)}) but the spec reserves {spec.resident_tiles} of "
                            f"{spec.resident_smem} (resident_tiles, resident_smem): the schedule's rings may not fit",
                            field="resident_smem")
        if smem > limit:
            message = (f"shared memory {smem} bytes (rings, barriers and {BASE_SLACK} bytes of alignment slack) "
                       f"exceeds the machine's {limit}")
            if self.target != "host":
                raise EmitError(message, field="smem")
            # the twin checks the program (protocol and data), not the machine's capacity: it runs, and
            # says that a device target would refuse this layout
            warnings.append(f"{message}: a device target refuses this kernel")
        if columns > self.instance.loop.warps.tmem:
            raise EmitError(f"tensor memory {columns} columns exceeds the machine's {self.instance.loop.warps.tmem}",
                            field="tmem")
        return Kernel(self.name, self.target, self.instance, program, self.family, groups, self.buffers, rings,
                      smem, columns, self.tmem_map, acc_barrier, tmem_address, tmem_outputs, resident, exchanges,
                      warnings, acc_arrivals, list(done.values()))

    def _exchanges(self, roles: list[RoleContext]) -> list[Exchange]:
        """The values the family's epilogue needs on the role that stores an output (``epilogue``:
        storing op -> the values it reads) but that another role holds: each goes through the ring
        area after every loop is done (the template brackets the copies with CTA-wide barriers)."""
        names = {op.name: v for v, op in enumerate(self.loop.ops)}
        role_of = self.program.schedule.roles
        exchanges: list[Exchange] = []
        offset = 0
        for rc in roles:
            for sc in rc.steps:
                for base in self.family.epilogue.get(sc.base, ()):
                    name = base if sc.part is None else f"{base}.{sc.part}"
                    source = role_of[names[name]]
                    if source == rc.role.id:
                        continue
                    elements = self.family.register_elements(base)
                    exchange = Exchange(name, base, sc.part, source, rc.role.id, offset, elements)
                    offset += max(4 * elements, self.family.staged_bytes(base))   # the twin's or the device's layout
                    exchanges.append(exchange)
                    rc.imports.append(exchange)
                    next(r for r in roles if r.role.id == source).exports.append(exchange)
        if exchanges and offset > self.ring_end:
            raise EmitError(f"the epilogue exchanges {offset} bytes between roles, more than the ring slots "
                            f"({self.ring_end} bytes)", field="smem")
        return exchanges

    def _slots(self, name: str, depth: int, size: int) -> int:
        """A data array: ``depth`` slots ``name[s]`` of ``size`` bytes at stride ``size`` (the templates'
        address arithmetic), starting on a SLOT_ALIGN block and taking whole blocks (what rule 9 charges,
        whatever follows); its offset. A 128-byte-swizzled TMA tile is a whole number of blocks, so each
        of its slots starts on one too."""
        first = self.offset = blocks(self.offset)
        for slot in range(depth):
            self.buffers.append(Buffer(f"{name}[{slot}]", first + slot * size, size, "slot"))
        self.offset = first + blocks(depth * size)
        return first

    def _array(self, name: str, depth: int, size: int, kind: str, align: int, arrivals: int | None = None) -> int:
        """``depth`` consecutive entries ``name[s]`` (ring slots or mbarriers); the first one's offset."""
        return [self._take(f"{name}[{slot}]", size, kind, align, arrivals) for slot in range(depth)][0]

    def _step(self, step: Step, rings: list[Ring], data: dict, tmem_column: dict) -> StepContext:
        loop, program = self.loop, self.program
        kind, args, base, part = self.ops[step.name]
        waits = [Item(rings[w.channel], w.barrier, w.distance) for w in step.waits]
        signals = [Item(rings[s.channel], s.barrier, s.distance, self._how(step, s, rings)) for s in step.signals]
        ctx = StepContext(step, kind, args, base, part, waits,
                          [LocalWait(loop.ops[w.op].name, w.distance, []) for w in step.local_waits], signals)
        if kind == "tma_load":
            ctx.binding = self.family.load(base)
        elif kind == "mma":
            ctx.binding = self.family.mma(base, part)
            for e in loop.edges:
                if e.dst == step.op and e.src != step.op and e.src in data:
                    offset, size = data[e.src]
                    ch = program.value_channel(e.src)
                    crossing = ch is not None and self.program.schedule.roles[e.dst] != ch.producer_role
                    slots = rings[ch.id].slots if crossing else program.values[e.src].depth
                    ctx.operands[split_name(loop.ops[e.src].name)[0]] = Operand(offset, size, slots, e.distance)
            ctx.form = "ts" if ctx.binding.a_tmem else "ss" if ctx.binding.a_rows else "rs"
            ctx.tmem_column = tmem_column.get(step.op)
        elif step.op in data:   # FA backward on Blackwell: stP's dS^T for dQ, storeDQ's fp32 source
            offset, size = data[step.op]
            ch = program.value_channel(step.op)
            ctx.slot = Operand(offset, size, rings[ch.id].slots if ch is not None else program.values[step.op].depth, 0)
        return ctx

    def _how(self, step: Step, signal: Signal, rings: list[Ring]) -> str:
        """How a signal is delivered: a TMA's bytes complete its full barrier (``tx``); an asynchronous
        op's completion arrives (``complete``); anything else arrives once the step is done (``arrive``)."""
        op = self.loop.ops[step.op]
        ch = rings[signal.channel].channel
        if signal.at == "issue" or op.issue >= op.duration:
            return "arrive"
        if signal.barrier == "full" and ch.tx_bytes:
            return "tx"
        return "complete"

    def _warpgroups(self, steps: dict[int, StepContext]) -> list[WarpGroup]:
        """Single-warp roles first, packed four to a warpgroup, then one warpgroup per wide role."""
        roles = self.program.roles
        narrow = [r for r in roles if r.warps == 1]
        wide = [r for r in roles if r.warps > 1]
        groups, warp = [], 0
        for first in range(0, len(narrow), 4):
            members = narrow[first:first + 4]
            groups.append(WarpGroup(warp, max(r.setmaxnreg for r in members),
                                    [self._role(r, warp + j, steps) for j, r in enumerate(members)]))
            warp += 4
        for r in wide:
            if r.warps != 4:
                raise EmitError(f"role {r.id} has {r.warps} warps: roles are one warp or one warpgroup", field="roles")
            groups.append(WarpGroup(warp, r.setmaxnreg, [self._role(r, warp, steps)]))
            warp += 4
        launch = min(MAX_LAUNCH_REGISTERS, REGISTER_FILE // (128 * len(groups)) // 8 * 8)
        for barrier, role in enumerate((rc for g in groups for rc in g.roles), start=1):
            role.sync_barrier = barrier
        for group in groups:
            group.launch_registers = launch
        return groups

    def _role(self, role: RoleProgram, first_warp: int, steps: dict[int, StepContext]) -> RoleContext:
        contexts = [steps[s.op] for s in role.steps]
        registers = Registers(self.program, self.family.in_place)
        unroll = registers.unroll(role)
        staging = _Staging(self, registers, role)
        for sc in contexts:
            staging.place(sc, unroll)
        storages = [Storage(registers.name(v), registers.depth(v), *split_name(self.loop.ops[v].name))
                    for v in registers.storages(role)]
        readers = {name for sc in contexts if sc.kind == "mma" for name in (sc.binding.a, sc.binding.b)}
        if "sm90a" in (self.target, self.twin_of):
            commits = {sc.step.op for sc in contexts if sc.kind == "mma"}
            held = {sc.step.op: [(item.ring.channel.id, item.distance) for item in sc.signals if item.how == "complete"]
                    for sc in contexts}
            slots = {ring.channel.id: ring.slots for ring in self.rings}
            for op in deferrable(self.program, role, commits, held, slots):
                steps[op].deferred = True
        _count_issues_between(contexts, self.loop, self.program.schedule.ii)
        accumulators = [c for c in contexts
                        if c.kind == "mma" and c.tmem_column is None and self.loop.ops[c.step.op].accumulator]
        return RoleContext(role, first_warp, contexts, accumulators, unroll=unroll, storages=storages,
                           loads_resident=any(sc.kind == "tma_load" for sc in contexts) and bool(self.family.resident),
                           reads_resident=bool(readers & set(self.family.resident)), scratch=staging.scratch)


class _Staging:
    """Where a role finds each register value an op reads or writes (docs/emit.md, "Register values
    staged through shared memory").

    A value is in the role's registers when the role holds its storage (registers.py) and computed it.
    Otherwise it is in a channel's slot: its own channel's, when the program stages it (a register value
    read on another role), or, for a value with no storage of its own (an in-place update, FA
    backward's dS over dP) whose channel carries only a signal, the slot of the value it updates. A
    role holding the storage copies the value into that slot after the body, before the full arrival;
    a role without it reads the slot and writes its result back into it (through the role's scratch).
    The slot holds fp32 row-major as the register array, or, for a value an MMA reads as an operand
    (the family's ``Mma.a`` / ``Mma.b``), 16-bit in the 128-byte-swizzled box layout of the operand tiles.
    """

    def __init__(self, layout: "_Layout", registers: Registers, role: RoleProgram):
        self.layout, self.registers, self.role = layout, registers, role
        self.loop, self.program, self.family = layout.loop, layout.program, layout.family
        self.role_of = self.program.schedule.roles
        self.operands = {name for v, op in enumerate(self.loop.ops) if layout.ops[op.name][0] == "mma"
                         for name in _binding_names(layout.family, *layout.ops[op.name][2:])}
        self.scratch = 0

    def base(self, v: int) -> str:
        return split_name(self.loop.ops[v].name)[0]

    def held(self, v: int) -> bool:
        """Whether this role computed v into storage of its own."""
        owner = self.registers.owner(v)
        return owner is not None and self.role_of[v] == self.role.id and self.role_of[owner[0]] == self.role.id

    def slot_of(self, v: int) -> tuple[Ring, int]:
        """The ring whose slot holds v's result on another role, and the shift of its item (v of
        iteration i is the ring's item i - shift)."""
        rings = self.layout.rings
        ch = self.program.value_channel(v)
        if ch is not None and ch.memory == "smem" and ch.slot_size:
            return rings[ch.id], 0
        owner = self.registers.owner(v)
        held = self.program.value_channel(owner[0]) if owner is not None else None
        if held is None or held.memory != "smem" or not held.slot_size:
            raise EmitError(f"op {self.loop.ops[v].name!r}: its result is read on another role but no channel "
                            "carries its data", field="ops")
        return rings[held.id], owner[1]

    def slot(self, v: int, distance: int) -> tuple[str, bool, Ring, int]:
        """(C pointer to v's result of iteration i - distance in its slot, boxed, ring, item shift)."""
        if distance:
            raise EmitError(f"op {self.loop.ops[v].name!r}: a staged register value read {distance} iterations "
                            "later is not emitted yet", field="ops")
        ring, shift = self.slot_of(v)
        boxed = self.base(v) in self.operands
        if boxed and self.layout.target == "sm100a":
            raise EmitError(f"op {self.loop.ops[v].name!r}: a staged MMA operand is emitted for the host twin and "
                            "sm90a only so far", field="ops")
        address = f"smem + {ring.data} + ((i - {shift}) % {ring.slots}) * {ring.slot_bytes}"
        return (f"((const unsigned char*)({address}))" if boxed else f"((float*)({address}))"), boxed, ring, shift

    def stage(self, v: int, source: str, ring: Ring, shift: int) -> "Stage":
        base = self.base(v)
        boxed = base in self.operands
        elements = self.family.register_elements(base)
        rows = self.family.rows(base) if boxed else 1
        needed = self.family.staged_bytes(base) if self.layout.target == "sm90a" else elements * (2 if boxed else 4)
        if needed > ring.slot_bytes:
            raise EmitError(f"op {self.loop.ops[v].name!r}: {needed} bytes do not fit channel "
                            f"{ring.channel.name!r}'s {ring.slot_bytes}-byte slot", field="channels")
        return Stage(source, ring, shift, boxed, rows, elements // rows, base, self.family.staged_columns(base))

    def place(self, sc: StepContext, unroll: int) -> None:
        v, stage, role = sc.step.op, sc.step.stage, self.role
        inputs = [e for e in self.loop.edges if e.dst == v and self.registers.owner(e.src) is not None]
        device = self.layout.target != "host"
        sc.reads, sc.writes, sc.stages, sc.scratch_from, sc.fetches = [], [], [], [], []
        for u in range(unroll):
            reads, fetches = {}, []
            for e in inputs:
                name = self.loop.ops[e.src].name
                if self.held(e.src):
                    where = self.registers.copy(role, u, stage, e.src, e.distance)
                    if self.layout.target == "host":    # the twin's copies are vectors; its bodies take pointers
                        where += ".data()"
                else:
                    where, boxed, ring, shift = self.slot(e.src, e.distance)
                    sc.slotted |= {self.base(e.src), name}
                    if boxed:
                        sc.boxed |= {self.base(e.src), name}
                    elif self.layout.target == "sm90a":   # sm90a reads it in place through a view; sm100a by pointer
                        fetch = Fetch("in_" + name.replace(".", "_"), self.base(e.src), ring, shift)
                        if fetch not in fetches:
                            fetches.append(fetch)
                        where = fetch.local
                key = "'" if e.distance else ""
                reads[self.base(e.src) + key] = where
                reads[name + key] = where
            sc.reads.append(reads)
            sc.fetches.append(fetches)
            owner = self.registers.owner(v)
            stages = []
            if owner is None:
                sc.writes.append(None)
                sc.scratch_from.append(None)
            elif self.held(v):
                copy = self.registers.copy(role, u, stage, v, 0)
                sc.writes.append(copy)
                sc.scratch_from.append(None)
                if self.program.value_channel(v) is not None and self._read_from_slot(v):
                    ring, shift = self.slot_of(v)
                    stages.append(self.stage(v, copy if device else f"{copy}.data()", ring, shift))
            else:   # computed here into another role's storage: into the slot, through the scratch
                if device:
                    raise EmitError(f"op {self.loop.ops[v].name!r} computes into another role's storage: emitted for "
                                    "the host twin only so far", field="ops")
                ring, shift = self.slot_of(v)
                staged = self.stage(v, "scratch.data()", ring, shift)
                if staged.columns:
                    raise EmitError(f"op {self.loop.ops[v].name!r} computes some columns into another role's "
                                    "storage: not emitted yet", field="ops")
                self.scratch = max(self.scratch, staged.elements)
                sc.writes.append("scratch")
                target = self._in_place_input(v)
                sc.scratch_from.append(None if target is None or target in sc.boxed else reads[target])
                stages.append(staged)
            sc.stages.append(stages)
        if sc.kind == "mma" and sc.binding.a_mn_major:   # A from the slots its parts are staged in, part order
            parts = sorted((e.src for e in inputs if self.base(e.src) == sc.binding.a),
                           key=lambda src: split_name(self.loop.ops[src].name)[1] or 0)
            sc.a_slots = [self.slot(src, 0)[0] for src in parts]

    def _read_from_slot(self, v: int) -> bool:
        """Whether an op reads v's data from its slot: an op of another role (an MMA only as its operand),
        or an MMA that reads its A operand, v, from shared memory (``a_mn_major``)."""
        for e in self.loop.edges:
            if e.src != v or e.dst == v:
                continue
            kind, _, base, part = self.layout.ops[self.loop.ops[e.dst].name]
            mma = self.family.mma(base, part) if kind == "mma" else None
            if mma is not None and mma.a_mn_major and mma.a == self.base(v):
                return True
            if self.role_of[e.dst] != self.role.id and (mma is None or self.base(v) in (mma.a, mma.b)):
                return True
        return False

    def _in_place_input(self, v: int) -> str | None:
        """The input whose storage v updates (its ``overwrites`` or the family's ``in_place``), by name."""
        op = self.loop.ops[v]
        if op.overwrites is not None:
            return self.loop.ops[op.overwrites].name
        base, part = split_name(op.name)
        target = self.family.in_place.get(base)
        return None if target is None else (target if part is None else f"{target}.{part}")


def _binding_names(family: Any, base: str, part: int | None) -> tuple[str, str]:
    mma = family.mma(base, part)
    return mma.a, mma.b


def _drains(sc: StepContext) -> bool:
    """Whether an MMA step waits, after its issue, until none of its role's wgmma groups is pending."""
    return sc.kind == "mma" and (any(sc.stages) or
                                 (not sc.deferred and any(s.how == "complete" for s in sc.signals)))


def _implied_by_commit(steps: list[StepContext]) -> None:
    """sm100a: drop the MMA waits the role's other waits imply (order as below). tcgen05.commit makes
    its barrier track every prior tcgen05 operation of the issuing thread (PTX ISA "tcgen05.commit"),
    and the role's leader issues all its MMAs, so the completion of the latest-issued MMA instance a
    step awaits implies that of every instance issued before it, wherever that one runs (a distance no
    smaller); and an instance that a step between its issue and this one awaited is complete already
    (when that step surely ran: a distance no larger)."""
    index = {sc.step.name: j for j, sc in enumerate(steps)}
    for x, sc in enumerate(steps):
        def key(wait: LocalWait) -> tuple[int, int]:
            w = index[wait.name]
            return sc.step.stage + wait.distance - steps[w].step.stage, -w

        def awaited_before(wait: LocalWait) -> bool:
            for y, other in enumerate(steps):
                c = sc.step.stage + wait.distance - other.step.stage
                for seen in other.local_waits:
                    if (seen.name == wait.name and seen.barrier is not None and seen.distance <= wait.distance
                            and key(wait) > (c - seen.distance, -y) > (0, -x)):
                        return True
            return False
        committed = [w for w in sc.local_waits if w.barrier is not None]
        if committed:
            latest = min(committed, key=key)
            sc.local_waits = [w for w in sc.local_waits if w.barrier is None or
                              (w is latest or w.distance < latest.distance) and not awaited_before(w)]


def _count_issues_between(steps: list[StepContext], loop: Any, ii: int) -> None:
    """Fill each local wait's ``after`` (sm100a: the commit it awaits). Step j of kernel iteration k - c
    runs before step j' of k - c' when (c, -j) > (c', -j'); the awaited instance is step w at back =
    stage + distance - its stage, so the issues after it and before this step (0, x) are the MMA
    steps in between. On sm100a the waits other waits imply go first (_implied_by_commit, on the
    instances as awaited, each one surely complete once its implier passed), then a remaining wait
    whose op issued its next instance since awaits a later commit (_await_completion), which also
    covers the instance it stands for, and so every wait dropped on its account."""
    _implied_by_commit(steps)
    index = {sc.step.name: j for j, sc in enumerate(steps)}
    for x, sc in enumerate(steps):
        for wait in sc.local_waits:
            w = index[wait.name]
            back = sc.step.stage + wait.distance - steps[w].step.stage
            if (back, -w) <= (0, -x):
                raise EmitError(f"op {sc.step.name!r} waits for {wait.name!r}, which its role issues later",
                                field="roles")
            wait.after = [(c, steps[j].step.stage) for c in range(back, -1, -1) for j in range(len(steps))
                          if steps[j].kind == "mma" and (c, -j) < (back, -w) and (c, -j) > (0, -x)]
            # step j of kernel iteration k - c runs for loop iteration i + sc.step.stage - c - stage_j: between
            # the awaited one, i - distance, and i, it runs wherever this wait does
            def runs(c: int, j: int) -> bool:
                return -wait.distance <= sc.step.stage - c - steps[j].step.stage <= 0
            # an MMA step that waits for all its role's groups (sm90a: its completion signals delivered at
            # once, or its result staged) and surely runs in between leaves only the later issues pending
            drains = [(c, -j) for c in range(back, -1, -1) for j in range(len(steps))
                      if _drains(steps[j]) and (back, -w) >= (c, -j) > (0, -x) and runs(c, j)]
            last = min(drains, default=(back, -w))
            later = [(c, j) for c in range(back, -1, -1) for j in range(len(steps))
                     if steps[j].kind == "mma" and last > (c, -j) > (0, -x)]
            wait.fixed = sum(runs(c, j) for c, j in later)
            wait.varying = [(c, steps[j].step.stage) for c, j in later if not runs(c, j)]
            if wait.barrier is not None:
                _await_completion(steps, x, w, back, wait, loop, ii)


def _await_completion(steps: list[StepContext], x: int, w: int, back: int, wait: LocalWait, loop: Any,
                      ii: int) -> None:
    """sm100a: which commit step x awaits for step w's instance of kernel iteration k - back. Each MMA
    instance commits to its op's barrier, whose parity (q & 1) names q only while q + 1 is not issued.
    Once it is, any later MMA instance of the role serves: its commit tracks every earlier tcgen05
    operation of the issuing thread (PTX ISA, "tcgen05.commit"), q's included. Preferred: the op's
    own latest instance, else another MMA's latest (a blocking edge's drain), where the schedule has it
    complete by the time step x issues; that one is awaited where it was issued (its guard), the op's
    latest (the loop's last, at the end) elsewhere, which only the first and last iterations see."""
    def latest(j: int) -> int:          # kernel iterations back of step j's last issue before step x
        return 0 if j < x else 1

    def complete(j: int) -> bool:       # ... by the time step x issues, as the schedule has it
        return steps[j].step.offset - latest(j) * ii + loop.ops[steps[j].step.op].duration <= steps[x].step.offset

    def iteration(ahead: int) -> str:   # loop iteration i + ahead, as C
        return f"i {'+' if ahead >= 0 else '-'} {abs(ahead)}"

    lag = back - latest(w)
    wait.instance = f"i - {wait.distance}" if not lag else f"min({iteration(lag - wait.distance)}, trips - 1)"
    if not lag or complete(w):
        return
    later = [j for j, sc in enumerate(steps)
             if sc.done_barrier is not None and (latest(j), -j) < (back, -w) and complete(j)]
    if not later:
        raise EmitError(f"op {steps[x].step.name!r} waits for {wait.name!r} after its role issued the next instance "
                        "of it, and no MMA its role issued since completes before it in the schedule: sm100a's "
                        "completion barrier cannot tell the instances apart", field="roles")
    j = later[0]
    instance = iteration(steps[x].step.stage - latest(j) - steps[j].step.stage)
    wait.via = (steps[j].done_barrier, instance, f"{instance} >= 0 && {instance} < trips")


def smem_capacity(instance: Instance) -> int:
    """The machine's shared memory per block."""
    smem = instance.machine.memories.get("smem")
    return smem.capacity if smem else 0


def _tmem_allocation(columns: int) -> int:
    if not columns:
        return 0
    size = TMEM_MIN_COLUMNS
    while size < columns:
        size *= 2
    return size


def machine_target(instance: Instance) -> str | None:
    """The device target of the machine's ``arch`` constant, if it names one."""
    arch = instance.machine.constants.get("arch")
    return DEFAULT_TARGET.get(arch.value if arch else None)


def default_target(instance: Instance) -> str:
    target = machine_target(instance)
    if target is None:
        raise EmitError(f"machine {instance.machine.name!r} names no known arch: pass --target "
                        f"({', '.join(TARGETS)})", field="--target")
    return target

