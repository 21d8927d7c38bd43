"""What a kernel family's ops mean in memory: its arguments, the tile each load fetches, the operands
of each MMA, the values kept in registers and the outputs its epilogue writes (the emitter's
counterpart of twill/sim/semantics.py).

The pipeline program says when and where each op runs; a family says what it touches. Families are
keyed by the spec's ``name``, like the simulator's semantics; a spec without one cannot be emitted.
Tiles in shared memory are TMA boxes of 128-byte rows (64 16-bit elements) with the 128-byte
swizzle; a tile wider than that is ``boxes`` such boxes side by side, each ``rows x 128`` bytes.

* ``gemm``: C[M, N] = A[M, K] B[N, K]^T, A and B 16-bit, K contiguous (TN, as cuBLAS's default for
  ``torch.matmul(A, B.T)``), C fp32 row-major. CTA (x, y) owns rows ``x * block_m`` and columns
  ``y * block_n``; loop iteration i is the k-block ``i * block_k``; trip count K / block_k.
  ``loadA``/``loadB`` fetch the (block_m | block_n) x block_k boxes of A and B; part p of a sub-tiled
  ``mma`` owns rows ``p * block_m / parts`` of the tile; the epilogue stores each part's accumulator.
* ``fa-fwd``: Q, K, V of shape (B, S, H, d) (FlashAttention's layout, d = head_dim), SQ query
  rows and SK keys per (batch, head). CTA (x, h, b) owns query rows ``x * block_m`` of head h of
  batch b; loop iteration i is the KV block ``i * block_n``; trip count SK / block_n, or up to the
  diagonal block when causal. Q is loaded once before the loop (a resident tile); ``loadK`` /
  ``loadV`` fetch K_i, V_i (4-D boxes, one head). The ops are the simulator's (online softmax in
  base 2, scale c = log2(e) / sqrt(d)); after the loop O / l (fp32, (B, SQ, H, d)) and the base-2
  log-sum-exp c m + log2(l) (fp32, (B, H, SQ)) are stored.
* ``fa-bwd``: FA3's single-pass backward (``FlashBackward`` below).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from twill.emit.polynomial import EXP2_POLY
from twill.sim.semantics import attention_backward

ELEMENT_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1, "fp32": 4}
BOX_ELEMENTS = 64                      # 16-bit elements in one 128-byte swizzled row
TMEM_LANES = 128                       # tensor memory: 128 lanes of 32-bit cells (PTX ISA, "Tensor Memory")
TMEM_COLUMNS = 512                     # ... of 512 columns each (PTX ISA, "Tensor Memory")


class Unsupported(Exception):
    """A parameter value the family's op bodies cannot emit."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Argument:
    """A kernel argument, in the order of the C++ signature (manifest ``arguments``)."""

    name: str
    kind: str                          # tensor_map | input (fp32) | output (fp32) | int
    dtype: str | None = None
    shape: tuple[str, ...] = ()
    box: tuple[int, ...] | None = None  # tensor_map: elements, innermost first; an output with a box is passed to
                                        # the device kernel as a tensor map too (a TMA reduce's destination)
    swizzle: int = 0                    # tensor_map: bytes (128: 128-byte swizzle)
    accumulated: bool = False           # output: the kernel adds into it (zeros before the launch)

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.accumulated:
            data["accumulated"] = True
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
    """A TMA load of ``boxes`` boxes of ``tensor``: box b at coordinates ``coords`` (innermost first, C
    expressions of the loop iteration ``i``) with 64 b added to the innermost; ``bytes`` in all."""

    tensor: str
    coords: tuple[str, ...]
    boxes: int
    bytes: int

    @property
    def box_coords(self) -> list[tuple[str, ...]]:
        """Each box's coordinates: 64 b more elements along the innermost dimension."""
        first, rest = self.coords[0], self.coords[1:]
        return [(f"{first} + {BOX_ELEMENTS * b}" if b else first, *rest) for b in range(self.boxes)]


@dataclass(frozen=True)
class Mma:
    """An MMA: D[rows, n] += A[rows, k] B[n, k]^T, A and B read from the slots of ops ``a`` and ``b``
    (A from registers where ``a`` is a register value, from tensor memory with ``a_tmem``); B is
    stored n x k (K-major) or, with ``b_mn_major``, k x n (FA's V in PV = P V)."""

    a: str
    b: str
    row: int                            # first row of A (and of the output) this part owns
    a_rows: int                         # rows of the whole A tile in shared memory (0: A elsewhere)
    b_mn_major: bool = False
    a_tmem: bool = False                # A is in tensor memory (tcgen05.mma's A-in-TMEM form: FA4's P)
    a_mn_major: bool = False            # A (a staged register value, in parts of K rows) is stored K x rows, rows
                                        # contiguous: FA backward's dS read as the transpose of the staged dS^T
    b_col: int = 0                      # first column of B (of N) this part reads (FA backward's dq part p)


@dataclass(frozen=True)
class Output:
    """Where an accumulator's final value goes: ``tensor`` at (``row`` + tile row, tile column)."""

    tensor: str
    row: int


def _box(rows: int, dtype: str) -> tuple[int, int]:
    return BOX_ELEMENTS * 2 // ELEMENT_BYTES[dtype], rows


class Family:
    """The interface the emitter and the host check read (GEMM and FA forward below)."""

    name = ""
    targets = ("sm90a", "sm100a", "host")  # the targets its op bodies exist for
    kinds = ("tma_load", "mma")         # the op kinds its bodies cover
    dtypes = ("bf16", "fp16")
    tolerance = 1e-5                    # max |twin - reference| / max(1, max |reference|), per 64 k-blocks
    in_place: dict[str, str] = {}      # op with no storage of its own -> the input whose storage it updates
    resident: dict[str, Load] = {}     # tiles loaded once before the loop, by the producer role
    constants: dict[str, int] = {}      # names in argument shapes that are not arguments
    initial: dict[str, str] = {}        # register value -> C value of every copy before the loop (loop-carried)
    epilogue: dict[str, tuple[str, ...]] = {}  # op whose role stores an output -> the values it also reads then

    def __init__(self, params: dict[str, Any], parts: dict[str, int]):
        self.params, self.parts, self.dtype = params, parts, params["dtype"]

    def check(self) -> None:
        """Raise Unsupported for parameters the op bodies cannot emit."""
        if self.dtype not in self.dtypes:
            raise Unsupported("dtype", f"dtype {self.dtype!r} has no op bodies yet (emitted: {', '.join(self.dtypes)})")

    def rows(self, base: str) -> int:
        """Rows of the tile one part of ``base`` owns."""
        return self.params["block_m"] // self.parts[base]

    def tolerance_for(self, trips: int) -> float:
        return self.tolerance

    def staged_bytes(self, base: str) -> int:
        """Bytes one part of a register value takes in a shared-memory slot on the device (the
        family's staging layout; the host twin's is fp32 row-major, 4 * register_elements)."""
        return 4 * self.register_elements(base)

    def staged_columns(self, base: str) -> tuple[int, int, int] | None:
        """(first, stop, width): a value that is columns [first, stop) of each row of the storage it is
        written over (rows ``width`` wide); a copy to another role moves those columns only. None: the
        whole storage."""
        return None


class Gemm(Family):
    name = "gemm"

    def __init__(self, params: dict[str, Any], parts: dict[str, int]):
        super().__init__(params, parts)
        self.block_m, self.block_n, self.block_k = params["block_m"], params["block_n"], params["block_k"]

    @property
    def arguments(self) -> tuple[Argument, ...]:
        return (Argument("A", "tensor_map", self.dtype, ("M", "K"), _box(self.block_m, self.dtype), 128),
                Argument("B", "tensor_map", self.dtype, ("N", "K"), _box(self.block_n, self.dtype), 128),
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

    def check(self) -> None:
        super().check()
        row_bytes = self.block_k * ELEMENT_BYTES[self.dtype]
        if row_bytes != 128:
            raise Unsupported("block_k", f"block_k = {self.block_k} gives {row_bytes}-byte rows; the 128-byte swizzle "
                                         f"the op bodies use needs 128 (block_k = {128 // ELEMENT_BYTES[self.dtype]})")

    @property
    def size_rules(self) -> dict[str, dict[str, Any]]:
        """What the launcher checks of the sizes (manifest ``size_rules``): K whole k-blocks."""
        return {"K": {"multiple_of": self.block_k, "param": "block_k"}}

    def load(self, base: str) -> Load:
        rows = {"loadA": self.block_m, "loadB": self.block_n}[base]
        origin = {"loadA": "m0", "loadB": "n0"}[base]
        return Load(base[-1], (f"i * {self.block_k}", origin), 1, rows * self.block_k * ELEMENT_BYTES[self.dtype])

    def mma(self, base: str, part: int | None) -> Mma:
        return Mma("loadA", "loadB", (part or 0) * self.rows(base), self.block_m)

    def register_elements(self, base: str) -> int:
        """fp32 elements of one copy of a register value, over the whole role (the host twin's array)."""
        return self.rows(base) * self.block_n

    def fragment(self, base: str) -> tuple[str, int]:
        """sm90a: (C type, elements) of the accumulator one thread holds per 64-row group (docs/emit.md)."""
        return "float", self.block_n // 2

    def tolerance_for(self, trips: int) -> float:
        return self.tolerance * max(1, trips)   # fp32 sums of ``trips`` k-blocks in another order

    def output(self, base: str, part: int | None) -> Output:
        return Output("C", (part or 0) * self.rows(base))

    def twin_sizes(self, trips: int) -> dict[str, int]:
        return {"M": 2 * self.block_m, "N": self.block_n, "K": trips * self.block_k}

    def inputs(self, rng: np.random.Generator, sizes: dict[str, int]) -> dict[str, np.ndarray]:
        """Random A, B (float32 holding values exactly representable in the 16-bit dtype)."""
        m, n, k = sizes["M"], sizes["N"], sizes["K"]
        return {"A": round_to(rng.standard_normal((m, k)).astype(np.float32), self.dtype),
                "B": round_to(rng.standard_normal((n, k)).astype(np.float32), self.dtype)}

    def reference(self, inputs: dict[str, np.ndarray], sizes: dict[str, int]) -> dict[str, np.ndarray]:
        return {"C": inputs["A"].astype(np.float64) @ inputs["B"].astype(np.float64).T}


class Attention(Family):
    """What FlashAttention's families share: head_dim-wide tiles of 128-byte boxes, the base-2 scale."""

    def check(self) -> None:
        super().check()
        head_dim = self.params["head_dim"]
        if head_dim % BOX_ELEMENTS:
            raise Unsupported("head_dim", f"head_dim = {head_dim} is not a multiple of {BOX_ELEMENTS} (128-byte "
                                          "TMA boxes)")

    @property
    def scale(self) -> float:
        """c: exp2(c x) = exp(x / sqrt(d)), the base-2 softmax scale."""
        return math.log2(math.e) / math.sqrt(self.params["head_dim"])


class FlashForward(Attention):
    """FlashAttention forward, in two variants the spec's ops tell apart. Hopper (FA3): S, P and O in
    registers, P converted to 16 bits for PV's A operand. Blackwell (FA4, the spec's ``ldS``): S and O
    in tensor memory (one 128-row MMA tile per part, row r in lane r); ``ldS`` loads S into registers
    (tcgen05.ld), ``exp`` writes P over them, ``stP`` stores P in 16 bits into S's columns, from
    column ``block_n / 2`` of S on (two elements a column, as FA4's ``tmem_s_to_p_offset``), and
    ``pv`` reads it there as its A operand; ``rescale`` multiplies O in tensor memory; ``mask`` (causal)
    writes -inf over ldS's registers; after the loop the role holding part p of ``rowsum`` reads O
    from tensor memory and stores it. With ``emulated`` = E > 0, ``exp_poly`` computes the last E
    columns of P with FA4's polynomial (``p_columns``)."""

    name = "fa-fwd"
    kinds = ("tma_load", "mma", "scale", "rowmax", "exp2", "rowsum", "convert", "tmem_load", "tmem_store",
             "rescale_tmem")
    tolerance = 2e-2                    # P is rounded to 16 bits before PV, as on the device
    in_place = {"mask": "qk", "rescale": "pv"}

    def __init__(self, params: dict[str, Any], parts: dict[str, int]):
        super().__init__(params, parts)
        self.block_m, self.block_n, self.head_dim = params["block_m"], params["block_n"], params["head_dim"]
        self.causal = params["causal"]
        self.tmem = "ldS" in parts      # the Blackwell variant
        self.targets = ("sm100a", "host") if self.tmem else ("sm90a", "host")
        if self.tmem:
            self.in_place = {"mask": "ldS", "rescale": "pv"}   # the mask writes over the S ldS loaded
        self.boxes = self.head_dim // BOX_ELEMENTS
        tile = self.head_dim * ELEMENT_BYTES[self.dtype]
        self.resident = {"Q": Load("Q", ("0", "head", "q0", "batch"), self.boxes, self.block_m * tile)}
        self.constants = {"D": self.head_dim}
        self.initial = {"rowmax": "-INFINITY", "rowsum": "0.0f", "pv": "0.0f"}
        self.epilogue = {"rowsum": ("rowmax",)} if self.tmem else {"pv": ("rowsum", "rowmax")}
        self.p_offset = self.block_n // 2    # P's first column within S's (FA4: flash_fwd_sm100.py, tmem_s_to_p_offset)

    def mma(self, base: str, part: int | None) -> Mma:
        row = (part or 0) * self.rows(base)
        if base == "qk":
            return Mma("Q", "loadK", row, self.block_m)
        if self.tmem:
            return Mma("stP", "loadV", row, 0, b_mn_major=True, a_tmem=True)
        return Mma("convert", "loadV", row, 0, b_mn_major=True)

    def tmem_operand(self, mma: str, part: int | None) -> tuple[str, int]:
        """Blackwell: where MMA ``mma`` (part ``part``) reads its A operand in tensor memory, as
        (tensor-memory value, first column within it): pv's P (``stP``) over S, from column ``p_offset`` on."""
        assert mma == "pv"
        return ("qk" if part is None else f"qk.{part}"), self.p_offset

    def register_elements(self, base: str) -> int:
        rows = self.rows(base)
        tile, out = rows * self.block_n, rows * self.head_dim
        if base in self.p_columns():   # P's columns the op computes (staged_columns)
            return rows * self.p_width(base)
        return {"qk": tile, "ldS": tile, "mask": tile, "convert": tile, "pv": out, "rescale": out,
                "rowmax": 2 * rows, "alpha": rows, "rowsum": rows}[base]

    def fragment(self, base: str) -> tuple[str, int]:
        """(C type, elements) one thread holds of a register value. sm90a, per 64-row group of its
        part: a thread owns two rows of each group (the wgmma accumulator layout, docs/emit.md): S
        and P (fp32) and O are accumulator fragments; P in 16 bits is packed in pairs, as wgmma's A
        operand; m keeps (m_old, m_new) for both rows; alpha and the thread's partial l one per row.
        sm100a: a thread owns one row (tensor-memory lane = row): S and P all block_n columns, m
        (m_old, m_new), alpha and l one each. exp's and exp_poly's values are their columns of P
        (staged_columns): sm90a, two per 8-column group and row."""
        if base in self.p_columns():
            return "float", self.p_width(base) // (1 if self.tmem else 2)
        if self.tmem:
            return {"ldS": ("float", self.block_n), "rowmax": ("float", 2), "alpha": ("float", 1),
                    "rowsum": ("float", 1)}[base]
        tile, out = ("float", self.block_n // 2), ("float", self.head_dim // 2)
        return {"qk": tile, "mask": tile, "convert": ("u32", self.block_n // 4), "pv": out,
                "rescale": out, "rowmax": ("float", 4), "alpha": ("float", 2), "rowsum": ("float", 2)}[base]

    ROW_VALUES = {"rowmax": 2, "alpha": 1}    # values per row: (m_old, m_new), alpha

    def p_columns(self) -> dict[str, tuple[int, int]]:
        """The op that computes each column of P, as op -> (first, stop): ``exp`` (MUFU.EX2) the first
        block_n - E, ``exp_poly`` (2^x as a cubic on the FMA pipe, FA4's trick) the last E = emulated,
        as the simulator's semantics. FA4 spreads its emulated pairs over the row instead
        (flash-attention, flash_attn/cute/softmax.py, ``apply_exp2_convert``): the same cost; kept
        contiguous here, they are whole wgmma fragment groups (sm90a: columns 8 (j / 4) + ... hold
        fragment elements j >= (block_n - E) / 2 for E a multiple of 8)."""
        split = self.block_n - self.params["emulated"]
        return {"exp": (0, split), **({"exp_poly": (split, self.block_n)} if split < self.block_n else {})}

    def p_width(self, base: str) -> int:
        """Columns of P that ``exp`` or ``exp_poly`` computes."""
        first, stop = self.p_columns()[base]
        return stop - first

    def staged_columns(self, base: str) -> tuple[int, int, int] | None:
        """exp's and exp_poly's values are their columns of P, written over S (p_columns)."""
        return (*self.p_columns()[base], self.block_n) if base in self.p_columns() else None

    @property
    def exp2_poly(self) -> str:
        """ex2_poly's coefficient arguments c1, c2, c3 as C literals (twill/emit/polynomial.py)."""
        return ", ".join(f"{c:.9e}f" for c in EXP2_POLY)

    def staged_bytes(self, base: str) -> int:
        """sm90a staging layout (fa-fwd.sm90a.j2): a per-row value (m, alpha) as ``values`` row vectors
        of the part's rows, written by one lane of each quad; anything else as the thread fragments,
        element (g, j) of thread t at 4-byte word (g N + j) 128 + t (consecutive threads, consecutive
        words: no bank conflicts). sm100a stages fp32 row-major, as the twin."""
        if self.tmem:
            return super().staged_bytes(base)
        if base in self.ROW_VALUES:
            return 4 * self.ROW_VALUES[base] * self.rows(base)
        _, count = self.fragment(base)
        return 4 * 128 * (self.rows(base) // 64) * count

    def check(self) -> None:
        if self.dtype == "fp8" and not self.tmem:
            raise Unsupported("dtype", "dtype 'fp8': wgmma reads 8-bit A and B K-major only (PTX ISA, wgmma.mma_async: "
                                       "imm-trans-a/b are for .f16/.bf16), so PV needs V transposed in shared memory "
                                       "(FA3 transposes it in the kernel), which has no op body yet (emitted: bf16, fp16)")
        super().check()
        emulated = self.params["emulated"]
        if emulated % 8 or not 0 <= emulated <= self.block_n:
            raise Unsupported("emulated", f"emulated = {emulated}: the polynomial's columns are whole 8-column groups "
                                          f"(sm90a's wgmma accumulator fragment), a multiple of 8 up to block_n = "
                                          f"{self.block_n}")
        if self.tmem and self.rows("qk") > TMEM_LANES:
            raise Unsupported("block_m", f"block_m = {self.block_m} in {self.parts['qk']} parts gives "
                                         f"{self.rows('qk')}-row tiles; tensor memory has {TMEM_LANES} lanes")
        tiles = self.parts["qk"]
        if self.tmem and tiles * (self.block_n + self.head_dim) > TMEM_COLUMNS:
            # each tile's S (block_n fp32 columns) and O (head_dim) stay in tensor memory; FA4's head_dim 256
            # kernel keeps one 128-row tile per CTA (flash_attn/cute/sm100_hd256_2cta_fmha_forward.py: S at
            # column 0, O at 256)
            raise Unsupported("tiles", f"head_dim = {self.head_dim}: {tiles} tiles of S ({self.block_n} columns) "
                                       f"and O ({self.head_dim}) need {tiles * (self.block_n + self.head_dim)} "
                                       f"tensor-memory columns of {TMEM_COLUMNS}; one {TMEM_LANES}-row tile fits "
                                       f"(--set block_m={TMEM_LANES} --set tiles=1)")

    @property
    def arguments(self) -> tuple[Argument, ...]:
        box = (BOX_ELEMENTS, 1, self.block_m, 1)        # innermost first: 64 of d, one head, block_m rows
        kv = (BOX_ELEMENTS, 1, self.block_n, 1)
        return (Argument("Q", "tensor_map", self.dtype, ("B", "SQ", "H", "D"), box, 128),
                Argument("K", "tensor_map", self.dtype, ("B", "SK", "H", "D"), kv, 128),
                Argument("V", "tensor_map", self.dtype, ("B", "SK", "H", "D"), kv, 128),
                Argument("O", "output", "fp32", ("B", "SQ", "H", "D")),
                Argument("LSE", "output", "fp32", ("B", "H", "SQ")),
                Argument("SQ", "int"), Argument("SK", "int"), Argument("H", "int"), Argument("B", "int"))

    @property
    def grid(self) -> tuple[str, str, str]:
        return f"ceil(SQ / {self.block_m})", "H", "B"

    @property
    def size_rules(self) -> dict[str, dict[str, Any]]:
        """Whole KV blocks (the trip count drops a partial one) and the head_dim the kernel was emitted for."""
        return {"SK": {"multiple_of": self.block_n, "param": "block_n"},
                "D": {"equals": self.head_dim, "param": "head_dim"}}

    @property
    def trip_count(self) -> str:
        blocks = f"SK / {self.block_n}"
        return f"min({blocks}, ceil((x + 1) * {self.block_m} / {self.block_n}))" if self.causal else blocks

    @property
    def prologue(self) -> tuple[str, ...]:
        bm, bn = self.block_m, self.block_n
        if self.causal:  # key j is visible to query r when j <= r: the blocks up to the diagonal
            trips = f"SK / {bn} < ((int)blockIdx.x * {bm} + {bm + bn - 1}) / {bn} ? SK / {bn} " \
                    f": ((int)blockIdx.x * {bm} + {bm + bn - 1}) / {bn}"
        else:
            trips = f"SK / {bn}"
        return (f"const int q0 = blockIdx.x * {bm};", "const int head = blockIdx.y, batch = blockIdx.z;",
                f"const int trips = {trips};")

    def load(self, base: str) -> Load:
        tile = self.block_n * self.head_dim * ELEMENT_BYTES[self.dtype]
        return Load(base[-1], ("0", "head", f"i * {self.block_n}", "batch"), self.boxes, tile)

    def twin_sizes(self, trips: int) -> dict[str, int]:
        """``trips`` KV blocks, two batches of two heads, half a query tile (ragged: the TMA zero-fills the
        rest, the stores are guarded); causal: one head of one batch with as many query rows as keys,
        so the CTAs run 1 .. trips blocks (trips CTAs: at 64 blocks, minutes under TSAN already)."""
        keys = trips * self.block_n
        if self.causal:
            return {"SQ": keys, "SK": keys, "H": 1, "B": 1}
        return {"SQ": self.block_m // 2, "SK": keys, "H": 2, "B": 2}

    def inputs(self, rng: np.random.Generator, sizes: dict[str, int]) -> dict[str, np.ndarray]:
        def tensor(rows: int) -> np.ndarray:
            shape = (sizes["B"], rows, sizes["H"], self.head_dim)
            return round_to(rng.standard_normal(shape).astype(np.float32), self.dtype)
        return {"Q": tensor(sizes["SQ"]), "K": tensor(sizes["SK"]), "V": tensor(sizes["SK"])}

    def reference(self, inputs: dict[str, np.ndarray], sizes: dict[str, int]) -> dict[str, np.ndarray]:
        """Attention per (batch, head) in fp64: O (B, SQ, H, d) and the base-2 LSE (B, H, SQ)."""
        q, k, v = (inputs[name].astype(np.float64).transpose(0, 2, 1, 3) for name in "QKV")   # (B, H, S, d)
        if not k.shape[2]:
            return {"O": np.zeros_like(inputs["Q"], dtype=np.float64), "LSE": np.full(q.shape[:3], -np.inf)}
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(self.head_dim)
        if self.causal:
            s = np.where(np.arange(k.shape[2])[None, :] > np.arange(q.shape[2])[:, None], -np.inf, s)
        top = s.max(axis=-1, keepdims=True)
        p = np.exp(s - top)
        total = p.sum(axis=-1, keepdims=True)
        o = (p / total) @ v
        return {"O": o.transpose(0, 2, 1, 3), "LSE": (top[..., 0] + np.log(total[..., 0])) * math.log2(math.e)}


class FlashBackward(Attention):
    """FA3's backward (specs/kernels/fa-bwd.yaml, the simulator's ``fa-bwd`` semantics): CTA x keeps the
    KV block ``x * block_n`` resident (K, V: loaded once) and loop iteration i is the query block
    ``i * block_m``; trip count SQ / block_m. Part p of s, p, dp, ds, convertP, convertDS, dv and dk
    owns KV rows ``p * block_n / parts``, kept transposed (S^T, P^T, dP^T, dS^T: KV rows x queries);
    part p of dq owns columns ``p * head_dim / parts`` of dQ_i. LSE (base 2, as the forward stores it)
    and Delta = rowsum(dO * O) are fp32 inputs. storeDQ adds scale * dQ_i into the fp32 dQ (a TMA
    reduce-add); after the loop the roles store dV and scale * dK, scale = 1 / sqrt(d).

    Blackwell (the spec's ``ldS``): S^T, dP^T, dV, dK and dQ_i live in tensor memory at their values'
    columns (the layout's tmem_map), KV row r of a part in lane r; ``ldS`` and ``ldDP`` load S^T and
    dP^T into registers (tcgen05.ld), ``p`` writes P^T over ldS's registers and ``ds`` dS^T over
    ldDP's; ``stP`` stores P^T and dS^T in 16 bits (two a column) over the upper half of S^T's and
    dP^T's columns (from column ``block_m / 2`` on, as the forward's P over S), where ``dv`` and ``dk``
    read them as their A operand, and dS^T into its shared-memory tile (the spec's ``smem``), where
    ``dq`` reads it as its A operand MN-major (dQ's M is the queries; an A in tensor memory would have
    them in lanes, where dS^T has its KV rows); dV and dK accumulate in tensor memory (the first block
    overwrites) and are read back after the accumulators barrier. dQ_i (block_m x n fp32, n = head_dim
    / parts) fills its copy's c columns of all 128 lanes: element (q, d) at lane q + block_m (d / c),
    column d % c (at block_m = 64 the .ws MMA's layout); ``storeDQ``, a warpgroup, reads it back,
    scaled into its fp32 shared-memory slot, the TMA reduce's source."""

    name = "fa-bwd"
    targets = ("host", "sm90a", "sm100a")   # all it has bodies for; __init__ narrows to the variant's: Hopper
                                            # (host, sm90a: fa-bwd.sm90a.j2), Blackwell (sm100a, host)
    kinds = ("tma_load", "mma", "exp2", "scale", "convert", "tma_reduce", "tmem_load", "tmem_store")
    tolerance = 1e-2                    # P and dS are rounded to 16 bits before their MMAs, as on the device
    in_place = {"ds": "dp", "convertP": "p", "convertDS": "ds"}   # dS over dP, 16-bit P over P, dS over dS

    def __init__(self, params: dict[str, Any], parts: dict[str, int]):
        super().__init__(params, parts)
        self.block_m, self.block_n, self.head_dim = params["block_m"], params["block_n"], params["head_dim"]
        self.boxes = self.head_dim // BOX_ELEMENTS
        tile = self.block_n * self.head_dim * ELEMENT_BYTES[self.dtype]
        kv = ("0", "head", "kv0", "batch")
        self.resident = {"K": Load("K", kv, self.boxes, tile), "V": Load("V", kv, self.boxes, tile)}
        self.constants = {"D": self.head_dim}
        self.initial = {"dv": "0.0f", "dk": "0.0f"}
        self.tmem = "ldS" in parts      # the Blackwell variant
        self.targets = ("sm100a", "host") if self.tmem else ("host", "sm90a")
        if self.tmem:
            self.in_place = {"ds": "ldDP"}   # dS^T over the registers ldDP filled
        self.p_offset = self.block_m // 2    # P^T (dS^T) in 16 bits from this column of S^T's (dP^T's) on

    def check(self) -> None:
        super().check()
        if self.tmem and self.block_m > TMEM_LANES:
            raise Unsupported("block_m", f"block_m = {self.block_m}: dQ_i's rows are tensor-memory lanes, "
                                         f"{TMEM_LANES} of them")
        if self.tmem and self.parts["s"] > 1:
            raise Unsupported("tiles", f"tiles = {self.parts['s']}: on Blackwell dQ reads dS^T as one shared-memory "
                                       "tile (stP's), so the KV rows are one part")
        if self.tmem and self.rows("s") != TMEM_LANES:
            raise Unsupported("block_n", f"block_n = {self.block_n} in {self.parts['s']} parts gives "
                                         f"{self.rows('s')}-row tiles; the bodies keep KV row r in lane r of "
                                         f"{TMEM_LANES} (an M = {TMEM_LANES} accumulator)")
        if self.block_m % BOX_ELEMENTS:
            raise Unsupported("block_m", f"block_m = {self.block_m} is not a multiple of {BOX_ELEMENTS}: P^T and dS^T "
                                         "rows are staged as 128-byte boxes")
        if self.head_dim % self.parts["dq"]:
            raise Unsupported("tiles", f"head_dim = {self.head_dim} does not split into {self.parts['dq']} dQ parts")

    @property
    def sm_scale(self) -> float:
        return 1 / math.sqrt(self.head_dim)

    def rows(self, base: str) -> int:
        """KV rows of one part (dq: its query rows, all of them)."""
        return self.block_m if base == "dq" else self.block_n // self.parts[base]

    def register_elements(self, base: str) -> int:
        if base == "dq":
            return self.block_m * self.head_dim // self.parts["dq"]
        return self.rows(base) * (self.head_dim if base in ("dv", "dk") else self.block_m)

    def tmem_operand(self, mma: str, part: int | None) -> tuple[str, int]:
        """Blackwell: where ``dv`` reads P^T (over S^T) and ``dk`` dS^T (over dP^T) in tensor memory, as
        (tensor-memory value, first column within it)."""
        over = {"dv": "s", "dk": "dp"}[mma]
        return (over if part is None else f"{over}.{part}"), self.p_offset

    STAGED_16 = ("convertP", "convertDS")   # staged 16-bit for an MMA that reads them from shared memory
    ROW_VALUES: dict[str, int] = {}         # no per-row values (the forward's m, alpha): staged as fragments

    def fragment(self, base: str) -> tuple[str, int]:
        """sm90a: (C type, elements) one thread holds per 64-row group of its part, the wgmma accumulator
        fragments (docs/emit.md): S^T, P^T, dP^T, dS^T (KV rows x block_m queries) and their 16-bit forms
        (packed pairs in the first half of the same registers), dV and dK (KV rows x head_dim), dQ_i's
        part (block_m queries x head_dim / parts). sm100a: a thread owns one KV row (tensor-memory lane =
        row), all block_m query columns of S^T, P^T, dP^T, dS^T."""
        if self.tmem:
            return "float", self.block_m
        if base == "dq":
            return "float", self.head_dim // self.parts["dq"] // 2
        return "float", (self.head_dim if base in ("dv", "dk") else self.block_m) // 2

    def staged_bytes(self, base: str) -> int:
        """sm90a staging layout (fa-bwd.sm90a.j2): P^T and dS^T 16-bit in 128-byte-swizzled boxes (an MMA
        operand); dQ_i's part fp32 row-major (the TMA reduce's unswizzled box); dP^T fp32 as the thread
        fragments, element j of thread t at word 128 j + t."""
        return (2 if base in self.STAGED_16 else 4) * self.register_elements(base)

    def mma(self, base: str, part: int | None) -> Mma:
        row = (part or 0) * self.rows(base)
        kv, q = self.block_n, self.block_m    # rows of the A tiles in shared memory: K, V; dS (for dQ)
        cols = self.head_dim // self.parts["dq"]
        if self.tmem:   # P^T, dS^T in 16 bits in tensor memory (stP) for dv and dk; dq reads dS^T from stP's
                        # shared-memory tile, MN-major (tcgen05's A in tensor memory has M in lanes, dS^T KV rows)
            col = (part or 0) * cols if base == "dq" else 0
            return {"s": Mma("K", "loadQ", row, kv), "dp": Mma("V", "loadDO", row, kv),
                    "dv": Mma("stP", "loadDO", row, 0, b_mn_major=True, a_tmem=True),
                    "dk": Mma("stP", "loadQ", row, 0, b_mn_major=True, a_tmem=True),
                    "dq": Mma("stP", "K", 0, q, b_mn_major=True, a_mn_major=True, b_col=col)}[base]
        return {"s": Mma("K", "loadQ", row, kv), "dp": Mma("V", "loadDO", row, kv),
                "dv": Mma("convertP", "loadDO", row, 0, b_mn_major=True),
                "dk": Mma("convertDS", "loadQ", row, 0, b_mn_major=True),
                "dq": Mma("convertDS", "K", 0, q, b_mn_major=True, a_mn_major=True,
                          b_col=(part or 0) * cols if base == "dq" else 0)}[base]

    @property
    def arguments(self) -> tuple[Argument, ...]:
        q = (BOX_ELEMENTS, 1, self.block_m, 1)          # innermost first: 64 of d, one head, rows
        kv = (BOX_ELEMENTS, 1, self.block_n, 1)
        dq_box = (self.head_dim // self.parts["dq"], 1, self.block_m, 1)   # one dq part's fp32 tile, unswizzled
        queries, keys = ("B", "SQ", "H", "D"), ("B", "SK", "H", "D")
        return (Argument("Q", "tensor_map", self.dtype, queries, q, 128),
                Argument("K", "tensor_map", self.dtype, keys, kv, 128),
                Argument("V", "tensor_map", self.dtype, keys, kv, 128),
                Argument("dO", "tensor_map", self.dtype, queries, q, 128),
                Argument("LSE", "input", "fp32", ("B", "H", "SQ")),
                Argument("Delta", "input", "fp32", ("B", "H", "SQ")),
                Argument("dQ", "output", "fp32", queries, dq_box, accumulated=True),
                Argument("dK", "output", "fp32", keys),
                Argument("dV", "output", "fp32", keys),
                Argument("SQ", "int"), Argument("SK", "int"), Argument("H", "int"), Argument("B", "int"))

    @property
    def grid(self) -> tuple[str, str, str]:
        return f"ceil(SK / {self.block_n})", "H", "B"

    @property
    def size_rules(self) -> dict[str, dict[str, Any]]:
        """Whole query blocks and the head_dim the kernel was emitted for."""
        return {"SQ": {"multiple_of": self.block_m, "param": "block_m"},
                "D": {"equals": self.head_dim, "param": "head_dim"}}

    @property
    def trip_count(self) -> str:
        return f"SQ / {self.block_m}"

    @property
    def prologue(self) -> tuple[str, ...]:
        return (f"const int kv0 = blockIdx.x * {self.block_n};", "const int head = blockIdx.y, batch = blockIdx.z;",
                f"const int trips = {self.trip_count};")

    def load(self, base: str) -> Load:
        tile = self.block_m * self.head_dim * ELEMENT_BYTES[self.dtype]
        return Load({"loadQ": "Q", "loadDO": "dO"}[base], ("0", "head", f"i * {self.block_m}", "batch"), self.boxes,
                    tile)

    def twin_sizes(self, trips: int) -> dict[str, int]:
        """``trips`` query blocks; two KV blocks (two CTAs add into the same dQ); one batch of two heads."""
        return {"SQ": trips * self.block_m, "SK": 2 * self.block_n, "H": 2, "B": 1}

    def inputs(self, rng: np.random.Generator, sizes: dict[str, int]) -> dict[str, np.ndarray]:
        """Q, K, V, dO (B, S, H, d) in the dtype; LSE (base 2) and Delta = rowsum(dO * O) of the forward,
        (B, H, SQ), from fp64."""
        def tensor(rows: int) -> np.ndarray:
            shape = (sizes["B"], rows, sizes["H"], self.head_dim)
            return round_to(rng.standard_normal(shape).astype(np.float32), self.dtype)
        data = {"Q": tensor(sizes["SQ"]), "K": tensor(sizes["SK"]), "V": tensor(sizes["SK"]),
                "dO": tensor(sizes["SQ"])}
        q, k, v, do = (_heads(data[name]) for name in ("Q", "K", "V", "dO"))
        s = q @ k.transpose(0, 1, 3, 2) * self.sm_scale
        top = s.max(axis=-1, keepdims=True, initial=-np.inf)
        lse = top[..., 0] + np.log(np.exp(s - top).sum(axis=-1))
        o = np.exp(s - lse[..., None]) @ v
        data["LSE"] = (lse * math.log2(math.e)).astype(np.float32)
        data["Delta"] = (do * o).sum(axis=-1).astype(np.float32)
        return data

    def reference(self, inputs: dict[str, np.ndarray], sizes: dict[str, int]) -> dict[str, np.ndarray]:
        """Attention backward in fp64 per (batch, head): dV = P^T dO, dS = P (dO V^T - rowsum(dO O)),
        dK = scale dS^T Q, dQ = scale dS K; (B, S, H, d) like the inputs."""
        q, k, v, do = (_heads(inputs[name]) for name in ("Q", "K", "V", "dO"))
        grads: dict[str, list] = {"dQ": [], "dK": [], "dV": []}
        for b in range(q.shape[0]):
            for h in range(q.shape[1]):
                for name, value in attention_backward(q[b, h], k[b, h], v[b, h], do[b, h]).items():
                    grads[name].append(value)
        batches, heads = q.shape[:2]
        return {name: np.stack(values).reshape(batches, heads, *values[0].shape).transpose(0, 2, 1, 3)
                for name, values in grads.items()}


def _heads(x: np.ndarray) -> np.ndarray:
    """A (B, S, H, d) tensor as fp64 (B, H, S, d)."""
    return x.astype(np.float64).transpose(0, 2, 1, 3)


FAMILIES = {family.name: family for family in (Gemm, FlashForward, FlashBackward)}


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
