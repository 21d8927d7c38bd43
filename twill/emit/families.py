"""What a kernel family's ops mean in memory: its arguments, the tile each load fetches, the operands
of each MMA and the outputs its epilogue writes (the emitter's counterpart of twill/sim/semantics.py).

The pipeline program says when and where each op runs; a family says what it touches. Families are
keyed by the spec's ``name``, like the simulator's semantics; a spec without one cannot be emitted.

* ``gemm``: C[M, N] = A[M, K] B[N, K]^T, A and B 16-bit, K contiguous (TN, as cuBLAS's default for
  ``torch.matmul(A, B.T)``), C fp32 row-major. CTA (x, y) owns rows ``x * block_m`` and columns
  ``y * block_n``; loop iteration i is the k-block ``i * block_k``; trip count K / block_k.
  ``loadA``/``loadB`` fetch the (block_m | block_n) x block_k boxes of A and B; part p of a sub-tiled
  ``mma`` owns rows ``p * block_m / parts`` of the tile; the epilogue stores each part's accumulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

ELEMENT_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1, "fp32": 4}


@dataclass(frozen=True)
class Argument:
    """A kernel argument, in the order of the C++ signature (manifest ``arguments``)."""

    name: str
    kind: str                          # tensor_map | output | int
    dtype: str | None = None
    shape: tuple[str, ...] = ()
    box: tuple[int, int] | None = None  # tensor_map: {inner, outer} elements
    swizzle: int = 0                    # tensor_map: bytes (128: 128-byte swizzle)

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.dtype:
            data["dtype"] = self.dtype
        if self.shape:
            data["shape"] = list(self.shape)
        if self.box:
            data["box"] = list(self.box)
            data["swizzle"] = self.swizzle
        return data


@dataclass(frozen=True)
class Load:
    """A TMA load: ``tensor``'s box at (inner, outer) = (i * block_k, ``origin``)."""

    tensor: str
    origin: str                         # C expression of the box's first row


@dataclass(frozen=True)
class Mma:
    """An MMA: D[rows, n] += A[rows, k] B[n, k]^T, A and B read from the slots of ops ``a`` and ``b``."""

    a: str
    b: str
    row: int                            # first row of A (and of the output) this part owns


@dataclass(frozen=True)
class Output:
    """Where an accumulator's final value goes: ``tensor`` at (``row`` + tile row, tile column)."""

    tensor: str
    row: int


class Gemm:
    name = "gemm"
    dtypes = ("bf16", "fp16")

    def __init__(self, params: dict[str, Any], parts: Callable[[str], int]):
        self.params = params
        self.block_m, self.block_n, self.block_k = params["block_m"], params["block_n"], params["block_k"]
        self.dtype = params["dtype"]
        self.parts = parts

    @property
    def arguments(self) -> tuple[Argument, ...]:
        box_bytes = self.block_k * ELEMENT_BYTES[self.dtype]
        return (Argument("A", "tensor_map", self.dtype, ("M", "K"), (self.block_k, self.block_m), box_bytes),
                Argument("B", "tensor_map", self.dtype, ("N", "K"), (self.block_k, self.block_n), box_bytes),
                Argument("C", "output", "fp32", ("M", "N")),
                Argument("M", "int"), Argument("N", "int"), Argument("K", "int"))

    @property
    def grid(self) -> tuple[str, str, str]:
        return f"ceil(M / {self.block_m})", f"ceil(N / {self.block_n})", "1"

    @property
    def trip_count(self) -> str:
        return f"K / {self.block_k}"

    @property
    def prologue(self) -> tuple[str, ...]:
        """C statements every thread runs first: the trip count and the CTA's tile origin."""
        return (f"const int trips = {self.trip_count};", f"const int m0 = blockIdx.x * {self.block_m};",
                f"const int n0 = blockIdx.y * {self.block_n};")

    def load(self, base: str) -> Load:
        return {"loadA": Load("A", "m0"), "loadB": Load("B", "n0")}[base]

    def mma(self, base: str, part: int | None) -> Mma:
        rows = self.block_m // self.parts(base)
        return Mma("loadA", "loadB", (part or 0) * rows)

    def output(self, base: str, part: int | None) -> Output:
        return Output("C", (part or 0) * (self.block_m // self.parts(base)))

    def inputs(self, rng: np.random.Generator, m: int, n: int, k: int) -> dict[str, np.ndarray]:
        """Random A, B (float32 holding values exactly representable in the 16-bit dtype)."""
        return {"A": round_to(rng.standard_normal((m, k)).astype(np.float32), self.dtype),
                "B": round_to(rng.standard_normal((n, k)).astype(np.float32), self.dtype)}

    def reference(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"C": inputs["A"].astype(np.float64) @ inputs["B"].astype(np.float64).T}


FAMILIES = {family.name: family for family in (Gemm,)}


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """float32 values rounded (to nearest even) to bf16 or fp16, returned as float32."""
    if dtype == "fp16":
        return x.astype(np.float16).astype(np.float32)
    bits = x.astype(np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32)


def to_bits(x: np.ndarray, dtype: str) -> np.ndarray:
    """The 16-bit patterns of float32 values already representable in ``dtype``."""
    if dtype == "fp16":
        return x.astype(np.float16).view(np.uint16)
    return (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
