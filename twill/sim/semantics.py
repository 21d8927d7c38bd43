"""NumPy semantics of the shipped kernels' ops for the functional check (twill/sim/functional.py).

An op instance computes its result from the values it read, keyed by source op name (read through
the ring slots by the replay), and from global memory (``memory``: the inputs a TMA load fetches by
iteration, and outputs written back). A sub-tiled op ``X.p`` acts on part p of its tile: the rows
(or, for ``dq``, the columns) ``p * size / parts .. (p + 1) * size / parts``; an edge from every part
(``parts: all``, or a sub-tiled source read by an unsplit op) gives the whole tile. Edges that only
order or keep storage alive (``qk -> convert``, ``pv -> pv`` where ``rescale`` already read O) are
read but unused. The semantics also own the loop-carried initial values, the final step after the
loop and the plain NumPy reference. Tiles are small by default (``shape`` overrides them): the slot
replay, not the tile size, is under test.

* ``fa-fwd`` (one query tile Q, KV step j): loadK/loadV fetch K_j, V_j; ``qk`` S = Q K_j^T; ``ldS``
  and ``convert``/``stP`` move (P stays fp32); ``mask`` sets keys after the query position to -inf
  (query row r sits at position (N-1) block_n + r); ``rowmax`` gives (m_old, m_new = max(m_old,
  rowmax S)), initial m = -inf; ``alpha`` = exp2(c (m_old - m_new)) with c = log2(e) / sqrt(d);
  ``exp`` P = exp2(c (S - m_new)) on the first block_n - emulated columns, ``exp_poly`` on the others
  (exact exp2 for the polynomial); ``rowsum`` l = alpha l + rowsum(P), initial 0; ``rescale``
  alpha O; ``pv`` O = rescale + P V_j, initial 0. After the loop O / l (O stays 0 when l = 0: no
  iterations). Reference: softmax(Q K^T / sqrt(d)) V over all keys.
* ``fa-bwd`` (FA3's single pass, one KV block K, V resident, query block i per step, S and dP kept
  transposed, KV rows first): loadQ/loadDO fetch Q_i, dO_i; ``s`` S^T = K Q_i^T; ``p`` P^T =
  exp2(c S^T - lse_i) with the forward's base-2 log-sum-exp (an input, as in FA3); ``dp`` dP^T = V
  dO_i^T; ``ds`` dS^T = P^T (dP^T - D_i), D = rowsum(dO O) (an input); ldS/ldDP/convertP/convertDS
  move; ``stP`` stores (P^T, dS^T); ``dv`` dV += P^T dO_i; ``dk`` dK += dS^T Q_i (initial 0);
  ``dq`` dQ_i = dS K (its columns); ``storeDQ`` adds dQ_i to global memory. After the loop dK and
  dQ are scaled by 1 / sqrt(d). Reference: the attention backward over all query blocks.
* ``gemm``: loadA/loadB fetch A_k (block_m x block_k), B_k (block_n x block_k); ``mma`` C = C +
  A_k B_k^T, initial 0. Reference: the sum over k.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable, Mapping

import numpy as np

from twill.model.loop import Loop

Memory = dict[str, np.ndarray]


def split_name(name: str) -> tuple[str, int | None]:
    """``qk.1`` -> ("qk", 1); an op that is not a part -> (name, None)."""
    base, _, part = name.rpartition(".")
    return (base, int(part)) if base and part.isdigit() else (name, None)


def part_counts(loop: Loop) -> dict[str, int]:
    """How many parts each op base has (1 for an op that is not sub-tiled)."""
    counts: dict[str, int] = {}
    for op in loop.ops:
        base, _ = split_name(op.name)
        counts[base] = counts.get(base, 0) + 1
    return counts


class Reads:
    """The values one instance read, seen from its part: ``get`` the same part of a sub-tiled source
    (or an unsplit source), ``whole`` every part joined along ``axis``."""

    def __init__(self, reads: Mapping[str, Any], part: int | None):
        self.reads, self.part = reads, part

    def has(self, base: str) -> bool:
        return base in self.reads or f"{base}.{self.part}" in self.reads

    def get(self, base: str) -> Any:
        return self.reads[base] if base in self.reads else self.reads[f"{base}.{self.part}"]

    def first(self, *bases: str) -> Any:
        """The first of ``bases`` this instance read (where the kernel variants differ)."""
        return self.get(next(b for b in bases if self.has(b)))

    def whole(self, base: str, axis: int, pick: Callable[[Any], np.ndarray] = lambda v: v) -> np.ndarray:
        if base in self.reads:
            return pick(self.reads[base])
        parts = sorted((split_name(k)[1], v) for k, v in self.reads.items() if split_name(k)[0] == base)
        return np.concatenate([pick(v) for _, v in parts], axis=axis)


class Semantics(ABC):
    """What a kernel's ops compute: per op ``_op_NAME(reads, part, iteration, memory)`` and, for an op
    read across iterations, ``_init_NAME()`` (its value before the loop)."""

    name = ""
    tolerance = 1e-4               # max abs error allowed, times max(1, max |reference|)
    shape: dict[str, int] = {}

    def __init__(self, loop: Loop, **shape: int):
        self.shape = {**type(self).shape, **shape}
        self.parts = part_counts(loop)

    def span(self, base: str, part: int | None, size: int) -> slice:
        """The rows (or columns) of ``size`` that part ``part`` of ``base`` acts on."""
        if part is None:
            return slice(0, size)
        step = size // self.parts[base]
        return slice(part * step, (part + 1) * step)

    def compute(self, name: str, iteration: int, reads: Mapping[str, Any], memory: Memory) -> Any:
        base, part = split_name(name)
        return getattr(self, f"_op_{base}")(Reads(reads, part), part, iteration, memory)

    def initial(self, name: str) -> Any:
        """The value of op ``name`` before the loop (item -1), read by loop-carried edges."""
        return getattr(self, f"_init_{split_name(name)[0]}")()

    @abstractmethod
    def inputs(self, trips: int, rng: np.random.Generator) -> Memory:
        """Random global memory for a run of ``trips`` iterations (fp32)."""

    @abstractmethod
    def finish(self, last: Callable[[str], Any], memory: Memory, trips: int) -> dict[str, np.ndarray]:
        """The outputs, from the final step's reads (``last(op)``) and global memory."""

    @abstractmethod
    def reference(self, inputs: Memory, trips: int) -> dict[str, np.ndarray]:
        """The same outputs computed by plain NumPy."""

    def last_parts(self, last: Callable[[str], Any], base: str) -> list[Any]:
        """The final step's reads of every part of ``base`` (its last iteration), in part order."""
        n = self.parts[base]
        return [last(f"{base}.{p}") for p in range(n)] if n > 1 else [last(base)]


def _normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def _zeros(*shape: int) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32)


def _softmax_scale(head_dim: int) -> float:
    """c: exp2(c x) = exp(x / sqrt(d)), the base-2 softmax scale."""
    return math.log2(math.e) / math.sqrt(head_dim)


class FlashForward(Semantics):
    name = "fa-fwd"
    shape = {"head_dim": 32, "block_m": 64, "block_n": 32, "emulated": 8}

    def inputs(self, trips: int, rng: np.random.Generator) -> Memory:
        d, m, n = self.shape["head_dim"], self.shape["block_m"], self.shape["block_n"]
        return {"Q": _normal(rng, m, d), "K": _normal(rng, trips, n, d), "V": _normal(rng, trips, n, d),
                "q_pos": max(trips - 1, 0) * n + np.arange(m)}

    def _rows(self, base: str, part: int | None) -> slice:
        return self.span(base, part, self.shape["block_m"])

    def _c(self) -> float:
        return _softmax_scale(self.shape["head_dim"])

    def _init_rowmax(self):
        rows = self.shape["block_m"] // self.parts["rowmax"]
        return np.full(rows, -np.inf, dtype=np.float32), np.full(rows, -np.inf, dtype=np.float32)

    def _init_rowsum(self):
        return _zeros(self.shape["block_m"] // self.parts["rowsum"])

    def _init_pv(self):
        return _zeros(self.shape["block_m"] // self.parts["pv"], self.shape["head_dim"])

    def _op_loadK(self, x, part, i, memory):
        return memory["K"][i]

    def _op_loadV(self, x, part, i, memory):
        return memory["V"][i]

    def _op_qk(self, x, part, i, memory):
        return memory["Q"][self._rows("qk", part)] @ x.get("loadK").T

    def _op_ldS(self, x, part, i, memory):
        return x.get("qk")

    def _op_mask(self, x, part, i, memory):
        n = self.shape["block_n"]
        keys = i * n + np.arange(n)
        return np.where(keys[None, :] > memory["q_pos"][self._rows("mask", part)][:, None], -np.inf, x.get("qk"))

    def _scores(self, x) -> np.ndarray:
        return x.first("mask", "ldS", "qk")

    def _op_rowmax(self, x, part, i, memory):
        m_old = x.get("rowmax")[1]
        return m_old, np.maximum(m_old, self._scores(x).max(axis=1))

    def _op_alpha(self, x, part, i, memory):
        m_old, m_new = x.get("rowmax")
        return np.exp2(self._c() * (m_old - m_new))

    def _exp(self, x, columns: slice) -> np.ndarray:
        return np.exp2(self._c() * (self._scores(x)[:, columns] - x.get("rowmax")[1][:, None]))

    def _emulated(self) -> int:
        return self.shape["emulated"] if "exp_poly" in self.parts else 0

    def _op_exp(self, x, part, i, memory):
        return self._exp(x, slice(0, self.shape["block_n"] - self._emulated()))

    def _op_exp_poly(self, x, part, i, memory):
        return self._exp(x, slice(self.shape["block_n"] - self._emulated(), None))

    def _p(self, x) -> np.ndarray:
        return np.concatenate([x.get("exp")] + ([x.get("exp_poly")] if x.has("exp_poly") else []), axis=1)

    def _op_rowsum(self, x, part, i, memory):
        return x.get("alpha") * x.get("rowsum") + self._p(x).sum(axis=1)

    def _op_convert(self, x, part, i, memory):
        return self._p(x)

    _op_stP = _op_convert

    def _op_rescale(self, x, part, i, memory):
        return x.get("alpha")[:, None] * x.get("pv")

    def _op_pv(self, x, part, i, memory):
        return x.get("rescale") + x.first("convert", "stP") @ x.get("loadV")

    def finish(self, last, memory, trips):
        outs = []
        for o, l in zip(self.last_parts(last, "pv"), self.last_parts(last, "rowsum")):
            outs.append(o / np.where(l > 0, l, 1.0)[:, None])
        return {"O": np.concatenate(outs, axis=0)}

    def reference(self, inputs, trips):
        d = self.shape["head_dim"]
        q = inputs["Q"]
        if trips == 0:
            return {"O": np.zeros_like(q)}
        k, v = inputs["K"].reshape(-1, d), inputs["V"].reshape(-1, d)
        s = q @ k.T / math.sqrt(d)
        if "mask" in self.parts:
            s = np.where(np.arange(len(k))[None, :] > inputs["q_pos"][:, None], -np.inf, s)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        return {"O": (p / p.sum(axis=1, keepdims=True)) @ v}


class FlashBackward(Semantics):
    name = "fa-bwd"
    shape = {"head_dim": 32, "block_m": 32, "block_n": 64}

    def inputs(self, trips: int, rng: np.random.Generator) -> Memory:
        d, m, n = self.shape["head_dim"], self.shape["block_m"], self.shape["block_n"]
        memory = {"Q": _normal(rng, trips, m, d), "dO": _normal(rng, trips, m, d),
                  "K": _normal(rng, n, d), "V": _normal(rng, n, d)}
        s = _softmax_scale(d) * memory["Q"] @ memory["K"].T           # base-2 logits, (trips, m, n)
        top = s.max(axis=2, initial=-np.inf, keepdims=True)
        lse = (top + np.log2(np.exp2(s - top).sum(axis=2, keepdims=True)))
        o = np.exp2(s - lse) @ memory["V"]
        memory.update(lse=lse[..., 0], delta=(memory["dO"] * o).sum(axis=2), dQ=_zeros(trips, m, d))
        return memory

    def _kv_rows(self, base: str, part: int | None) -> slice:
        return self.span(base, part, self.shape["block_n"])

    def _init_dv(self):
        return _zeros(self.shape["block_n"] // self.parts["dv"], self.shape["head_dim"])

    def _init_dk(self):
        return _zeros(self.shape["block_n"] // self.parts["dk"], self.shape["head_dim"])

    def _op_loadQ(self, x, part, i, memory):
        return memory["Q"][i]

    def _op_loadDO(self, x, part, i, memory):
        return memory["dO"][i]

    def _op_s(self, x, part, i, memory):
        return memory["K"][self._kv_rows("s", part)] @ x.get("loadQ").T

    def _op_ldS(self, x, part, i, memory):
        return x.get("s")

    def _op_p(self, x, part, i, memory):
        return np.exp2(_softmax_scale(self.shape["head_dim"]) * x.first("ldS", "s") - memory["lse"][i][None, :])

    def _op_dp(self, x, part, i, memory):
        return memory["V"][self._kv_rows("dp", part)] @ x.get("loadDO").T

    def _op_ldDP(self, x, part, i, memory):
        return x.get("dp")

    def _op_ds(self, x, part, i, memory):
        return x.get("p") * (x.first("ldDP", "dp") - memory["delta"][i][None, :])

    def _op_convertP(self, x, part, i, memory):
        return x.get("p")

    def _op_convertDS(self, x, part, i, memory):
        return x.get("ds")

    def _op_stP(self, x, part, i, memory):
        return x.get("p"), x.get("ds")

    def _op_dv(self, x, part, i, memory):
        p = x.get("convertP") if x.has("convertP") else x.get("stP")[0]
        return x.get("dv") + p @ x.get("loadDO")

    def _op_dk(self, x, part, i, memory):
        ds = x.get("convertDS") if x.has("convertDS") else x.get("stP")[1]
        return x.get("dk") + ds @ x.get("loadQ")

    def _op_dq(self, x, part, i, memory):
        ds = x.whole("convertDS", 0) if x.has("convertDS") else x.whole("stP", 0, lambda v: v[1])
        return ds.T @ memory["K"][:, self.span("dq", part, self.shape["head_dim"])]

    def _op_storeDQ(self, x, part, i, memory):
        tile = x.whole("dq", 1)
        memory["dQ"][i] += tile
        return tile

    def finish(self, last, memory, trips):
        scale = 1 / math.sqrt(self.shape["head_dim"])
        return {"dV": np.concatenate(self.last_parts(last, "dv"), axis=0),
                "dK": scale * np.concatenate(self.last_parts(last, "dk"), axis=0),
                "dQ": scale * memory["dQ"].reshape(-1, self.shape["head_dim"])}

    def reference(self, inputs, trips):
        d = self.shape["head_dim"]
        return attention_backward(inputs["Q"].reshape(-1, d), inputs["K"], inputs["V"], inputs["dO"].reshape(-1, d))


def attention_backward(q: np.ndarray, k: np.ndarray, v: np.ndarray, do: np.ndarray) -> dict[str, np.ndarray]:
    """The attention backward in the inputs' precision (no mask): P = softmax(Q K^T / sqrt(d)),
    dV = P^T dO, dS = P (dO V^T - rowsum(dO O)), dK = dS^T Q / sqrt(d), dQ = dS K / sqrt(d)."""
    scale = 1 / math.sqrt(q.shape[1])
    s = q @ k.T * scale
    p = np.exp(s - s.max(axis=1, initial=-np.inf, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    ds = p * (do @ v.T - (do * (p @ v)).sum(axis=1, keepdims=True))
    return {"dV": p.T @ do, "dK": ds.T @ q * scale, "dQ": ds @ k * scale}


class Gemm(Semantics):
    name = "gemm"
    shape = {"block_m": 64, "block_n": 32, "block_k": 16}

    def inputs(self, trips: int, rng: np.random.Generator) -> Memory:
        m, n, k = self.shape["block_m"], self.shape["block_n"], self.shape["block_k"]
        return {"A": _normal(rng, trips, m, k), "B": _normal(rng, trips, n, k)}

    def _init_mma(self):
        return _zeros(self.shape["block_m"] // self.parts["mma"], self.shape["block_n"])

    def _op_loadA(self, x, part, i, memory):
        return memory["A"][i]

    def _op_loadB(self, x, part, i, memory):
        return memory["B"][i]

    def _op_mma(self, x, part, i, memory):
        rows = self.span("mma", part, self.shape["block_m"])
        return x.get("mma") + x.get("loadA")[rows] @ x.get("loadB").T

    def finish(self, last, memory, trips):
        return {"C": np.concatenate(self.last_parts(last, "mma"), axis=0)}

    def reference(self, inputs, trips):
        return {"C": np.einsum("tmk,tnk->mn", inputs["A"], inputs["B"])}


SEMANTICS: dict[str, type[Semantics]] = {s.name: s for s in (FlashForward, FlashBackward, Gemm)}


def semantics_for(loop: Loop, **shape: int) -> Semantics | None:
    """The NumPy semantics of the kernel named ``loop.name``, or None (only the symbolic check)."""
    kind = SEMANTICS.get(loop.name)
    return None if kind is None else kind(loop, **shape)
