"""Load spec, machine and schedule files into validated models, with file/line/field errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from twill.errors import SpecError
from twill.model.graph import longest_paths
from twill.model.joint import COMPLETION_BARRIER_ARCHS, fixed_smem
from twill.model.loop import Dependence, Loop, Op, Reservation, Warps
from twill.model.kinds import resolve_kind
from twill.model.spec import EdgeSpec, LoopSpec, MachineSpec, OpSpec
from twill.model.template import instantiate
from twill.model.validation import validate
from twill.model.yamlsource import Nested, SourceMap, load_yaml

PACKAGE_SPECS = Path(__file__).resolve().parents[1] / "specs"      # installed wheel
REPOSITORY_SPECS = Path(__file__).resolve().parents[2] / "specs"   # source checkout


def machines_dir() -> Path:
    return PACKAGE_SPECS / "machines" if (PACKAGE_SPECS / "machines").is_dir() else REPOSITORY_SPECS / "machines"


def load_machine(name_or_path: str, *, referenced_from: SourceMap | None = None,
                 field: tuple = ()) -> MachineSpec:
    """A machine by shipped name (``h100``) or by path to a machine YAML file; a relative path in a
    spec is looked up next to the spec first, then in the current directory."""
    path = Path(name_or_path)
    if referenced_from is not None and path.suffix and not path.is_absolute():
        beside = Path(referenced_from.file).parent / path
        path = beside if beside.is_file() else path
    if not path.suffix:
        path = machines_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in machines_dir().glob("*.yaml")))
            message = f"unknown machine {name_or_path!r} (shipped: {known})"
            if referenced_from is not None:
                raise referenced_from.error(field, message)
            raise SpecError(message, field="--machine")
    data, source = load_yaml(path)
    return validate(MachineSpec, data, source)


@dataclasses.dataclass(frozen=True)
class Instance:
    """A kernel spec instantiated for one machine: the loop, and what the emitter needs besides it."""

    loop: Loop
    spec: LoopSpec          # parameters resolved, overrides applied
    machine: MachineSpec
    params: dict[str, Any]  # every declared parameter's value (defaults included)


def load_spec(path: str | Path, machine: str | None = None, params: Mapping[str, Any] | None = None,
              **overrides: Any) -> Loop:
    """Read a loop spec; ``machine`` (a name or path) overrides the spec's own ``machine:``, ``params``
    set its parameters, and ``overrides`` (subtile, cross_role, max_warps; None: keep) its fields."""
    return load_instance(path, machine, params, **overrides).loop


def load_instance(path: str | Path, machine: str | None = None, params: Mapping[str, Any] | None = None,
                  **overrides: Any) -> Instance:
    """As ``load_spec``, keeping the instantiated spec, the machine and the parameter values."""
    data, source = load_yaml(path)
    machine_spec = _machine(data, source, machine)
    if machine_spec is None:
        validate(LoopSpec, data, source)  # report a malformed spec before the missing machine
        raise source.error(("name",), "no machine: add `machine:` to the spec or pass --machine")
    data, values = instantiate(data, source, machine_spec, params or {})
    spec = validate(LoopSpec, data, source)
    spec = spec.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    return Instance(build_loop(spec, machine_spec, source), spec, machine_spec, values)


def _machine(data: Any, source: SourceMap, machine: str | None) -> MachineSpec | None:
    """The machine named on the command line, else the spec's ``machine:`` (a name, path or mapping)."""
    if machine is not None:
        return load_machine(machine)
    written = data.get("machine") if isinstance(data, dict) else None
    if isinstance(written, str):
        return load_machine(written, referenced_from=source, field=("machine",))
    if isinstance(written, dict):
        return validate(MachineSpec, written, Nested(source, ("machine",)))
    if written is not None:
        raise source.error(("machine",), "expected a machine name, a path or a mapping")
    return None


def build_loop(spec: LoopSpec, machine: MachineSpec, source: SourceMap) -> Loop:
    """Resolve names, kinds and defaults, sub-tile, and reject what no schedule can satisfy."""
    index: dict[str, int] = {}
    ops, parts = [], []
    warps = _warps(spec, machine, source)
    for i, op in enumerate(spec.ops):
        if op.name in index:
            raise source.error(("ops", i, "name"), f"duplicate op name {op.name!r}")
        index[op.name] = i
        split = isinstance(op.subtile, str) and spec.subtile > 1  # the parts are checked, not the whole
        ops.append(_op(op, ("ops", i), machine, None if split else warps, source))
        parts.append(_op(op, ("ops", i), machine, warps, source, (op.subtile, spec.subtile)) if split else None)

    edges = []
    for j, edge in enumerate(spec.edges):
        for end in ("src", "dst"):
            if getattr(edge, end) not in index:
                raise source.error(("edges", j, end), f"unknown op {getattr(edge, end)!r}")
        src, dst = index[edge.src], index[edge.dst]
        delay = ops[src].latency if edge.delay is None else edge.delay
        if edge.release == "issue" and not ops[src].shares_unit(ops[dst]):
            raise source.error(("edges", j, "release"), "`release: issue` needs src and dst on the same unit: "
                                                        "the next writer must queue behind the reader")
        edges.append(Dependence(src, dst, delay, edge.distance, edge.blocking, edge.barrier, edge.release))
    for i, op in enumerate(ops):
        if op.accumulator:
            _check_accumulator(op, i, edges, source)
    edge_fields = [("edges", j) for j in range(len(edges))]
    ops = _overwrites(spec, index, ops, warps is not None, source)
    if spec.subtile > 1:
        ops, edges, edge_fields = subtile(ops, edges, [op.subtile is not False for op in spec.ops], spec.subtile,
                                          parts, spec.edges)
    ops = [op if op.overwrites is None or op.registers else
           dataclasses.replace(op, registers=_value_registers(ops, op.overwrites)) for op in ops]

    # A cycle of same-iteration dependences with positive total delay can never be scheduled.
    same_iteration = [(j, e) for j, e in enumerate(edges) if e.distance == 0]
    _, cycle = longest_paths(len(ops), [(e.src, e.dst, e.delay) for _, e in same_iteration])
    if cycle is not None:
        names = " -> ".join([ops[same_iteration[k][1].src].name for k in cycle] + [ops[same_iteration[cycle[0]][1].src].name])
        raise source.error(edge_fields[same_iteration[cycle[0]][0]],
                           f"dependence cycle {names} has distance 0 and positive delay: "
                           "infeasible for every II")
    capacity = {unit: machine.capacity(unit) for unit in machine.units}
    if warps is not None:
        warps = _fixed_smem(spec, machine, warps, ops, source)
    return Loop(spec.name, capacity, tuple(ops), tuple(edges), warps)


def _fixed_smem(spec: LoopSpec, machine: MachineSpec, warps: Warps, ops: list[Op], source: SourceMap) -> Warps:
    """The rings' share of shared memory: what the resident tiles leave, less what every kernel of
    this loop takes besides its rings (rule 9, ``fixed_smem``): alignment slack, the resident tiles'
    barriers, the accumulators' barrier and tensor-memory address, and on an arch whose MMAs signal
    completion on an mbarrier, one per asynchronous MMA (each may be waited for by its own role)."""
    if not warps.smem + spec.resident_smem:
        return warps   # a machine without shared memory: no kernel to lay out (the paper's toy)
    arch = machine.constants.get("arch")
    kinds = {name: op.kind for op in spec.ops for name in [op.name] + [f"{op.name}.{j}" for j in range(spec.subtile)]}
    completions = sum(kinds[op.name] == "mma" and op.issue < op.duration
                      for op in ops) if arch is not None and arch.value in COMPLETION_BARRIER_ARCHS else 0
    fixed = fixed_smem(ops, spec.resident_tiles, completions)
    if warps.smem < fixed:
        raise source.error(("resident_smem",), f"{spec.resident_smem} bytes and {fixed} bytes of alignment slack and "
                                               f"barriers leave the loop no shared memory "
                                               f"({warps.smem + spec.resident_smem} bytes in all)")
    return dataclasses.replace(warps, smem=warps.smem - fixed)


def _overwrites(spec: LoopSpec, index: dict[str, int], ops: list[Op], joint: bool, source: SourceMap) -> list[Op]:
    """``ops`` with ``overwrites`` resolved to op indices, each checked: an input of the op (an edge from
    it), holding registers (joint problems), and split into parts exactly when the op is (part j
    overwrites part j)."""
    resolved = list(ops)
    for i, op in enumerate(spec.ops):
        if op.overwrites is None:
            continue
        at, name = ("ops", i, "overwrites"), op.overwrites
        if name not in index:
            raise source.error(at, f"unknown op {name!r}")
        j = index[name]
        if j == i or not any(e.src == name and e.dst == op.name for e in spec.edges):
            raise source.error(at, f"{name!r} is not an input of {op.name!r} (no edge {name} -> {op.name})")
        if spec.subtile > 1 and (op.subtile is False) != (spec.ops[j].subtile is False):
            split, whole = (op.name, name) if op.subtile is not False else (name, op.name)
            raise source.error(at, f"{split!r} is split into {spec.subtile} parts and {whole!r} is not: "
                                   "a part overwrites the same part of its input")
        resolved[i] = dataclasses.replace(ops[i], overwrites=j)
    for i, op in enumerate(resolved):
        if joint and op.overwrites is not None and not _value_registers(resolved, op.overwrites):
            raise source.error(("ops", i, "overwrites"), f"{spec.ops[i].overwrites!r} holds no registers to write over")
    return resolved


def _value_registers(ops: list[Op], v: int) -> int:
    """The registers op ``v``'s result holds: its own, or those of the input it overwrites."""
    seen = set()
    while not ops[v].registers and ops[v].overwrites is not None and v not in seen:
        seen.add(v)
        v = ops[v].overwrites
    return ops[v].registers


def _op(op: OpSpec, at: tuple, machine: MachineSpec, warps: Warps | None, source: SourceMap,
        split: tuple[str, int] | None = None) -> Op:
    """One op with its kind's costs (``split``: one part of a sub-tiled op) and its reservations checked."""
    if op.kind is not None:
        op = resolve_kind(op, machine, at, source, split)
    if op.latency is None:
        raise source.error(at + ("latency",), "required field is missing (or give a `kind` of the machine)")
    table = []
    for j, res in enumerate(op.reservation_table()):
        field = at + ("unit",) if op.reservations is None else at + ("reservations", j, "unit")
        if res.unit not in machine.units:
            raise source.error(field, f"unknown unit {res.unit!r} (machine has: {', '.join(machine.units)})")
        capacity = machine.capacity(res.unit)
        if capacity == 0:
            raise source.error(field, f"unit {res.unit!r} has capacity 0 on this machine")
        if res.amount > capacity:
            raise source.error(field, f"needs {res.amount} instances of unit {res.unit!r}, "
                                      f"the machine has {capacity}")
        table.append(Reservation(res.unit, res.offset, res.cycles, res.amount))
    if warps is not None:
        _check_joint_op(op, at, warps, source)
    if op.accumulator and op.depth not in (None, 1):
        raise source.error(at + ("depth",), f"an accumulator has one storage, so depth 1, got {op.depth}")
    result = Op(op.name, op.latency, tuple(table), op.issue, op.warps, op.variable_latency,
                op.registers, op.smem, op.tmem, 1 if op.accumulator else op.depth, op.work, op.accumulator,
                scratch=op.scratch)
    if op.issue is not None and op.issue > result.duration:
        raise source.error(at + ("issue",), f"issue {op.issue} cycles is longer than the op "
                                            f"itself ({result.duration} cycles)")
    return result


def _check_accumulator(op: Op, i: int, edges: list[Dependence], source: SourceMap) -> None:
    """An accumulator updates its own value in place: it needs one, and a self edge of distance 1."""
    if not op.has_value:
        raise source.error(("ops", i, "accumulator"), f"op {op.name!r} has no value (registers, smem or tmem) "
                                                      "to accumulate into")
    if not any(e.src == e.dst == i and e.distance == 1 for e in edges):
        raise source.error(("ops", i, "accumulator"), f"an accumulator reads its own previous result: add the "
                                                      f"edge {{src: {op.name}, dst: {op.name}, distance: 1}}")


def _warps(spec: LoopSpec, machine: MachineSpec, source: SourceMap) -> Warps | None:
    """The joint problem's resources, or None when the machine describes no warps."""
    w = machine.warps
    if w is None:
        return None
    if spec.max_warps is not None and spec.max_warps > w.max:
        message = f"{spec.max_warps} warps, the machine allows {w.max}"
        if "max_warps" not in source.root_keys():
            raise SpecError(message, field="--max-warps")
        raise source.error(("max_warps",), message)
    if (spec.max_warps or w.max) < w.warpgroup:
        message = f"{spec.max_warps or w.max} warps is less than one warpgroup ({w.warpgroup}); whole warpgroups launch"
        if spec.max_warps is None:
            raise source.error(("machine",), message)
        if "max_warps" not in source.root_keys():
            raise SpecError(message, field="--max-warps")
        raise source.error(("max_warps",), message)
    regs, handoff = machine.registers, machine.handoff
    memory = {name: m.capacity for name, m in machine.memories.items()}
    smem = memory.get("smem", 0) - spec.resident_smem  # the loop's rings get what the resident tiles leave
    if smem < 0:
        raise source.error(("resident_smem",), f"{spec.resident_smem} bytes, more than the machine's "
                                               f"{memory.get('smem', 0)} bytes of shared memory")
    return Warps(spec.max_warps or w.max, w.warpgroup, regs.file, regs.per_thread, tuple(regs.setmaxnreg),
                 regs.overhead, smem, memory.get("tmem", 0), handoff.mbarrier, handoff.named,
                 handoff.transfer_base, handoff.transfer_per_kb, spec.cross_role)


def _check_joint_op(op: OpSpec, at: tuple, warps: Warps, source: SourceMap) -> None:
    """Reject an op that fits no role or no memory on its own."""
    if op.warps not in (1, warps.warpgroup):
        raise source.error(at + ("warps",), f"an op is issued by 1 warp or a warpgroup of {warps.warpgroup}, "
                                            f"got {op.warps}")
    if op.warps > warps.max_warps:
        raise source.error(at + ("warps",), f"needs {op.warps} warps, at most {warps.max_warps} exist")
    if op.overwrites is None and warps.overhead + op.registers > warps.max_registers:
        raise source.error(at + ("registers",), f"{op.registers} registers plus the per-role overhead "
                                                f"{warps.overhead} exceed {warps.max_registers} per thread")
    if warps.overhead + op.scratch > warps.max_registers:
        raise source.error(at + ("scratch",), f"{op.scratch} scratch registers plus the per-role overhead "
                                              f"{warps.overhead} exceed {warps.max_registers} per thread")
    for memory in ("smem", "tmem"):
        need, capacity = getattr(op, memory), getattr(warps, memory)
        if need > capacity:
            raise source.error(at + (memory,), f"needs {need} of {memory}, the machine has {capacity}")


def subtile(ops: list[Op], edges: list[Dependence], marked: list[bool], n: int,
            parts: list[Op | None], written: list[EdgeSpec]):
    """Split every marked op into ``n`` sub-ops: copies of its ``parts`` entry when given (costed by its
    kind), else with costs and footprints divided by ``n`` (rounded up).

    Edges between two split ops join sub-op j to sub-op j (every pair with ``parts: all``);
    an edge between a split op and an unsplit one joins every sub-op (the unsplit op is a common
    input or a common consumer).
    Returns the new ops, edges and, per new edge, the spec field of the edge it came from.
    """
    def part(x: int | None) -> int | None:
        return None if x is None else -(-x // n)

    new_ops, copies = [], []
    for op, split in zip(ops, marked):
        if not split:
            copies.append([len(new_ops)])
            new_ops.append(op)
            continue
        given = parts[len(copies)]
        if given is None:
            table = tuple(Reservation(r.unit, part(r.offset), part(r.cycles), r.amount) for r in op.reservations)
            given = Op(op.name, part(op.latency), table, part(op.issue_cycles), op.warps, op.variable_latency,
                       part(op.registers), part(op.smem), part(op.tmem), op.depth, part(op.work), op.accumulator)
        copies.append(list(range(len(new_ops), len(new_ops) + n)))
        new_ops += [dataclasses.replace(given, name=f"{op.name}.{j}") for j in range(n)]
    for op, own in zip(ops, copies):  # part j overwrites part j of its input (or the whole: the whole)
        if op.overwrites is not None:
            for j, v in enumerate(own):
                new_ops[v] = dataclasses.replace(new_ops[v], overwrites=copies[op.overwrites][j])
    new_edges, fields = [], []
    for j, e in enumerate(edges):
        delay = e.delay
        if marked[e.src]:  # the written delay divided, or the latency of a part
            delay = new_ops[copies[e.src][0]].latency if written[j].delay is None else part(e.delay)
        if marked[e.src] and marked[e.dst] and written[j].parts == "same":
            pairs = zip(copies[e.src], copies[e.dst])
        else:
            pairs = [(a, b) for a in copies[e.src] for b in copies[e.dst]]
        for a, b in pairs:
            new_edges.append(dataclasses.replace(e, src=a, dst=b, delay=delay))
            fields.append(("edges", j))
    return new_ops, new_edges, fields
