"""Pydantic models of the YAML files, shaped exactly like the files (see docs/spec-format.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

NonNegInt = Annotated[int, Field(ge=0, strict=True)]
PosInt = Annotated[int, Field(ge=1, strict=True)]
Name = Annotated[str, Field(min_length=1)]
Scalar = Union[bool, int, float, str]
Expr = Union[int, str]                  # a number, or an expression string (twill/model/expr.py)


def by_shape(value: Any) -> str:
    """Pick a union member by the YAML shape, so errors come from the member the user meant."""
    return "mapping" if isinstance(value, dict) else "scalar"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReservationSpec(Strict):
    """``amount`` instances of ``unit`` held for ``cycles`` cycles, starting ``offset`` cycles after issue."""

    unit: Name
    offset: NonNegInt = 0
    cycles: PosInt = 1
    amount: PosInt = 1


class OpSpec(Strict):
    name: Name
    latency: NonNegInt | None = None    # required unless `kind` gives it
    kind: Name | None = None            # a cost kind of the machine (`kinds:`), evaluated with `args`
    args: dict[Name, Scalar] = {}
    unit: Name | None = None
    occupancy: PosInt | None = None
    reservations: list[ReservationSpec] | None = None
    # joint problem (docs/joint-model.md)
    issue: NonNegInt | None = None      # cycles its role is busy issuing it; default: its duration
    warps: PosInt = 1                   # warps that issue it together: 1 or a warpgroup
    variable_latency: bool = False
    registers: NonNegInt = 0            # per thread, while its result is live
    overwrites: Name | None = None      # an input whose registers its result is written over (in place)
    scratch: NonNegInt = 0              # per thread, while it issues (e.g. a vector it reads): rule 8
    smem: NonNegInt = 0                 # bytes, while its result is live
    tmem: NonNegInt = 0                 # columns, while its result is live
    depth: PosInt | None = None         # fix the ring slots of its result
    accumulator: bool = False           # writes its result in place over the previous one (C += AB)
    subtile: bool | Name = False        # split into the loop's `subtile` sub-ops; a name: the
                                        # kind argument divided among them (costs re-evaluated)
    work: NonNegInt = 0                 # useful work per iteration (e.g. FLOPs): predicted throughput

    @model_validator(mode="after")
    def _one_way_to_reserve(self) -> "OpSpec":
        if self.kind is None and self.args:
            raise ValueError("`args` need a `kind`")
        if isinstance(self.subtile, str) and self.kind is None:
            raise ValueError("`subtile: ARG` splits a kind argument; the op has no `kind` (use `subtile: true`)")
        if self.reservations is not None and (self.unit is not None or self.occupancy is not None):
            raise ValueError("give either unit/occupancy or reservations, not both")
        if self.occupancy is not None and self.unit is None:
            raise ValueError("occupancy needs a unit")
        return self

    def reservation_table(self) -> list[ReservationSpec]:
        if self.reservations is not None:
            return list(self.reservations)
        if self.unit is None:
            return []
        return [ReservationSpec(unit=self.unit, cycles=self.occupancy or 1)]


class EdgeSpec(Strict):
    src: Name
    dst: Name
    delay: NonNegInt | None = None  # defaults to latency(src)
    distance: NonNegInt = 0
    blocking: bool = False
    barrier: Literal["mbarrier", "named"] = "mbarrier"
    parts: Literal["same", "all"] = "same"  # sub-tiled ends: part j -> part j, or every part -> every part
    release: Literal["complete", "issue"] = "complete"  # when dst frees src's buffer (docs/joint-model.md)


class UnitSpec(Strict):
    count: NonNegInt
    source: Name | None = None  # where the number comes from (required in shipped machine files)


class WarpsSpec(Strict):
    max: PosInt
    warpgroup: PosInt = 4
    source: str | None = None


class RegistersSpec(Strict):
    file: PosInt                        # 32-bit registers per SM
    per_thread: PosInt                  # hardware maximum per thread
    setmaxnreg: Annotated[list[PosInt], Field(min_length=3, max_length=3)]  # [min, max, step]
    overhead: NonNegInt                 # per role, for ptxas's own registers
    source: str | None = None

    @model_validator(mode="after")
    def _setmaxnreg_range(self) -> "RegistersSpec":
        low, high, step = self.setmaxnreg
        if low > high or low % step or high % step:
            raise ValueError(f"setmaxnreg [min, max, step] needs min <= max, both multiples of step; got {self.setmaxnreg}")
        return self


class MemorySpec(Strict):
    capacity: NonNegInt
    source: str | None = None


class HandoffSpec(Strict):
    mbarrier: NonNegInt                 # cycles, one-way hand-off through an mbarrier
    named: NonNegInt                    # cycles, through a named barrier
    transfer_base: NonNegInt            # cycles to move registers through shared memory ...
    transfer_per_kb: Annotated[float, Field(ge=0)]  # ... plus cycles per KiB
    source: str | None = None


class ConstantSpec(Strict):
    """A named number (or table of numbers by key, e.g. by dtype) that expressions may use."""

    value: Scalar | dict[Name, Union[int, float]]
    source: str | None = None


class KindSpec(Strict):
    """How the machine costs one kind of op: op fields as expressions of ``args`` and the constants.

    Fields are evaluated in the order below; each may use the ones before it (latency may use occupancy).
    """

    args: dict[Name, Scalar | None] = {}  # argument -> default (None: the op must give it)
    unit: Name | None = None
    occupancy: Expr | None = None
    reservations: list[dict[Name, Expr]] | None = None
    latency: Expr
    issue: Expr | None = None
    warps: Expr | None = None
    variable_latency: bool | str | None = None
    registers: Expr | None = None
    smem: Expr | None = None
    tmem: Expr | None = None
    work: Expr | None = None
    source: str | None = None


class MachineSpec(Strict):
    name: Name | None = None
    description: str | None = None
    constants: dict[Name, ConstantSpec] = {}
    kinds: dict[Name, KindSpec] = {}
    warps: WarpsSpec | None = None      # present: the joint problem (roles) applies
    registers: RegistersSpec | None = None
    memories: dict[Literal["smem", "tmem"], MemorySpec] = {}
    handoff: HandoffSpec | None = None
    units: dict[Name, Annotated[Union[Annotated[NonNegInt, Tag("scalar")], Annotated[UnitSpec, Tag("mapping")]],
                                Discriminator(by_shape)]]

    @model_validator(mode="after")
    def _warps_need_costs(self) -> "MachineSpec":
        missing = [s for s in ("registers", "handoff") if self.warps is not None and getattr(self, s) is None]
        if missing:
            raise ValueError(f"the machine has `warps` but no `{missing[0]}` section")
        return self

    def capacity(self, unit: str) -> int:
        value = self.units[unit]
        return value if isinstance(value, int) else value.count


class ParamSpec(Strict):
    """A kernel parameter, set with ``--set NAME=VALUE``."""

    default: Scalar | dict[Name, Scalar]    # a mapping: the default per machine name
    choices: list[Scalar] | None = None
    doc: str | None = None


class LoopSpec(Strict):
    name: Name
    # inline machine, or the name/path of a machine file
    machine: Annotated[Union[Annotated[Name, Tag("scalar")], Annotated[MachineSpec, Tag("mapping")]],
                       Discriminator(by_shape)] | None = None
    ops: Annotated[list[OpSpec], Field(min_length=1)]
    edges: list[EdgeSpec] = []
    subtile: PosInt = 1                 # sub-ops per op marked `subtile: true`
    cross_role: bool = True             # false: no register value may cross roles
    max_warps: PosInt | None = None     # fewer warps than the machine allows
    resident_smem: NonNegInt = 0        # bytes of shared memory held for the whole kernel (tiles loaded once)
    resident_tiles: NonNegInt = 0       # how many tiles those are (each has a full mbarrier)
